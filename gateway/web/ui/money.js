/** The money section: payers and their statements, batches, seal and settle now, corrections. */

import { $, el, show, table, when, money, sameOriginHref, badge, renderInto, fact, fieldError } from './dom.js';
import { confirmAction } from './confirm-dialog.js';

function statementLinks(p) {
  const st = p.statement ?? {};
  const link = (href, text, testid, download) => {
    const safe = sameOriginHref(href);
    return safe ? el('a', { href: safe, testid, download: download || undefined, ...(download ? {} : { target: '_blank', rel: 'noopener' }), text }) : null;
  };
  const links = [
    link(st.html, 'HTML', `statement-html-${p.payer}`, false),
    link(st.csv, 'CSV', `statement-csv-${p.payer}`, true),
    link(st.json, 'JSON', `statement-json-${p.payer}`, true),
  ].filter(Boolean);
  const bundle = link(st.bundle, 'Proof bundle', `bundle-${p.payer}`, true);
  return el('p', { class: 'links' },
    `Statement${st.month ? ` ${show(st.month)}` : ''}: `, links.flatMap((a, i) => (i === 0 ? [a] : [' · ', a])),
    bundle ? [' · ', bundle] : null);
}

function payerCard(p) {
  const next = p.nextSettlement ?? {};
  const consent = p.consent ?? {};
  return el('article', { class: `card${next.held ? ' held' : ''}`, testid: `payer-${p.payer}` },
    el('h3', null, show(p.name ?? p.payer), ' ', el('span', { class: 'muted', text: `${p.payer} · ${show(p.currency)}` })),
    el('dl', { class: 'facts' },
      fact('Open balance', `balance-${p.payer}`, money(p.openBalance, p.currency)),
      fact('Carried remainder', `carried-${p.payer}`, money(p.carried, p.currency)),
      fact('Next settlement', `next-${p.payer}`, next.at ? when(next.at) : 'not scheduled', next.rule ? el('span', { class: 'muted', text: ` (${show(next.rule)})` }) : null,
        next.held ? el('span', { class: 'held-reason' }, ' ', badge('held', 'warn'), ` since `, when(next.held.since), `: ${show(next.held.reason)}`) : null),
      fact('Consent', `consent-${p.payer}`, consent.maxIndividualAmount !== undefined ? `at most ${money(consent.maxIndividualAmount, p.currency)} a payment` : 'none',
        consent.status ? el('span', { class: 'muted', text: ` (${show(consent.status)})` }) : null)),
    statementLinks(p));
}

export function renderMoney(s) {
  const payers = s.payers ?? [];
  renderInto($('payers'), payers, () => (payers.length ? payers.map(payerCard) : el('p', { class: 'muted empty', text: 'No payers configured.' })));
  const settled = (s.settled ?? []).map((x) => money(x.amount, x.currency)).join(', ');
  $('settled-total').textContent = `Settled so far: ${settled || 'nothing yet'}`;
}

/** gateway/settlement/batch-book.ts BATCH_STATES; a cancelled batch ends as 'carried'. */
const BATCH_STATE_KIND = { sealed: 'info', submitted: 'info', pending: 'info', held: 'warn', unknown: 'warn', settled: 'ok', rejected: 'bad', carried: 'muted' };

export function renderBatches(s) {
  const batches = s.batches ?? [];
  renderInto($('batches'), batches, () => table({
    caption: 'Batches',
    headings: ['Batch', 'Payer', 'Records', 'Priced total', 'Amount paid', 'Carried', 'State', 'Why', 'Bank payment', 'Bank status', 'Last error', 'Sealed', 'Actions'],
    empty: 'No batch sealed yet.',
    rows: batches.map((b) => ({
      props: { testid: `batch-row-${b.batchNo}`, title: b.merkleRoot ? `Merkle root ${b.merkleRoot}` : undefined },
      cells: [
        b.batchNo, b.payer, b.records, money(b.total, b.currency), money(b.amount, b.currency), money(b.carriedOut, b.currency),
        badge(show(b.state), BATCH_STATE_KIND[b.state] ?? 'muted', `batch-state-${b.batchNo}`),
        b.reason ?? '', b.paymentId ?? '', b.bankStatus ?? '', b.lastError ? { value: b.lastError, props: { class: 'detail' } } : '', when(b.sealedAt),
        batchActions(b),
      ],
    })),
  }));
}

function batchActions(b) {
  const actions = b.actions ?? [];
  if (actions.length === 0) return '';
  return el('span', { class: 'row-actions' },
    actions.includes('retry') && el('button', { type: 'button', testid: `batch-retry-${b.batchNo}`, text: 'Retry…', onclick: () => confirmRetry(b) }),
    actions.includes('cancel') && el('button', { type: 'button', class: 'danger', testid: `batch-cancel-${b.batchNo}`, text: 'Cancel…', onclick: () => confirmCancel(b) }));
}

function confirmRetry(b) {
  confirmAction({
    title: `Retry batch ${b.batchNo}`,
    lines: [`Submit batch ${b.batchNo} (${money(b.amount, b.currency)} from ${b.payer}) to the bank again now.`, b.reason ? `It was held because: ${b.reason}` : 'It is held now.'],
    confirmLabel: 'Submit again',
    url: `/api/batches/${encodeURIComponent(b.batchNo)}/retry`,
    success: (a) => `Batch ${b.batchNo} submitted again: now ${show(a.state ?? 'submitted')}.`,
  });
}

function confirmCancel(b) {
  confirmAction({
    title: `Cancel batch ${b.batchNo}`,
    lines: [`No payment is made for batch ${b.batchNo}. Its amount, ${money(b.amount, b.currency)}, is carried into ${b.payer}'s next batch, so nothing is lost or billed twice.`, 'Cancelling cannot be undone.'],
    confirmLabel: 'Cancel batch',
    danger: true,
    url: `/api/batches/${encodeURIComponent(b.batchNo)}/cancel`,
    success: (a) => `Batch ${b.batchNo} cancelled: now ${show(a.state ?? 'carried')}; its amount is carried.`,
  });
}

export function setUpMoneyActions() {
  $('seal-now').addEventListener('click', () => confirmAction({
    title: 'Seal now',
    lines: ['Seal every payer\'s open records into batches now, instead of waiting for the schedule.', 'Sealed records can no longer change; the batches are paid at the next settlement (or press "Settle now").'],
    confirmLabel: 'Seal now',
    url: '/api/seal',
    success: (a) => ((a.batches ?? []).length ? `Sealed batch${a.batches.length > 1 ? 'es' : ''} ${a.batches.join(', ')}.` : 'Nothing to seal: no open records.'),
  }));
  $('settle-now').addEventListener('click', () => confirmAction({
    title: 'Settle now',
    lines: ['Submit sealed batches to the bank now, and ask the bank about payments already submitted.', 'Batches held by a limit or a missing consent stay held.'],
    confirmLabel: 'Settle now',
    url: '/api/settle',
    success: () => 'Settlement run done: see the batches below.',
  }));
  $('correction-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const entryText = $('correction-entry').value.trim();
    const reason = $('correction-reason').value.trim();
    if (!/^[1-9][0-9]{0,15}$/.test(entryText)) { fieldError('correction-error', 'Entry number: a whole number from 1.'); return; }
    if (!reason) { fieldError('correction-error', 'Reason: say why the entry is wrong (it goes into the ledger and the statement).'); return; }
    $('correction-error').textContent = '';
    const entryNo = Number(entryText);
    confirmAction({
      title: `Correct entry ${entryNo}`,
      lines: [`Add a new ledger entry that reverses entry ${entryNo}, giving the reason "${reason}".`, 'Entry ' + entryNo + ' itself stays in the ledger; if it was already billed, the reversal is credited in the payer\'s next batch.'],
      confirmLabel: 'Add correction',
      danger: true,
      url: '/api/corrections',
      body: { entryNo, reason },
      success: (a) => `Entry ${entryNo} reversed by entry ${show(a.entryNo)}.`,
      done: () => $('correction-form').reset(),
    });
  });
}
