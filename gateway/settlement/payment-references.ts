/**
 * What ties a bank payment to its batch, in the fields the payer's and payee's statements
 * show: each fits its OBIE VRP 4.0 limit whole, so nothing the bank truncates is lost.
 *
 *   EndToEndIdentification     `MB<batchNo>-<root hex>`, cut to 31 characters
 *   CreditorReference.Reference  `MB <batchNo> <first 16 hex of the root>` (<= 35)
 *   Unstructured[0]            `meterbridge batch <batchNo> root <all 64 hex>` (+ gateway id if it fits)
 *
 * A payer holding a receipt finds the payment by batch number, and the root prefix in the
 * reference tells a reused batch number (another gateway) apart; the full root is in the
 * unstructured remittance for anyone checking a proof bundle against the bank statement.
 */

/** OBIE VRP 4.0: OBDomesticVRPInstruction.EndToEndIdentification maxLength 35, and "the Faster
 * Payments Scheme can only access 31 characters": we use 31 so FPS carries it whole. */
export const END_TO_END_ID_CHARS_MAX = 31;
/** OBIE VRP 4.0: OBRemittanceInformationStructured.CreditorReferenceInformation.Reference maxLength 35. */
export const REFERENCE_CHARS_MAX = 35;
/** OBIE VRP 4.0: OBRemittanceInformation2.Unstructured items maxLength 140. */
export const UNSTRUCTURED_CHARS_MAX = 140;
const ROOT_PREFIX_HEX_CHARS = 16;

export interface BatchPaymentReferences {
  endToEndIdentification: string;
  remittance: { reference: string; unstructured: string };
}

/** The references of the payment that settles batch `batchNo` with Merkle root `merkleRoot`. */
export function batchPaymentReferences(batch: { batchNo: number; merkleRoot: string; gatewayId?: string }): BatchPaymentReferences {
  const { batchNo, merkleRoot } = batch;
  if (!Number.isSafeInteger(batchNo) || batchNo < 1) throw new RangeError(`batchNo: ${batchNo} must be a positive integer`);
  if (!/^[0-9a-f]{64}$/.test(merkleRoot)) throw new RangeError('merkleRoot: must be 64 lower-case hex characters');
  // A safe integer has at most 16 digits: 'MB ' + 16 + ' ' + 16 = 36, one too many; only
  // numbers beyond 10^15 batches lose a root character, and the batch number stays whole.
  const reference = `MB ${batchNo} ${merkleRoot.slice(0, ROOT_PREFIX_HEX_CHARS)}`.slice(0, REFERENCE_CHARS_MAX);
  const unstructured = `meterbridge batch ${batchNo} root ${merkleRoot}`;
  const withGateway = batch.gatewayId === undefined ? unstructured : `${unstructured} gateway ${batch.gatewayId}`;
  return {
    endToEndIdentification: `MB${batchNo}-${merkleRoot}`.slice(0, END_TO_END_ID_CHARS_MAX),
    remittance: { reference, unstructured: withGateway.length <= UNSTRUCTURED_CHARS_MAX ? withGateway : unstructured },
  };
}
