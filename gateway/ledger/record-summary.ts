/**
 * What start-up needs of each of a million records (sequence gaps, each device's highest
 * seq, the batch audit's totals), read straight from the record's canonical text: a
 * JSON.parse per record cost as much as the chain check itself.
 */
import type { UsageRecord } from '../../protocol/usage-record.ts';

export type RecordSummary = Pick<UsageRecord, 'index' | 'deviceId' | 'seq' | 'payer' | 'currency' | 'amountNano'> & { kind?: UsageRecord['kind'] };

/** The string value of the member `needle` (`,"name":"`) at or after `from`: [value, where it ends], or undefined. */
function stringAfter(text: string, needle: string, from: number): [string, number] | undefined {
  const at = text.indexOf(needle, from);
  if (at < 0) return undefined;
  const start = at + needle.length;
  const end = text.indexOf('"', start);
  return end < 0 ? undefined : [text.slice(start, end), end];
}

/** The non-negative integer value of the member `needle` (`,"name":`) at or after `from`: [value, where it ends], or undefined. */
function integerAfter(text: string, needle: string, from: number): [number, number] | undefined {
  const at = text.indexOf(needle, from);
  if (at < 0) return undefined;
  let value = 0;
  let i = at + needle.length;
  for (; i < text.length; i += 1) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) break;
    value = value * 10 + digit;
  }
  return i === at + needle.length || !Number.isSafeInteger(value) ? undefined : [value, i];
}

/**
 * The summary of a record from its canonical text (RFC 8785: members sorted, so each is
 * looked for after the one before). Without a backslash in the text no string value can
 * hold a quote, so `,"payer":"` can only start the payer member. Anything else (escapes,
 * another layout, a damaged record) is parsed whole; what cannot be parsed throws.
 */
export function recordSummaryOf(text: string): RecordSummary {
  if (text.startsWith('{"amountNano":"') && !text.includes('\\')) {
    const amount = stringAfter(text, '"amountNano":"', 0);
    const currency = amount && stringAfter(text, ',"currency":"', amount[1]);
    const device = currency && stringAfter(text, ',"deviceId":"', currency[1]);
    const index = device && integerAfter(text, ',"index":', device[1]);
    const payer = index && stringAfter(text, ',"payer":"', index[1]);
    const seq = payer && integerAfter(text, ',"seq":', payer[1]);
    if (amount && currency && device && index && payer && seq) {
      const summary: RecordSummary = { index: index[0], deviceId: device[0], seq: seq[0], payer: payer[0], currency: currency[0], amountNano: amount[0] };
      // kind sorts between index and messageHash; absent for a plain event.
      const kind = text.startsWith(',"kind":"', index[1]) ? stringAfter(text, ',"kind":"', index[1]) : undefined;
      if (kind) summary.kind = kind[0] as UsageRecord['kind'];
      return summary;
    }
  }
  const record = JSON.parse(text) as UsageRecord;
  const summary: RecordSummary = { index: record.index, deviceId: record.deviceId, seq: record.seq, payer: record.payer, currency: record.currency, amountNano: record.amountNano };
  if (record.kind !== undefined) summary.kind = record.kind;
  return summary;
}
