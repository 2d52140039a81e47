/**
 * OBIE message signing at the sandbox bank (docs/bank-api.md): every JSON answer carries an
 * `x-jws-signature` by the bank's key, and, when TPP keys are configured, every POST to the
 * API must carry one by a TPP key over the exact body bytes, or it is refused with the
 * UK.OBIE.Signature.* code naming the problem, before anything else looks at it.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { signDetachedJws, verifyDetachedJws, type JwsKeyPair, type JwsProblem, type TrustedJwsKey } from '../gateway/settlement/jws.ts';
import { badRequest, OB_ERROR_CODES, type ObErrorCode } from './ob-errors.ts';
import { BASE_PATH } from './sandbox-context.ts';

export interface SandboxSigning {
  /** Signs the bank's answers. */
  key: JwsKeyPair;
  /** `http://openbanking.org.uk/iss` of the answers: the bank's organisation id. */
  iss: string;
  /** The trust anchor both sides name (`http://openbanking.org.uk/tan`). */
  tan: string;
  /** Keys of the TPPs whose requests are accepted; undefined: requests are not checked. */
  tppKeys: readonly TrustedJwsKey[] | undefined;
  clock: () => number;
}

const PROBLEM_CODES: Readonly<Record<JwsProblem, ObErrorCode>> = {
  missing: OB_ERROR_CODES.signatureMissing,
  malformed: OB_ERROR_CODES.signatureMalformed,
  'missing-claim': OB_ERROR_CODES.signatureMissingClaim,
  'invalid-claim': OB_ERROR_CODES.signatureInvalidClaim,
  invalid: OB_ERROR_CODES.signatureInvalid,
};

/** Keeps each JSON request body's exact text: a signature covers bytes, not parsed JSON. */
function captureRawBodies(app: FastifyInstance): WeakMap<FastifyRequest, string> {
  const rawBodies = new WeakMap<FastifyRequest, string>();
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    rawBodies.set(request, body as string);
    parseJson(request, body as string, done);
  });
  return rawBodies;
}

export function installMessageSigning(app: FastifyInstance, signing: SandboxSigning): void {
  const rawBodies = captureRawBodies(app);
  const { tppKeys } = signing;
  if (tppKeys) {
    // preValidation: after the body is parsed, before schemas, idempotency or any state.
    app.addHook('preValidation', async (request) => {
      if (request.method !== 'POST' || !request.url.startsWith(`${BASE_PATH}/`)) return;
      const header = request.headers['x-jws-signature'];
      const verdict = verifyDetachedJws(typeof header === 'string' ? header : undefined, rawBodies.get(request) ?? '', {
        trustedKeys: tppKeys,
        tan: signing.tan,
        nowS: Math.floor(signing.clock() / 1000),
      });
      if (!verdict.ok) throw badRequest(PROBLEM_CODES[verdict.problem], `x-jws-signature: ${verdict.detail}`, 'x-jws-signature');
    });
  }
  // OBIE VRP 4.0: 20x, 400, 403, 409 and 500 answers require x-jws-signature; we sign every body.
  app.addHook('onSend', async (request, reply, payload) => {
    if (typeof payload !== 'string' || payload.length === 0) return payload;
    const claims = { iss: signing.iss, tan: signing.tan, iatS: Math.floor(signing.clock() / 1000) };
    reply.header('x-jws-signature', signDetachedJws(payload, signing.key, claims));
    return payload;
  });
}
