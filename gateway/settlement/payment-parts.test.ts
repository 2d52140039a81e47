import { describe, expect, it } from 'vitest';
import type { StoredBatch } from './batch-book.ts';
import { END_TO_END_ID_CHARS_MAX } from './payment-references.ts';
import { currentPart, legacyPart, partKey, planParts, withNewKey } from './payment-parts.ts';

const root = 'ab'.repeat(32);
const batch = {
  batchNo: 12,
  idempotencyKey: 'mb0123456789abcdef0123456789abcdef',
  header: { merkleRoot: root, amountMinor: '1450', batchId: 'gw/12', sealedAt: '2026-03-02T09:00:00.000Z' },
} as unknown as StoredBatch;

describe('payment parts', () => {
  it('pays a whole batch under its own key and references', () => {
    const [part] = planParts(batch, [1_450n], 'gw');
    expect(part).toMatchObject({ partNo: 1, keyNo: 0, idempotencyKey: batch.idempotencyKey, endToEndId: `MB12-${root}`.slice(0, 31), reference: `MB 12 ${root.slice(0, 16)}`, state: 'due' });
  });

  it('gives every part and every new key its own key and EndToEndIdentification, within the spec', () => {
    const parts = planParts(batch, [484n, 483n, 483n], 'gw');
    const again = withNewKey(batch, parts[1]!, 3, 'gw', 'not at the bank');
    const all = [...parts, again];
    expect(new Set(all.map((p) => p.idempotencyKey)).size).toBe(4);
    expect(new Set(all.map((p) => p.endToEndId)).size).toBe(4);
    expect(all.every((p) => p.idempotencyKey.length <= 40 && p.endToEndId.length <= END_TO_END_ID_CHARS_MAX && p.reference.length <= 35)).toBe(true);
    expect(again).toMatchObject({ partNo: 2, keyNo: 1, endToEndId: `MB12.2.1-${root}`.slice(0, 31), earlier: [{ idempotencyKey: parts[1]!.idempotencyKey, outcome: 'not at the bank' }] });
    expect(partKey(batch, 2, 1)).toBe(again.idempotencyKey); // derivable again after a crash
  });

  it('keeps a batch sent before parts existed exactly as it was sent', () => {
    const sent = { ...batch, state: 'submitted', transitions: [{ state: 'sealed', at: 'a' }, { state: 'submitted', at: '2026-03-02T09:01:00.000Z' }] } as unknown as StoredBatch;
    expect(legacyPart(sent, 'c1')).toMatchObject({ idempotencyKey: batch.idempotencyKey, endToEndId: `MB12-${root}`.slice(0, 35), state: 'sent', consentId: 'c1', keySentAt: '2026-03-02T09:01:00.000Z' });
  });

  it('works on the first part not settled', () => {
    const parts = planParts(batch, [725n, 725n], 'gw');
    expect(currentPart(parts)?.partNo).toBe(1);
    expect(currentPart([{ ...parts[0]!, state: 'settled' }, parts[1]!])?.partNo).toBe(2);
    expect(currentPart(parts.map((p) => ({ ...p, state: 'settled' as const })))).toBeUndefined();
  });
});
