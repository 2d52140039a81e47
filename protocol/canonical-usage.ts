/**
 * Fast paths for the two objects hashed on every usage message: the message itself
 * (messageHash) and the ledger record (chain hash). Both are flat, their keys are known,
 * and every string in them is validated to plain printable ASCII without `"` or `\`, so
 * their RFC 8785 form can be written directly in sorted key order. Any string outside
 * that set (or any key we do not know) falls back to the general canonicalJson, so the
 * output is always exactly canonicalJson's; tests check that over random objects.
 */
import { canonicalJson } from './canonical-json.ts';

/** Printable ASCII except `"` and `\`: JSON.stringify leaves such a string as it is. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

// RFC 8785 §3.2.3: keys sorted by UTF-16 code units (all ASCII here, so plain string order).
const MESSAGE_KEYS = ['deviceId', 'epoch', 'kind', 'meter', 'quantity', 'reading', 'seq', 'sig', 'time', 'unit', 'v'] as const;
const RECORD_KEYS = [
  'amountNano', 'counterEvent', 'currency', 'deviceId', 'deviceSig', 'deviceTime', 'epoch', 'gatewayId', 'index', 'kind', 'messageHash',
  'meter', 'payer', 'period', 'periodQtyBefore', 'prevEpoch', 'prevReading', 'quantity', 'reading', 'receivedAt', 'seq', 'tariff', 'tariffHash',
  'unit', 'unitPrice', 'v',
] as const;

/** A key set with its members' JSON prefixes made once: `"key":"` for a string, `"key":` for a number, with and without the comma before. */
interface KeySet {
  sorted: readonly string[];
  known: ReadonlySet<string>;
  first: { string: string[]; number: string[] };
  later: { string: string[]; number: string[] };
}

function keySet(sorted: readonly string[]): KeySet {
  return {
    sorted,
    known: new Set(sorted),
    first: { string: sorted.map((k) => `"${k}":"`), number: sorted.map((k) => `"${k}":`) },
    later: { string: sorted.map((k) => `,"${k}":"`), number: sorted.map((k) => `,"${k}":`) },
  };
}

const MESSAGE = keySet(MESSAGE_KEYS);
const RECORD = keySet(RECORD_KEYS);

function flatCanonical(object: Record<string, unknown>, keys: KeySet): string {
  let count = 0;
  for (const key in object) {
    if (!keys.known.has(key)) return canonicalJson(object);
    if (object[key] !== undefined) count += 1;
  }
  // Prefix, value, quote: a few string joins per member rather than a template each.
  let out = '{';
  let written = 0;
  const { sorted } = keys;
  for (let i = 0; i < sorted.length; i += 1) {
    const value = object[sorted[i]!];
    if (value === undefined) continue;
    const prefixes = written === 0 ? keys.first : keys.later;
    if (typeof value === 'string') {
      if (!PLAIN.test(value)) return canonicalJson(object);
      out += prefixes.string[i]! + value + '"';
    } else if (typeof value === 'number' && Number.isSafeInteger(value) && !Object.is(value, -0)) {
      out += prefixes.number[i]! + value;
    } else {
      return canonicalJson(object);
    }
    written += 1;
  }
  return written === count ? `${out}}` : canonicalJson(object);
}

/** canonicalJson of a usage message, fast. */
export function canonicalMessageJson(message: object): string {
  return flatCanonical(message as Record<string, unknown>, MESSAGE);
}

/** canonicalJson of a usage record, fast. */
export function canonicalRecordJson(record: object): string {
  return flatCanonical(record as Record<string, unknown>, RECORD);
}
