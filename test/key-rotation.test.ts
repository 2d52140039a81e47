import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyCommand } from '../cli/key-command.ts';
import { readKeyHistory, verifyKeyEndorsement } from '../gateway/ledger/gateway-key.ts';
import { keys, openLedgerDb } from '../gateway/ledger/ledger-db.ts';
import { verifyProofBundle, type ProofBundle } from '../protocol/proof-bundle.ts';
import { generateSigningKey, signPayload } from '../protocol/signing.ts';
import type { SignedBatchHeader } from '../protocol/usage-record.ts';
import { logIn, setUpOperator, type OperatorClient } from './support/operator-session.ts';
import { runCaptured } from './support/captured-command.ts';
import { sendUsage, startTestRig, type TestRig } from './support/test-gateway.ts';

const keyCli = (argv: string[]): Promise<{ status: number; out: string; err: string }> => runCaptured(keyCommand, argv);

describe('gateway key rotation, end to end', () => {
  let rig: TestRig;
  beforeAll(async () => {
    rig = await startTestRig();
  });
  afterAll(async () => {
    await rig?.close();
  });

  it('keeps receipts the old key signed verifiable after a rotation, and names them when only the new key is trusted', async () => {
    await setUpOperator(rig.gateway.operatorSetup!.link);
    const configFile = path.join(rig.dir, 'gateway.json');
    await writeFile(configFile, JSON.stringify(rig.config));
    const oldKeyHex = rig.gateway.publicKeyHex;

    await sendUsage(rig, 'cnc-1', 5, 1, '1000');
    await rig.gateway.sealNow();
    const refused = await keyCli(['rotate', '--config', configFile]);
    expect(refused.status).toBe(1);
    expect(refused.err).toContain('stop the gateway first');

    await rig.gateway.stop();
    const rotated = await keyCli(['rotate', '--config', configFile]);
    expect(rotated.status).toBe(0);
    const history = (await readKeyHistory(rig.config.dataDir))!;
    const [oldKey, newKey] = history.keys;
    expect(oldKey?.publicKey).toBe(oldKeyHex);
    expect(rotated.out).toContain(`new public key  ${newKey!.publicKey}`);
    // What a payer who trusts the old key checks before trusting the new one.
    expect(verifyKeyEndorsement(history.endorsements[0]!, oldKeyHex)).toBe(true);

    const gateway = await rig.restartGateway({ logger: pino({ level: 'silent' }) });
    expect(gateway.chainReport).toMatchObject({ ok: true, problems: [] });
    expect(gateway.chainReport.batches).toBeGreaterThan(0);
    expect(gateway.publicKeyHex).toBe(newKey!.publicKey);
    await sendUsage(rig, 'cnc-1', 3, 6, '1000');
    await gateway.sealNow();

    const month = new Date().toISOString().slice(0, 7);
    const { cookie } = (await logIn(rig.gateway.httpUrl)) as OperatorClient;
    const response = await fetch(`${gateway.httpUrl}/statements/acme-plant/${month}/bundle.json`, { headers: { cookie } });
    expect(response.status).toBe(200);
    const bundle = (await response.json()) as ProofBundle;
    expect(bundle.gatewayKeys).toEqual(history.keys);
    const signers = bundle.batches.map((b) => b.header.sig.keyId);
    expect(new Set(signers)).toEqual(new Set([oldKey!.keyId, newKey!.keyId]));

    const both = verifyProofBundle(bundle, [oldKeyHex, newKey!.publicKey]);
    expect(both.checks.filter((c) => !c.ok)).toEqual([]);
    expect(both.ok).toBe(true);

    const newOnly = verifyProofBundle(bundle, [newKey!.publicKey]);
    expect(newOnly.ok).toBe(false);
    const failed = newOnly.checks.filter((c) => !c.ok);
    const oldBatches = bundle.batches.filter((b) => b.header.sig.keyId === oldKey!.keyId).map((b) => `batch-signature:${b.header.batchId}`);
    expect(failed.map((c) => c.id)).toEqual(oldBatches);
    for (const check of failed) expect(check.detail).toContain(`signed with key ${oldKey!.keyId}, which is not one of your trusted keys`);
  }, 60_000);

  it('names a batch header signed by a key the history does not list at the next start', async () => {
    const shown = await keyCli(['show', '--config', path.join(rig.dir, 'gateway.json')]);
    expect(shown.out).toContain('Key history (2 keys, oldest first)');
    await rig.gateway.stop();
    const stranger = generateSigningKey();
    const db = await openLedgerDb(path.join(rig.config.dataDir, 'ledger'));
    try {
      const stored = (await db.get(keys.batch(1))) as { header: SignedBatchHeader };
      const { sig: _sig, ...header } = stored.header;
      await db.put(keys.batch(1), { ...stored, header: { ...header, sig: signPayload(header, stranger) } });
    } finally {
      await db.close();
    }
    const gateway = await rig.restartGateway({ logger: pino({ level: 'silent' }) });
    expect(gateway.chainReport.ok).toBe(false);
    expect(gateway.chainReport.problems).toEqual([`batch 1: header signed with key ${stranger.keyId}, which is not in the gateway's key history`]);
  });
});
