import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { validateSpecBody } from '../../test/conformance/openapi-validator.ts';
import { batchPaymentReferences, END_TO_END_ID_CHARS_MAX, REFERENCE_CHARS_MAX, UNSTRUCTURED_CHARS_MAX } from './payment-references.ts';

const ROOT = '3f1c0a9be2d4476f8c1e5b7a9d0c2e4f6a8b0c1d2e3f405162738495a6b7c8d9';

describe('batchPaymentReferences', () => {
  it('names the batch and its root in every field', () => {
    expect(batchPaymentReferences({ batchNo: 42, merkleRoot: ROOT, gatewayId: 'demo-gateway' })).toEqual({
      endToEndIdentification: 'MB42-3f1c0a9be2d4476f8c1e5b7a9d',
      remittance: { reference: 'MB 42 3f1c0a9be2d4476f', unstructured: `meterbridge batch 42 root ${ROOT} gateway demo-gateway` },
    });
  });

  it('fits the spec limits for every batch number and gateway id (seeded)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.string({ maxLength: 200 }), (batchNo, gatewayId) => {
        const refs = batchPaymentReferences({ batchNo, merkleRoot: ROOT, gatewayId });
        expect(refs.endToEndIdentification.length).toBeLessThanOrEqual(END_TO_END_ID_CHARS_MAX);
        expect(refs.remittance.reference.length).toBeLessThanOrEqual(REFERENCE_CHARS_MAX);
        expect(refs.remittance.unstructured.length).toBeLessThanOrEqual(UNSTRUCTURED_CHARS_MAX);
        expect(refs.remittance.unstructured).toContain(ROOT);
        expect(refs.remittance.reference.startsWith(`MB ${batchNo} `)).toBe(true);
      }),
      { seed: 20_250_601, numRuns: 500 },
    );
  });

  it('makes fields the spec accepts, and the spec refuses a reference one longer', () => {
    const refs = batchPaymentReferences({ batchNo: 10 ** 15, merkleRoot: ROOT });
    const remittance = { Structured: [{ CreditorReferenceInformation: { Reference: refs.remittance.reference } }], Unstructured: [refs.remittance.unstructured] };
    expect(validateSpecBody('OBRemittanceInformation2', remittance)).toEqual([]);
    const tooLong = { ...remittance, Structured: [{ CreditorReferenceInformation: { Reference: `${refs.remittance.reference}xxxxxxxxxxxx`.slice(0, 36) } }] };
    expect(validateSpecBody('OBRemittanceInformation2', tooLong)).toEqual([expect.stringMatching(/Reference must NOT have more than 35 characters/)]);
  });

  it('refuses a batch number or root it cannot have', () => {
    expect(() => batchPaymentReferences({ batchNo: 0, merkleRoot: ROOT })).toThrow(/^batchNo/);
    expect(() => batchPaymentReferences({ batchNo: 1, merkleRoot: ROOT.toUpperCase() })).toThrow(/^merkleRoot/);
  });
});
