/** The page header (gateway id, version) and the problems section: what needs attention first. */

import { $, el, show, table, when, gapText, badge, renderInto } from './dom.js';
import { confirmAction } from './confirm-dialog.js';

export function renderHeader(s) {
  $('gateway-id').textContent = show(s.gatewayId);
  $('version').textContent = s.health?.version ? `v${show(s.health.version)}` : '';
  document.title = `meterbridge · ${show(s.gatewayId)}`;
}

function problemList(s) {
  const problems = [...(s.problems ?? [])];
  if (s.chain && !s.chain.ok && !problems.some((p) => String(p.kind ?? '').includes('chain'))) {
    // The server lists it too; this only keeps the worst case from ever going unshown.
    problems.unshift({ severity: 'error', kind: 'chain', title: 'The ledger chain is broken: settlement is stopped', detail: (s.chain.problems ?? []).map(show).join('; '), action: 'Settlement stays stopped until the ledger verifies again; see the gateway log.' });
  }
  return problems;
}

export function renderProblems(s) {
  const problems = problemList(s);
  const alerts = s.alerts ?? [];
  const reasons = Object.entries(s.rejectionsByReason ?? {}).filter(([, n]) => Number(n) > 0);
  const gaps = (s.devices ?? []).filter((d) => (d.gaps ?? []).length > 0).map((d) => ({ id: d.id, gaps: d.gaps }));
  renderInto($('problems'), { problems, alerts, reasons, gaps, rejections: s.rejections, dropped: s.rejectionsDropped }, () => {
    if (problems.length + alerts.length + reasons.length + gaps.length === 0) {
      return el('p', { class: 'no-problems', testid: 'no-problems' }, badge('OK', 'ok'), ' No problems.');
    }
    return [
      problems.length > 0 && el('ul', { class: 'problem-list' }, problems.map(problemItem)),
      alerts.length > 0 && alertList(alerts),
      reasons.length > 0 && rejectionSummary(s, reasons),
      gaps.length > 0 && el('div', { testid: 'sequence-gaps' },
        el('h3', { text: 'Missing sequence numbers' }),
        el('p', { class: 'muted', text: 'Messages these devices numbered but the gateway never received (lost, or still queued on the device).' }),
        el('ul', null, gaps.map((g) => el('li', { testid: `gap-${g.id}` }, el('strong', { text: g.id }), `: ${gapText(g.gaps)}`)))),
    ];
  });
}

function problemItem(p, i) {
  const isError = p.severity === 'error';
  return el('li', { class: `problem ${isError ? 'error' : 'warning'}`, testid: `problem-${i}` },
    el('p', { class: 'problem-title' }, badge(isError ? 'Error' : 'Warning', isError ? 'bad' : 'warn'), ' ', el('strong', { text: show(p.title) })),
    p.detail ? el('p', { text: show(p.detail) }) : null,
    p.action ? el('p', { class: 'problem-action' }, el('strong', { text: 'What to do: ' }), show(p.action)) : null);
}

function alertList(alerts) {
  return el('div', { testid: 'alerts' },
    el('h3', { text: 'Reconciliation alerts' }),
    el('p', { class: 'muted', text: 'The ledger and the bank disagree. Check with the bank, then acknowledge.' }),
    el('ul', { class: 'problem-list' }, alerts.map(alertItem)));
}

function alertItem(a) {
  const acknowledge = () => confirmAction({
    title: `Acknowledge alert ${a.alertNo}`,
    lines: [`Mark reconciliation alert ${a.alertNo} (${show(a.kind)}) as seen. It leaves this list and the audit log records that you acknowledged it.`, 'This changes no payment and no ledger entry.'],
    confirmLabel: 'Acknowledge',
    url: `/api/alerts/${encodeURIComponent(a.alertNo)}/ack`,
    success: () => `Alert ${a.alertNo} acknowledged.`,
  });
  return el('li', { class: 'problem error', testid: `alert-${a.alertNo}` },
    el('p', { class: 'problem-title' }, badge('Alert', 'bad'), ' ', el('strong', { text: `#${a.alertNo} ${show(a.kind)}` }), ' ', when(a.at), a.batchId ? ` · batch ${show(a.batchId)}` : ''),
    el('p', { text: show(a.detail) }),
    el('button', { type: 'button', testid: `alert-ack-${a.alertNo}`, text: 'Acknowledge…', onclick: acknowledge }));
}

function rejectionSummary(s, reasons) {
  const recent = s.rejections ?? [];
  return el('div', { testid: 'rejections-by-reason' },
    el('h3', { text: 'Rejected messages' }),
    table({
      headings: ['Reason', 'Messages'],
      rows: reasons.sort((a, b) => Number(b[1]) - Number(a[1])).map(([reason, n]) => ({ props: { testid: `rejection-reason-${reason}` }, cells: [reason, n] })),
      empty: '',
    }),
    recent.length > 0 && el('details', { class: 'panel' },
      el('summary', { text: `Latest ${recent.length} rejections` }),
      rejectionTable(recent, true),
      Number(s.rejectionsDropped) > 0 ? el('p', { class: 'muted', text: `${s.rejectionsDropped} older rejections are no longer kept.` }) : null));
}

export function rejectionTable(rejections, withDevice) {
  const headings = ['When', ...(withDevice ? ['Device'] : []), 'Reason', 'Field', 'Detail', 'Topic'];
  return table({
    headings,
    rows: rejections.map((r) => ({ cells: [when(r.at), ...(withDevice ? [r.deviceId] : []), r.reason, r.field ?? '', r.detail, r.topic] })),
    empty: 'No rejections.',
  });
}
