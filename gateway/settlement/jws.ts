/**
 * OBIE message signing: the `x-jws-signature` header, a JWS (RFC 7515) in compact form with
 * a detached, unencoded payload (RFC 7797, `b64: false`), signed ES256 (ECDSA P-256 with
 * SHA-256, RFC 7518 §3.4: the signature is r || s, 64 bytes).
 *
 * The protected header carries `alg`, `kid`, `typ: "JOSE"`, `cty: "application/json"`, the
 * Open Banking claims `http://openbanking.org.uk/iat` (seconds), `.../iss` (who signs) and
 * `.../tan` (the trust anchor that vouches for `kid`), `b64: false`, and `crit` naming `b64`
 * and the three OB claims (RFC 7515 §4.1.11: a verifier must understand every name in it).
 *
 * The signing input is BASE64URL(header) || "." || the body bytes exactly as sent: a verifier
 * never re-serialises JSON, it checks the bytes it received. Pure: no I/O, time comes in.
 */
import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';

/** OBIE R/W profile, Message Signing: the private header claims. */
export const OB_CLAIMS = Object.freeze({
  iat: 'http://openbanking.org.uk/iat',
  iss: 'http://openbanking.org.uk/iss',
  tan: 'http://openbanking.org.uk/tan',
} as const);
/** Every name `crit` must list (order is free). */
export const JWS_CRIT: readonly string[] = Object.freeze(['b64', OB_CLAIMS.iat, OB_CLAIMS.iss, OB_CLAIMS.tan]);
/** The Open Banking directory as trust anchor. */
export const OB_TRUST_ANCHOR = 'openbanking.org.uk';

/** A signer's P-256 key pair; `publicKey` is the 65-byte uncompressed point. */
export interface JwsKeyPair {
  readonly kid: string;
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** RFC 7517 public JWK of a P-256 signing key, as a JWKS would list it. */
export interface PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
  kid: string;
  use: 'sig';
  alg: 'ES256';
}

/** A key whose signatures are accepted; `iss`, when set, is the only issuer allowed to use it. */
export interface TrustedJwsKey {
  readonly kid: string;
  readonly publicKey: Uint8Array;
  readonly iss?: string;
}

export interface JwsClaims {
  iss: string;
  tan: string;
  /** Seconds since the epoch. */
  iatS: number;
}

/** What went wrong, in the words of the OBIE error codes (UK.OBIE.Signature.*). */
export type JwsProblem = 'missing' | 'malformed' | 'missing-claim' | 'invalid-claim' | 'invalid';

export type JwsVerdict =
  | { ok: true; kid: string; iss: string; iatS: number }
  | { ok: false; problem: JwsProblem; detail: string };

export interface JwsVerifyOptions {
  trustedKeys: readonly TrustedJwsKey[];
  /** The trust anchor the verifier relies on; `tan` must equal it. */
  tan: string;
  nowS: number;
  /** How far `iat` may be from `nowS`, either way. Default 300 s; at most one day. */
  iatSkewS?: number;
}

/** Limits: a header is ~300 bytes; these only stop a hostile header from costing much. */
const JWS_CHARS_MAX = 4096;
const KID_CHARS_MAX = 128;
const TEXT_CHARS_MAX = 256;
const IAT_SKEW_S_DEFAULT = 300;
const IAT_SKEW_S_MAX = 86_400;
const SIGNATURE_BYTES = 64;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

const encoder = new TextEncoder();

function base64url(bytes: Uint8Array | string): string {
  return Buffer.from(typeof bytes === 'string' ? encoder.encode(bytes) : bytes).toString('base64url');
}

function fromBase64url(text: string): Uint8Array | undefined {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return undefined;
  return new Uint8Array(Buffer.from(text, 'base64url'));
}

/** RFC 7638 thumbprint of a P-256 public key: our `kid` for keys we make. */
export function jwkThumbprint(publicKey: Uint8Array): string {
  const { x, y } = coordinates(publicKey);
  return base64url(sha256(encoder.encode(`{"crv":"P-256","kty":"EC","x":"${x}","y":"${y}"}`)));
}

function coordinates(publicKey: Uint8Array): { x: string; y: string } {
  const point = p256.Point.fromBytes(publicKey); // throws on a point not on the curve
  const raw = point.toBytes(false);
  return { x: base64url(raw.subarray(1, 33)), y: base64url(raw.subarray(33, 65)) };
}

export function generateJwsKey(): JwsKeyPair {
  return jwsKeyFromSecret(p256.utils.randomSecretKey());
}

/** The key pair of a 32-byte P-256 secret scalar; `kid` is its JWK thumbprint. */
export function jwsKeyFromSecret(secretKey: Uint8Array): JwsKeyPair {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== 32) throw new RangeError('secretKey: must be 32 bytes');
  const publicKey = p256.getPublicKey(secretKey, false); // throws on 0 or >= n
  return Object.freeze({ kid: jwkThumbprint(publicKey), secretKey: Uint8Array.from(secretKey), publicKey });
}

export function publicJwkOf(key: Pick<JwsKeyPair, 'kid' | 'publicKey'>): PublicJwk {
  return { kty: 'EC', crv: 'P-256', ...coordinates(key.publicKey), kid: key.kid, use: 'sig', alg: 'ES256' };
}

/** Reads a public JWK (e.g. from a bank's JWKS); throws a TypeError/RangeError naming the field. */
export function trustedKeyFromJwk(jwk: unknown, iss?: string): TrustedJwsKey {
  if (typeof jwk !== 'object' || jwk === null) throw new TypeError('jwk: must be an object');
  const { kty, crv, x, y, kid } = jwk as Record<string, unknown>;
  if (kty !== 'EC' || crv !== 'P-256') throw new RangeError('jwk: must be kty EC, crv P-256 (ES256)');
  if (typeof kid !== 'string' || kid.length < 1 || kid.length > KID_CHARS_MAX) throw new RangeError(`jwk.kid: must be 1-${KID_CHARS_MAX} characters`);
  const xBytes = typeof x === 'string' ? fromBase64url(x) : undefined;
  const yBytes = typeof y === 'string' ? fromBase64url(y) : undefined;
  if (xBytes?.length !== 32 || yBytes?.length !== 32) throw new RangeError('jwk.x, jwk.y: must be 32-byte base64url coordinates');
  const publicKey = new Uint8Array(65);
  publicKey[0] = 4;
  publicKey.set(xBytes, 1);
  publicKey.set(yBytes, 33);
  try {
    p256.Point.fromBytes(publicKey);
  } catch {
    throw new RangeError('jwk: the point is not on P-256');
  }
  return Object.freeze({ kid, publicKey, ...(iss === undefined ? {} : { iss }) });
}

function checkClaims(claims: JwsClaims): void {
  if (typeof claims.iss !== 'string' || claims.iss.length < 1 || claims.iss.length > TEXT_CHARS_MAX) throw new RangeError(`iss: must be 1-${TEXT_CHARS_MAX} characters`);
  if (typeof claims.tan !== 'string' || claims.tan.length < 1 || claims.tan.length > TEXT_CHARS_MAX) throw new RangeError(`tan: must be 1-${TEXT_CHARS_MAX} characters`);
  if (!Number.isSafeInteger(claims.iatS) || claims.iatS < 0) throw new RangeError(`iatS: ${claims.iatS} must be whole seconds since the epoch`);
}

/** The `x-jws-signature` value for `payload` (the body exactly as it goes on the wire). */
export function signDetachedJws(payload: string, key: JwsKeyPair, claims: JwsClaims): string {
  checkClaims(claims);
  const header = {
    alg: 'ES256',
    kid: key.kid,
    typ: 'JOSE',
    cty: 'application/json',
    b64: false,
    [OB_CLAIMS.iat]: claims.iatS,
    [OB_CLAIMS.iss]: claims.iss,
    [OB_CLAIMS.tan]: claims.tan,
    crit: [...JWS_CRIT],
  };
  const protectedHeader = base64url(JSON.stringify(header));
  // prehash: ES256 signs SHA-256 of the input; compact: r || s as RFC 7518 §3.4 wants.
  const signature = p256.sign(signingInput(protectedHeader, payload), key.secretKey, { prehash: true, format: 'compact' });
  return `${protectedHeader}..${base64url(signature)}`;
}

function signingInput(protectedHeader: string, payload: string): Uint8Array {
  // RFC 7797 §3: with b64 false the payload joins the input as its own bytes, unencoded.
  return encoder.encode(`${protectedHeader}.${payload}`);
}

/** RFC 7518 §3.4 ES256 over `input`: SHA-256, P-256, signature r || s (64 bytes). */
export function verifyEs256(input: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  // lowS false: other ES256 signers (OpenSSL, node:crypto) make high-S signatures half the time.
  return p256.verify(signature, input, publicKey, { prehash: true, lowS: false, format: 'compact' });
}

const fail = (problem: JwsProblem, detail: string): JwsVerdict => ({ ok: false, problem, detail });

function parseCompact(jws: string): { protectedHeader: string; header: Record<string, unknown>; signature: Uint8Array } | JwsVerdict {
  if (jws.length > JWS_CHARS_MAX) return fail('malformed', `longer than ${JWS_CHARS_MAX} characters`);
  const parts = jws.split('.');
  if (parts.length !== 3) return fail('malformed', 'not a compact JWS (header..signature)');
  const [protectedHeader = '', payloadPart, signaturePart = ''] = parts;
  if (payloadPart !== '') return fail('malformed', 'the payload must be detached (empty between the dots)');
  const headerBytes = fromBase64url(protectedHeader);
  const signature = fromBase64url(signaturePart);
  if (!headerBytes || !signature) return fail('malformed', 'header or signature is not base64url');
  if (signature.length !== SIGNATURE_BYTES) return fail('malformed', `an ES256 signature is ${SIGNATURE_BYTES} bytes, got ${signature.length}`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch {
    return fail('malformed', 'the protected header is not UTF-8 JSON');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return fail('malformed', 'the protected header is not a JSON object');
  return { protectedHeader, header: header as Record<string, unknown>, signature };
}

/** Header rules of OBIE message signing; undefined when the header follows them. */
function checkHeader(header: Record<string, unknown>, options: JwsVerifyOptions): JwsVerdict | undefined {
  for (const name of ['alg', 'kid', 'crit', 'b64', OB_CLAIMS.iat, OB_CLAIMS.iss, OB_CLAIMS.tan]) {
    if (header[name] === undefined) return fail('missing-claim', `the protected header has no ${name}`);
  }
  if (header.alg !== 'ES256') return fail('invalid-claim', `alg ${JSON.stringify(header.alg)} is not ES256`);
  if (header.b64 !== false) return fail('invalid-claim', 'b64 must be false (RFC 7797: the payload is the body, unencoded)');
  if (header.typ !== undefined && header.typ !== 'JOSE') return fail('invalid-claim', 'typ must be JOSE');
  if (header.cty !== undefined && header.cty !== 'application/json' && header.cty !== 'json') return fail('invalid-claim', 'cty must be application/json');
  const crit = header.crit;
  if (!Array.isArray(crit) || !crit.every((name) => typeof name === 'string')) return fail('invalid-claim', 'crit must be an array of names');
  const missing = JWS_CRIT.filter((name) => !crit.includes(name));
  if (missing.length > 0) return fail('missing-claim', `crit does not list ${missing.join(', ')}`);
  // RFC 7515 §4.1.11: a name in crit we do not understand makes the JWS invalid.
  const unknown = crit.filter((name) => !JWS_CRIT.includes(name));
  if (unknown.length > 0 || new Set(crit).size !== crit.length) return fail('invalid-claim', `crit lists ${unknown.join(', ') || 'a name twice'}`);
  const { [OB_CLAIMS.iat]: iat, [OB_CLAIMS.iss]: iss, [OB_CLAIMS.tan]: tan, kid } = header;
  if (typeof kid !== 'string' || kid.length < 1 || kid.length > KID_CHARS_MAX) return fail('invalid-claim', `kid must be 1-${KID_CHARS_MAX} characters`);
  if (typeof iss !== 'string' || iss.length < 1 || iss.length > TEXT_CHARS_MAX) return fail('invalid-claim', `${OB_CLAIMS.iss} must be 1-${TEXT_CHARS_MAX} characters`);
  if (tan !== options.tan) return fail('invalid-claim', `${OB_CLAIMS.tan} ${JSON.stringify(tan)} is not the trust anchor ${options.tan}`);
  const skewS = options.iatSkewS ?? IAT_SKEW_S_DEFAULT;
  if (typeof iat !== 'number' || !Number.isSafeInteger(iat)) return fail('invalid-claim', `${OB_CLAIMS.iat} must be whole seconds`);
  if (Math.abs(iat - options.nowS) > skewS) return fail('invalid-claim', `${OB_CLAIMS.iat} ${iat} is more than ${skewS} s from now (${options.nowS})`);
  return undefined;
}

/**
 * Checks `jws` over `payload` (the body bytes as received). Every refusal names the OBIE
 * problem and what in the signature caused it.
 */
export function verifyDetachedJws(jws: string | undefined, payload: string, options: JwsVerifyOptions): JwsVerdict {
  const skewS = options.iatSkewS ?? IAT_SKEW_S_DEFAULT;
  if (!Number.isSafeInteger(skewS) || skewS < 0 || skewS > IAT_SKEW_S_MAX) throw new RangeError(`iatSkewS: ${skewS} must be 0-${IAT_SKEW_S_MAX}`);
  if (jws === undefined || jws === '') return fail('missing', 'there is no x-jws-signature');
  const parsed = parseCompact(jws);
  if ('ok' in parsed) return parsed;
  const { protectedHeader, header, signature } = parsed;
  const headerProblem = checkHeader(header, options);
  if (headerProblem) return headerProblem;
  const kid = header.kid as string;
  const iss = header[OB_CLAIMS.iss] as string;
  const key = options.trustedKeys.find((candidate) => candidate.kid === kid);
  if (!key) return fail('invalid-claim', `kid ${kid} is not a key we trust`);
  if (key.iss !== undefined && key.iss !== iss) return fail('invalid-claim', `key ${kid} belongs to ${key.iss}, not ${iss}`);
  if (!verifyEs256(signingInput(protectedHeader, payload), signature, key.publicKey)) return fail('invalid', `the signature does not match the body under key ${kid}`);
  return { ok: true, kid, iss, iatS: header[OB_CLAIMS.iat] as number };
}
