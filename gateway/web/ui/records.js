/** The latest usage records (journal) and accounts entries, which a correction names. */

import { $, show, table, when, money, renderInto } from './dom.js';

export function renderRecords(s) {
  const records = Array.isArray(s.records) ? s.records : [];
  renderInto($('records'), records, () => table({
    caption: 'Latest usage records (journal)',
    headings: ['Record', 'Device', 'Seq', 'Meter', 'Quantity', 'Payer', 'Amount', 'Received'],
    empty: 'No usage recorded yet.',
    rows: records.map((r) => ({
      props: { testid: `record-row-${r.index}` },
      cells: [r.index, r.deviceId, r.seq, r.meter, `${show(r.quantity)} ${show(r.unit)}`, r.payer, money(r.amount, r.currency), when(r.receivedAt)],
    })),
  }));
  // Accounts entries: what a correction names (a reversing entry that references it).
  const entries = Array.isArray(s.entries) ? s.entries : [];
  renderInto($('entries'), entries, () => table({
    caption: 'Latest accounts entries (a correction names one of these)',
    headings: ['Entry', 'When', 'Kind', 'Batch', 'Lines', 'Note'],
    empty: 'No accounts entries yet: they are posted when batches are sealed and settled.',
    rows: entries.map((e) => ({
      props: { testid: `entry-row-${e.no}` },
      cells: [e.no, when(e.at), e.kind, show(e.batchId ?? (e.corrects ? `corrects ${e.corrects}` : '')),
        (e.lines ?? []).map((l) => `${show(l.account)} ${l.debit ? `Dr ${l.debit}` : `Cr ${show(l.credit)}`} ${show(e.currency)}`).join('; '),
        [e.operator, e.reason].filter(Boolean).join(': ')],
    })),
  }));
}
