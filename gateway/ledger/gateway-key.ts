/**
 * The gateway's keyring in its data dir. The current Ed25519 secret is in
 * `gateway-ed25519.key` (hex, 0600); `gateway-keys.json` is the public history of every
 * key the gateway has signed with, `{ publicKey, keyId, validFrom, validTo? }`, oldest
 * first, with one endorsement per rotation: the new key's publicKey, keyId and validFrom
 * signed by the key before it, so a payer who trusts the old key can check the new one
 * (docs/receipts.md, "Key rotation"). Old receipts need only public keys, so a retired
 * secret is overwritten and deleted, never kept.
 *
 * A rotation writes three files; each write is atomic (temp file, fsync, rename, fsync of
 * the folder) and the history write is the commit point:
 *   1. the new secret to `gateway-ed25519.key.new`;
 *   2. the history naming the new key current, with its endorsement (commit);
 *   3. the old secret renamed to `.retired`, `.new` renamed into place, `.retired` destroyed.
 * `loadKeyring` finishes a rotation a crash interrupted after step 2 and discards one
 * interrupted before it, so the secret file always matches the history's current key.
 * Both must run holding the ledger's LevelDB lock: that is what keeps a starting gateway
 * and `meterbridge key rotate` from working on the files at the same time.
 */
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { fromHex, toHex } from '../../protocol/hash.ts';
import type { GatewayKey } from '../../protocol/proof-bundle.ts';
import { generateSigningKey, keyIdOf, signingKeyFromSecret, signPayload, verifyPayload, type Signature, type SigningKey } from '../../protocol/signing.ts';
import { writeFileAtomically } from '../atomic-file.ts';

export const GATEWAY_KEY_FILE = 'gateway-ed25519.key';
export const GATEWAY_KEYS_FILE = 'gateway-keys.json';
export const KEY_HISTORY_FORMAT = 'meterbridge-gateway-keys';
export const ENDORSEMENT_KIND = 'meterbridge-gateway-key-endorsement';
/**
 * The first key is valid from the epoch: it has no predecessor to take over from, and an
 * edge box without a real-time clock may seal its first batches before NTP sets the time.
 */
export const FIRST_KEY_VALID_FROM = '1970-01-01T00:00:00.000Z';

const PENDING_SUFFIX = '.new';
const RETIRED_SUFFIX = '.retired';
/** writeFileAtomically's temporary file: a crash may leave one holding a secret. */
const TEMP_SUFFIX = '.tmp';

/** The new key's public facts, signed by the key before it: what a payer checks on rotation. */
export interface KeyEndorsement {
  /** Says what the signature means, so it cannot be taken for any other signed object. */
  kind: typeof ENDORSEMENT_KIND;
  publicKey: string;
  keyId: string;
  validFrom: string;
  /** By the previous key: `sig.keyId` names it. */
  sig: Signature;
}

/** `gateway-keys.json`: `endorsements[i]` endorses `keys[i + 1]` with `keys[i]`. */
export interface KeyHistory {
  format: typeof KEY_HISTORY_FORMAT;
  v: 1;
  keys: GatewayKey[];
  endorsements: KeyEndorsement[];
}

export interface GatewayKeyring {
  /** The key that signs now: the history's last key. */
  current: SigningKey;
  history: KeyHistory;
  /** True when this load made the gateway's first key. */
  created: boolean;
}

const files = (dataDir: string) => {
  const secret = path.join(dataDir, GATEWAY_KEY_FILE);
  return { secret, pending: secret + PENDING_SUFFIX, retired: secret + RETIRED_SUFFIX, history: path.join(dataDir, GATEWAY_KEYS_FILE) };
};

const isMissing = (error: unknown): boolean => (error as NodeJS.ErrnoException).code === 'ENOENT';

/** The public facts of a key, as the history and proof bundles list them. */
export function publicKeyEntry(key: Pick<SigningKey, 'publicKey' | 'keyId'>, validFrom: string): GatewayKey {
  return { publicKey: toHex(key.publicKey), keyId: key.keyId, validFrom };
}

/** Signs `next`'s public facts with `previous`: the endorsement a payer checks with the key they trust. */
export function endorseKey(previous: SigningKey, next: Pick<SigningKey, 'publicKey' | 'keyId'>, validFrom: string): KeyEndorsement {
  const payload = { kind: ENDORSEMENT_KIND as typeof ENDORSEMENT_KIND, publicKey: toHex(next.publicKey), keyId: next.keyId, validFrom };
  return { ...payload, sig: signPayload(payload, previous) };
}

/** True when `endorsement` is `previous`'s signature over its kind, publicKey, keyId and validFrom. */
export function verifyKeyEndorsement(endorsement: KeyEndorsement, previousPublicKeyHex: string): boolean {
  const { sig, ...payload } = endorsement;
  if (payload.kind !== ENDORSEMENT_KIND || typeof sig !== 'object' || sig === null) return false;
  try {
    return verifyPayload(payload, sig, fromHex(previousPublicKeyHex, 'publicKey', 32));
  } catch {
    return false;
  }
}

/**
 * Every way `history` is not a chain of keys each endorsed by the one before, valid back to
 * back: keyIds that do not match their keys, windows out of order, a missing or bad
 * endorsement. Empty when it is sound.
 */
export function checkKeyHistory(history: KeyHistory): string[] {
  if (typeof history !== 'object' || history === null) return ['not a key history object'];
  const problems: string[] = [];
  if (history.format !== KEY_HISTORY_FORMAT || history.v !== 1) problems.push(`format: expected ${KEY_HISTORY_FORMAT} v1`);
  if (!Array.isArray(history.keys) || history.keys.length === 0) return [...problems, 'keys: the history lists no key'];
  if (!Array.isArray(history.endorsements) || history.endorsements.length !== history.keys.length - 1) {
    problems.push(`endorsements: expected ${history.keys.length - 1}, one per rotation`);
  }
  history.keys.forEach((key, i) => {
    const name = `keys[${i}] (${key.keyId})`;
    let publicKey: Uint8Array | undefined;
    try {
      publicKey = fromHex(key.publicKey, 'publicKey', 32);
    } catch (error) {
      problems.push(`${name}: ${(error as Error).message}`);
    }
    if (publicKey && keyIdOf(publicKey) !== key.keyId) problems.push(`${name}: keyId does not match its public key`);
    if (Number.isNaN(Date.parse(key.validFrom))) problems.push(`${name}: validFrom is not a time`);
    const next = history.keys[i + 1];
    if (!next) {
      if (key.validTo !== undefined) problems.push(`${name}: the current key has a validTo`);
      return;
    }
    if (key.validTo !== next.validFrom) problems.push(`${name}: validTo ${key.validTo ?? '(none)'} is not the next key's validFrom ${next.validFrom}`);
    if (!(Date.parse(key.validFrom) < Date.parse(next.validFrom))) problems.push(`${name}: the next key's validFrom ${next.validFrom} is not after its own ${key.validFrom}`);
    const endorsement = Array.isArray(history.endorsements) ? history.endorsements[i] : undefined;
    const endorses = endorsement !== undefined && endorsement.publicKey === next.publicKey && endorsement.keyId === next.keyId && endorsement.validFrom === next.validFrom && verifyKeyEndorsement(endorsement, key.publicKey);
    if (!endorses) problems.push(`keys[${i + 1}] (${next.keyId}): not endorsed by ${key.keyId}`);
  });
  return problems;
}

/** The history alone, for `key show`: undefined before the first start. Changes nothing. */
export async function readKeyHistory(dataDir: string): Promise<KeyHistory | undefined> {
  const file = files(dataDir).history;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw new Error(`Cannot read gateway key history ${file}: ${(error as Error).message}`, { cause: error });
  }
  let history: KeyHistory;
  try {
    history = JSON.parse(text) as KeyHistory;
  } catch (error) {
    throw new Error(`Cannot read gateway key history ${file}: ${(error as Error).message}`, { cause: error });
  }
  const problems = checkKeyHistory(history);
  if (problems.length > 0) throw new Error(`Cannot read gateway key history ${file}: ${problems.join('; ')}`);
  return history;
}

async function readSecret(file: string): Promise<SigningKey | undefined> {
  try {
    const info = await stat(file);
    // Someone loosened it; tighten rather than keep serving a readable secret.
    if ((info.mode & 0o077) !== 0) await chmod(file, 0o600);
    return signingKeyFromSecret(fromHex((await readFile(file, 'utf8')).trim(), path.basename(file), 32));
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw new Error(`Cannot load gateway key ${file}: ${(error as Error).message}`, { cause: error });
  }
}

async function syncFolder(folder: string): Promise<void> {
  const handle = await open(folder, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Overwrites a secret file with random bytes, syncs, deletes it. On flash storage and
 * copy-on-write filesystems the old blocks may survive an overwrite: keep the data dir on
 * an encrypted volume where that matters.
 */
async function destroySecret(file: string): Promise<void> {
  let handle;
  try {
    handle = await open(file, 'r+');
  } catch (error) {
    if (isMissing(error)) return;
    throw error;
  }
  try {
    const { size } = await handle.stat();
    await handle.write(randomBytes(size), 0, size, 0);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await unlink(file);
  await syncFolder(path.dirname(file));
}

/** Makes the first key; `false` when another process made one first (then read theirs). */
async function createFirstSecret(file: string, key: SigningKey): Promise<boolean> {
  const temporary = `${file}${TEMP_SUFFIX}`;
  await writeFileAtomically(temporary, `${toHex(key.secretKey)}\n`);
  try {
    // link, not rename: never replace a key another process made in the meantime.
    await link(temporary, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    await destroySecret(temporary);
    return false;
  }
  // The temporary name is now a second link to the key itself: unlink it, never overwrite it.
  await unlink(temporary);
  await syncFolder(path.dirname(file));
  return true;
}

const historyText = (history: KeyHistory): string => `${JSON.stringify(history, null, 2)}\n`;

/** Step 3 of a rotation: the pending secret replaces the current one, which is destroyed. */
async function installPending(f: ReturnType<typeof files>): Promise<void> {
  try {
    await rename(f.secret, f.retired);
  } catch (error) {
    if (!isMissing(error)) throw error;
  }
  await rename(f.pending, f.secret);
  await syncFolder(path.dirname(f.secret));
  await destroySecret(f.retired);
}

/**
 * A crash in createFirstSecret between link and unlink leaves `<secret>.tmp` as a second
 * link to the key: unlink it then; any other `<secret>.tmp` is an unused secret to destroy.
 */
async function forgetFirstSecretTemporary(f: ReturnType<typeof files>): Promise<void> {
  const temporary = `${f.secret}${TEMP_SUFFIX}`;
  const [tmp, secret] = await Promise.all([stat(temporary).catch(() => undefined), stat(f.secret).catch(() => undefined)]);
  if (!tmp) return;
  if (secret && secret.ino === tmp.ino && secret.dev === tmp.dev) await unlink(temporary);
  else await destroySecret(temporary);
}

/** Leaves the files as a finished rotation would, whatever step a crash stopped at. */
async function finishInterruptedRotation(f: ReturnType<typeof files>, history: KeyHistory | undefined): Promise<void> {
  // writeFileAtomically's temporaries: `<file>.tmp`, and createFirstSecret's `<file>.tmp.tmp`.
  for (const temporary of [`${f.secret}${TEMP_SUFFIX}${TEMP_SUFFIX}`, `${f.pending}${TEMP_SUFFIX}`]) await destroySecret(temporary);
  await forgetFirstSecretTemporary(f);
  const pending = await readSecret(f.pending);
  if (pending && history?.keys.at(-1)?.keyId === pending.keyId) await installPending(f);
  else await destroySecret(f.pending); // step 2 never happened: the key never signed anything
  await destroySecret(f.retired);
}

/**
 * The current key and the history; makes both on first start, and the history alone for a
 * gateway from before there was one (its key valid from the epoch). Idempotent: a second
 * load changes nothing. Throws when the secret does not match the history's current key.
 */
export async function loadKeyring(dataDir: string): Promise<GatewayKeyring> {
  const f = files(dataDir);
  let history = await readKeyHistory(dataDir);
  await finishInterruptedRotation(f, history);
  let current = await readSecret(f.secret);
  let created = false;
  if (!current) {
    if (history) throw new Error(`Cannot load gateway key ${f.secret}: it is missing, but ${f.history} says the gateway signs with ${history.keys.at(-1)!.keyId}; restore the file from a backup`);
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const fresh = generateSigningKey();
    created = await createFirstSecret(f.secret, fresh);
    current = created ? fresh : await readSecret(f.secret);
    if (!current) throw new Error(`Cannot load gateway key ${f.secret}: it vanished while being created`);
  }
  if (!history) {
    history = { format: KEY_HISTORY_FORMAT, v: 1, keys: [publicKeyEntry(current, FIRST_KEY_VALID_FROM)], endorsements: [] };
    await writeFileAtomically(f.history, historyText(history));
  }
  const listed = history.keys.at(-1)!;
  if (listed.keyId !== current.keyId) {
    throw new Error(`Cannot load gateway key ${f.secret}: it holds key ${current.keyId}, but ${f.history} says the gateway signs with ${listed.keyId}`);
  }
  return { current, history, created };
}

export interface Rotation {
  retired: GatewayKey;
  current: GatewayKey;
  endorsement: KeyEndorsement;
  keyring: GatewayKeyring;
}

/**
 * Makes a new key valid from `now`, ends the current one at `now`, endorses the new one
 * with the old, and destroys the old secret. Call it with the gateway stopped (holding the
 * ledger's lock). Refuses a clock that is not after the current key's validFrom.
 */
/**
 * `beforeCommit` runs once the endorsement exists and before anything is written, while the
 * old secret still exists: the uplink queues the endorsement for cloud-sync there, signed
 * with the old key (gateway/uplink). If it throws, nothing is rotated.
 */
export async function rotateGatewayKey(dataDir: string, now: Date, beforeCommit?: (previous: SigningKey, endorsement: KeyEndorsement) => Promise<void>): Promise<Rotation> {
  const f = files(dataDir);
  if (!(await readKeyHistory(dataDir))) throw new Error(`Cannot rotate the gateway key: ${dataDir} holds no key history yet (the gateway makes one on first start)`);
  const { current: previous, history } = await loadKeyring(dataDir);
  const validFrom = now.toISOString();
  const last = history.keys.at(-1)!;
  if (!(now.getTime() > Date.parse(last.validFrom))) {
    throw new RangeError(`Cannot rotate the gateway key: now (${validFrom}) is not after the current key's validFrom ${last.validFrom}; check the clock`);
  }
  const next = generateSigningKey();
  const endorsement = endorseKey(previous, next, validFrom);
  await beforeCommit?.(previous, endorsement);
  const retired: GatewayKey = { ...last, validTo: validFrom };
  const current = publicKeyEntry(next, validFrom);
  const rotated: KeyHistory = { ...history, keys: [...history.keys.slice(0, -1), retired, current], endorsements: [...history.endorsements, endorsement] };
  await writeFileAtomically(f.pending, `${toHex(next.secretKey)}\n`);
  await writeFileAtomically(f.history, historyText(rotated));
  await installPending(f);
  return { retired, current, endorsement, keyring: { current: next, history: rotated, created: false } };
}

/** The older entry point: the current key alone. */
export async function loadOrCreateGatewayKey(dataDir: string): Promise<{ key: SigningKey; created: boolean; file: string }> {
  const { current, created } = await loadKeyring(dataDir);
  return { key: current, created, file: files(dataDir).secret };
}
