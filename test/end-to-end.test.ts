import { afterEach, describe, expect, it } from 'vitest';
import { canonicalBytes } from '../protocol/canonical-json.ts';
import { fromHex } from '../protocol/hash.ts';
import { verifyInclusion } from '../protocol/merkle.ts';
import { nanoPerMinor } from '../protocol/money.ts';
import { verifyPayload } from '../protocol/signing.ts';
import { startFleet, type Fleet } from '../firmware-sim/fleet.ts';
import { verifyChain } from '../gateway/ledger/verify-chain.ts';
import { FINAL_STATES } from '../gateway/settlement/batch-book.ts';
import { startTestRig, TEST_DEVICES, type TestRig } from './support/test-gateway.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function settleEverything(rig: TestRig, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (rig.gateway.batches.openBatches().length > 0) {
    if (Date.now() > deadline) throw new Error(`batches still open: ${JSON.stringify(rig.gateway.batches.openBatches().map((b) => [b.batchNo, b.state, b.lastError]))}`);
    await rig.gateway.settler.tick();
    await sleep(100);
  }
}

describe('end to end: machines → gateway → signed ledger → bank', () => {
  let rig: TestRig | undefined;
  let fleet: Fleet | undefined;
  afterEach(async () => {
    await fleet?.stop();
    await rig?.close();
  });

  it('settles what the fleet reported, exactly, across a gateway restart, with every record provable', async () => {
    rig = await startTestRig({ settleAfterMs: 50 });
    const seed = 20261127;
    fleet = startFleet({ mqttUrl: rig.mqttUrl, devices: TEST_DEVICES.map((d) => ({ id: d.id, password: d.password, kind: d.kind })), speed: 25, seed });
    await sleep(1_500);
    await rig.gateway.sealNow();
    await sleep(500);
    await rig.restartGateway();
    await sleep(1_500);
    await rig.gateway.sealNow();
    await sleep(500);
    await fleet.stop();
    await rig.gateway.journal.drain();
    await rig.gateway.sealNow();
    await settleEverything(rig, 15_000);
    const { gateway } = rig;

    // Nothing acknowledged is lost, nothing is counted twice.
    const inLedger = new Map<string, number>();
    const records = [];
    for await (const entry of gateway.journal.entries(1, gateway.journal.head.index)) {
      records.push(entry.record);
      const key = `${entry.record.deviceId}#${entry.record.seq}`;
      inLedger.set(key, (inLedger.get(key) ?? 0) + 1);
    }
    const acked = fleet.devices.flatMap((d) => [...d.acked].map((seq) => `${d.config.id}#${seq}`));
    expect(acked.length, `seed ${seed}`).toBeGreaterThan(100);
    for (const key of acked) expect(inLedger.get(key), `acknowledged ${key} (seed ${seed})`).toBe(1);
    expect([...inLedger.values()].every((n) => n === 1)).toBe(true);
    expect((await verifyChain(gateway.db, { publicKey: fromHex(gateway.publicKeyHex, 'publicKey', 32) })).ok).toBe(true);

    // Sum of priced records = settled + carried + unsettled, exactly, per payer.
    const batches = [];
    for await (const batch of gateway.batches.all()) batches.push(batch);
    const carried = await gateway.batches.carried();
    const payers = new Set(records.map((r) => `${r.payer}!${r.currency}`));
    expect(payers.size).toBe(3);
    for (const group of payers) {
      const [payer, currency] = group.split('!') as [string, string];
      const priced = records.filter((r) => r.payer === payer).reduce((sum, r) => sum + BigInt(r.amountNano), 0n);
      const mine = batches.filter((b) => b.header.payer === payer);
      const settled = mine.filter((b) => b.state === 'settled').reduce((sum, b) => sum + BigInt(b.header.amountMinor), 0n) * nanoPerMinor(currency);
      const unsettledBatches = mine.filter((b) => b.state !== 'settled').reduce((sum, b) => sum + BigInt(b.header.amountMinor), 0n) * nanoPerMinor(currency);
      const unsealed = records.filter((r) => r.payer === payer && r.index > gateway.batches.sealedThrough).reduce((sum, r) => sum + BigInt(r.amountNano), 0n);
      expect(priced, group).toBe(settled + (carried.get(group) ?? 0n) + unsettledBatches + unsealed);
      expect(settled, `${group} paid something`).toBeGreaterThan(0n);
    }
    expect(batches.every((b) => FINAL_STATES.has(b.state))).toBe(true);
    expect(batches.filter((b) => b.state === 'settled').length).toBeGreaterThanOrEqual(3);

    // One bank payment per paid batch, never two.
    const payments = rig.bank.listPayments();
    expect(payments.length).toBe(batches.filter((b) => b.state === 'settled').length);

    // Every record's inclusion proof checks against its batch's signed Merkle root.
    const publicKey = fromHex(gateway.publicKeyHex, 'publicKey', 32);
    let proven = 0;
    for (const batch of batches) {
      const { sig, ...header } = batch.header;
      expect(verifyPayload(header, sig, publicKey), `batch ${batch.batchNo} signature`).toBe(true);
      for (const { record, proof } of await gateway.batches.proofs(batch.header)) {
        expect(verifyInclusion(canonicalBytes(record), proof, batch.header.merkleRoot)).toBe(true);
        proven += 1;
      }
    }
    expect(proven).toBe(gateway.batches.sealedThrough);
    expect(gateway.batches.sealedThrough).toBe(records.length);
  }, 60_000);
});
