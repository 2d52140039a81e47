/**
 * `POST /bank/events`: the bank's signed event notifications (docs/bank-api.md, "Event
 * notifications"). No operator login, since the bank is the caller: the body must carry an
 * `x-jws-signature` by the bank's key (`settlement.bank.publicKeyFile`) over its exact bytes,
 * with an `iat` within 5 minutes, else 401 naming why. A valid event about a payment of an open
 * batch makes the settler follow that batch now; polling stays the fallback for lost events.
 *
 * The event is only a "ping": the settler reads the payment's status from the bank itself
 * (a signed answer too), so nothing in an event body is ever booked.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { verifyDetachedJws, type TrustedJwsKey } from '../settlement/jws.ts';

export interface BankEventsOptions {
  /** The bank's signing keys; undefined: no key configured, so every event is refused. */
  bankKeys: readonly TrustedJwsKey[] | undefined;
  /** `http://openbanking.org.uk/tan` the bank signs with. */
  trustAnchor: string;
  /** Starts following the open batch that made this payment now; false when there is none. */
  follow: (paymentId: string) => boolean;
  metrics?: Registry;
  /** Epoch ms; default Date.now. */
  clock?: () => number;
}

/** OB Event Notification API: resource-update, the only event the bank sends. */
const RESOURCE_UPDATE_EVENT = 'urn:uk:org:openbanking:events:resource-update';
const OB_RID = 'http://openbanking.org.uk/rid';
const OB_RTY = 'http://openbanking.org.uk/rty';
/** An event is ~700 bytes; 413 beyond this. */
const EVENT_BYTES_MAX = 8 * 1024;
/** How far `iat` may be from our clock: an older event is a replay (or a very late delivery: the poll covers it). */
const IAT_SKEW_S = 300;
/** Event ids remembered to refuse an exact replay inside the skew window. */
const SEEN_JTI_MAX = 10_000;

const ID = { type: 'string', minLength: 1, maxLength: 128 } as const;
const bodySchema = {
  type: 'object',
  required: ['iss', 'iat', 'jti', 'events'],
  properties: {
    iss: ID,
    iat: { type: 'integer', minimum: 0 },
    jti: ID,
    sub: { type: 'string', maxLength: 1024 },
    txn: ID,
    toe: { type: 'integer', minimum: 0 },
    events: {
      type: 'object',
      required: [RESOURCE_UPDATE_EVENT],
      properties: {
        [RESOURCE_UPDATE_EVENT]: {
          type: 'object',
          required: ['subject'],
          properties: {
            subject: {
              type: 'object',
              required: [OB_RID, OB_RTY],
              properties: { [OB_RID]: ID, [OB_RTY]: { type: 'string', enum: ['domestic-vrps'] } },
            },
          },
        },
      },
    },
  },
} as const;

interface EventBody {
  iss: string;
  iat: number;
  jti: string;
  events: Record<typeof RESOURCE_UPDATE_EVENT, { subject: Record<typeof OB_RID, string> }>;
}

const responseSchema = {
  202: { type: 'object', required: ['status'], properties: { status: { type: 'string' }, paymentId: { type: 'string' } } },
  401: { type: 'object', required: ['error'], properties: { error: { type: 'string' } } },
} as const;

export type BankEventOutcome = 'followed' | 'unknown-payment' | 'duplicate' | 'refused';

/** Event ids seen lately, oldest forgotten first. */
class SeenIds {
  readonly #ids = new Set<string>();
  /** True when `id` was seen before; remembers it otherwise. */
  seen(id: string): boolean {
    if (this.#ids.has(id)) return true;
    if (this.#ids.size >= SEEN_JTI_MAX) this.#ids.delete(this.#ids.values().next().value!);
    this.#ids.add(id);
    return false;
  }
}

export const bankEvents: FastifyPluginAsync<BankEventsOptions> = async (app: FastifyInstance, options) => {
  const clock = options.clock ?? Date.now;
  const counter = new Counter({
    name: 'meterbridge_bank_events_total',
    help: 'Event notifications from the bank since start, by outcome (refused: bad or missing signature).',
    labelNames: ['outcome'],
    registers: options.metrics ? [options.metrics] : [],
  });
  const count = (outcome: BankEventOutcome): void => counter.inc({ outcome });
  const seen = new SeenIds();
  // The signature covers the bytes as sent: keep them (this plugin's scope only).
  const rawBodies = new WeakMap<FastifyRequest, string>();
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: EVENT_BYTES_MAX }, (request, body, done) => {
    rawBodies.set(request, body as string);
    parseJson(request, body as string, done);
  });

  // preValidation: a forged event is refused before its body is looked at any further.
  const checkSignature = async (request: FastifyRequest): Promise<string | undefined> => {
    if (!options.bankKeys) return 'no bank key is configured (settlement.bank.publicKeyFile), so no event can be verified';
    const header = request.headers['x-jws-signature'];
    const verdict = verifyDetachedJws(typeof header === 'string' ? header : undefined, rawBodies.get(request) ?? '', {
      trustedKeys: options.bankKeys, tan: options.trustAnchor, nowS: Math.floor(clock() / 1000), iatSkewS: IAT_SKEW_S,
    });
    return verdict.ok ? undefined : `x-jws-signature ${verdict.problem}: ${verdict.detail}`;
  };

  app.post<{ Body: EventBody }>('/bank/events', {
    bodyLimit: EVENT_BYTES_MAX,
    schema: { body: bodySchema, response: responseSchema },
    preValidation: async (request, reply) => {
      const problem = await checkSignature(request);
      if (problem === undefined) return;
      count('refused');
      request.log.warn({ problem }, 'bank event refused');
      await reply.code(401).send({ error: `Cannot accept the bank event: ${problem}` });
    },
  }, async (request, reply) => {
    const paymentId = request.body.events[RESOURCE_UPDATE_EVENT].subject[OB_RID];
    // A replay inside the iat window changes nothing anyway (the settler reads the bank); it is just not followed twice.
    if (seen.seen(`${request.body.iss}\n${request.body.jti}`)) {
      count('duplicate');
      return reply.code(202).send({ status: 'duplicate', paymentId });
    }
    const followed = options.follow(paymentId);
    count(followed ? 'followed' : 'unknown-payment');
    // OB Event Notification API: the TPP answers 202 whatever it does with the event.
    return reply.code(202).send({ status: followed ? 'followed' : 'unknown-payment', paymentId });
  });
};
