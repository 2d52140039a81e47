import { statSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toHex } from '../../protocol/hash.ts';
import { generateSigningKey } from '../../protocol/signing.ts';
import {
  checkKeyHistory, endorseKey, FIRST_KEY_VALID_FROM, GATEWAY_KEY_FILE, GATEWAY_KEYS_FILE, loadKeyring, loadOrCreateGatewayKey,
  readKeyHistory, rotateGatewayKey, verifyKeyEndorsement, type KeyHistory,
} from './gateway-key.ts';

const T1 = new Date('2026-11-01T00:00:00.000Z');
const T2 = new Date('2026-12-01T00:00:00.000Z');

describe('gateway keyring', () => {
  let dir: string;
  const secretFile = (): string => path.join(dir, GATEWAY_KEY_FILE);
  const historyFile = (): string => path.join(dir, GATEWAY_KEYS_FILE);
  const readHistory = async (): Promise<KeyHistory> => JSON.parse(await readFile(historyFile(), 'utf8')) as KeyHistory;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'gateway-key-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('makes the first key on first start, 0600, and a history listing it valid from the epoch', async () => {
    const ring = await loadKeyring(dir);
    expect(ring.created).toBe(true);
    expect(statSync(secretFile()).mode & 0o777).toBe(0o600);
    expect(await readHistory()).toEqual({
      format: 'meterbridge-gateway-keys', v: 1, endorsements: [],
      keys: [{ publicKey: toHex(ring.current.publicKey), keyId: ring.current.keyId, validFrom: FIRST_KEY_VALID_FROM }],
    });
    expect((await readdir(dir)).sort()).toEqual([GATEWAY_KEY_FILE, GATEWAY_KEYS_FILE]);
  });

  it('loads the same key again without rewriting anything', async () => {
    const first = await loadKeyring(dir);
    const [secret, history] = [await readFile(secretFile(), 'utf8'), await readFile(historyFile(), 'utf8')];
    const mtimes = [statSync(secretFile()).mtimeMs, statSync(historyFile()).mtimeMs];
    const again = await loadKeyring(dir);
    expect(again.created).toBe(false);
    expect(again.current.keyId).toBe(first.current.keyId);
    expect([await readFile(secretFile(), 'utf8'), await readFile(historyFile(), 'utf8')]).toEqual([secret, history]);
    expect([statSync(secretFile()).mtimeMs, statSync(historyFile()).mtimeMs]).toEqual(mtimes);
    expect((await loadOrCreateGatewayKey(dir)).key.keyId).toBe(first.current.keyId);
  });

  it('writes the history for a gateway from before there was one, keeping its key', async () => {
    const legacy = generateSigningKey();
    await writeFile(secretFile(), `${toHex(legacy.secretKey)}\n`, { mode: 0o644 });
    const ring = await loadKeyring(dir);
    expect(ring).toMatchObject({ created: false, current: { keyId: legacy.keyId } });
    expect((await readHistory()).keys).toEqual([{ publicKey: toHex(legacy.publicKey), keyId: legacy.keyId, validFrom: FIRST_KEY_VALID_FROM }]);
    expect(statSync(secretFile()).mode & 0o777).toBe(0o600); // tightened
  });

  it('rotates: the history ends the old key and lists the new one, endorsed by the old', async () => {
    const old = (await loadKeyring(dir)).current;
    const rotation = await rotateGatewayKey(dir, T1);
    const history = await readHistory();
    expect(history.keys).toEqual([
      { publicKey: toHex(old.publicKey), keyId: old.keyId, validFrom: FIRST_KEY_VALID_FROM, validTo: T1.toISOString() },
      { publicKey: rotation.current.publicKey, keyId: rotation.current.keyId, validFrom: T1.toISOString() },
    ]);
    expect(history.endorsements).toHaveLength(1);
    const endorsement = history.endorsements[0]!;
    expect(endorsement).toMatchObject({ kind: 'meterbridge-gateway-key-endorsement', publicKey: rotation.current.publicKey, keyId: rotation.current.keyId, validFrom: T1.toISOString(), sig: { keyId: old.keyId } });
    expect(verifyKeyEndorsement(endorsement, toHex(old.publicKey))).toBe(true);
    expect(checkKeyHistory(history)).toEqual([]);
    const reloaded = await loadKeyring(dir);
    expect(reloaded.current.keyId).toBe(rotation.current.keyId);
    expect(reloaded.current.keyId).not.toBe(old.keyId);
    expect(statSync(secretFile()).mode & 0o777).toBe(0o600);
  });

  it('refuses an endorsement checked with another key, or one whose facts were changed', async () => {
    const old = (await loadKeyring(dir)).current;
    const { endorsement } = await rotateGatewayKey(dir, T1);
    expect(verifyKeyEndorsement(endorsement, toHex(generateSigningKey().publicKey))).toBe(false);
    expect(verifyKeyEndorsement({ ...endorsement, validFrom: T2.toISOString() }, toHex(old.publicKey))).toBe(false);
    expect(verifyKeyEndorsement({ ...endorsement, publicKey: toHex(generateSigningKey().publicKey) }, toHex(old.publicKey))).toBe(false);
  });

  it('destroys the retired secret: no file in the data dir holds it', async () => {
    const old = (await loadKeyring(dir)).current;
    await rotateGatewayKey(dir, T1);
    await rotateGatewayKey(dir, T2);
    expect((await readdir(dir)).sort()).toEqual([GATEWAY_KEY_FILE, GATEWAY_KEYS_FILE]);
    const oldSecretHex = toHex(old.secretKey);
    for (const name of await readdir(dir)) expect(await readFile(path.join(dir, name), 'utf8')).not.toContain(oldSecretHex);
    const history = await readHistory();
    expect(history.keys.map((k) => k.validTo)).toEqual([T1.toISOString(), T2.toISOString(), undefined]);
    expect(checkKeyHistory(history)).toEqual([]);
  });

  it('refuses to rotate before the first start, or with a clock not after the current key took over', async () => {
    await expect(rotateGatewayKey(dir, T1)).rejects.toThrow(/holds no key history yet/);
    await loadKeyring(dir);
    await rotateGatewayKey(dir, T2);
    await expect(rotateGatewayKey(dir, T1)).rejects.toThrow(/is not after the current key's validFrom 2026-12-01T00:00:00.000Z/);
    await expect(rotateGatewayKey(dir, T2)).rejects.toThrow(RangeError);
  });

  it('finishes a rotation a crash interrupted after the history was written', async () => {
    const old = (await loadKeyring(dir)).current;
    const next = generateSigningKey();
    const history = await readHistory();
    const rotated: KeyHistory = {
      ...history,
      keys: [{ ...history.keys[0]!, validTo: T1.toISOString() }, { publicKey: toHex(next.publicKey), keyId: next.keyId, validFrom: T1.toISOString() }],
      endorsements: [endorseKey(old, next, T1.toISOString())],
    };
    // Steps 1 and 2 done, step 3 (swap the secrets) not.
    await writeFile(`${secretFile()}.new`, `${toHex(next.secretKey)}\n`, { mode: 0o600 });
    await writeFile(historyFile(), JSON.stringify(rotated));
    expect((await loadKeyring(dir)).current.keyId).toBe(next.keyId);
    expect((await readdir(dir)).sort()).toEqual([GATEWAY_KEY_FILE, GATEWAY_KEYS_FILE]);
  });

  it('discards a rotation a crash interrupted before the history was written', async () => {
    const old = (await loadKeyring(dir)).current;
    const next = generateSigningKey();
    await writeFile(`${secretFile()}.new`, `${toHex(next.secretKey)}\n`, { mode: 0o600 });
    await writeFile(`${secretFile()}.new.tmp`, `${toHex(generateSigningKey().secretKey)}\n`, { mode: 0o600 });
    expect((await loadKeyring(dir)).current.keyId).toBe(old.keyId);
    expect((await readdir(dir)).sort()).toEqual([GATEWAY_KEY_FILE, GATEWAY_KEYS_FILE]);
    expect((await readKeyHistory(dir))?.keys).toHaveLength(1);
  });

  it('refuses a secret that is not the history\'s current key, and a missing secret, rather than make a new one', async () => {
    await loadKeyring(dir);
    await writeFile(secretFile(), `${toHex(generateSigningKey().secretKey)}\n`, { mode: 0o600 });
    await expect(loadKeyring(dir)).rejects.toThrow(/holds key [0-9a-f]{16}, but .*gateway-keys\.json says the gateway signs with [0-9a-f]{16}/);
    await rm(secretFile());
    await expect(loadKeyring(dir)).rejects.toThrow(/is missing, but .*restore the file from a backup/);
  });

  it('refuses a history whose new key is not endorsed by the old one, naming both', async () => {
    await loadKeyring(dir);
    await rotateGatewayKey(dir, T1);
    const history = await readHistory();
    const forger = generateSigningKey();
    const forged: KeyHistory = { ...history, endorsements: [endorseKey(forger, { publicKey: Buffer.from(history.keys[1]!.publicKey, 'hex'), keyId: history.keys[1]!.keyId }, T1.toISOString())] };
    expect(checkKeyHistory(forged)).toEqual([`keys[1] (${history.keys[1]!.keyId}): not endorsed by ${history.keys[0]!.keyId}`]);
    await writeFile(historyFile(), JSON.stringify(forged));
    await expect(readKeyHistory(dir)).rejects.toThrow(/not endorsed by/);
    expect(checkKeyHistory({ ...history, keys: [history.keys[0]!, { ...history.keys[1]!, validFrom: T2.toISOString() }] })).toContainEqual(expect.stringMatching(/validTo 2026-11-01T00:00:00.000Z is not the next key's validFrom/));
  });
});
