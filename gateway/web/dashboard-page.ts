/** The operator page, rendered on the server: no scripts, refreshes itself every 5 s. */
import type { Snapshot } from './snapshot.ts';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const escapeHtml = (value: unknown): string => String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]!);

function table(headings: string[], rows: unknown[][], empty: string): string {
  if (rows.length === 0) return `<p class="empty">${escapeHtml(empty)}</p>`;
  const head = headings.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const body = rows.map((row) => `<tr>${row.map((cell) => `<td>${escapeHtml(cell)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

const STYLE = `body{font:14px/1.4 system-ui,sans-serif;margin:0 2rem 2rem;color:#1b1f23}
h1{font-size:1.3rem}h2{font-size:1.05rem;margin-top:1.6rem}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #e1e4e8;font-variant-numeric:tabular-nums}
th{background:#f6f8fa}.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:600}.empty{color:#57606a}
header{display:flex;justify-content:space-between;align-items:center}code{font-size:12px}`;

export function renderDashboard(s: Snapshot): string {
  const chain = s.chain.ok
    ? `<span class="ok">chain verified</span> through record ${s.chain.headIndex}`
    : `<span class="bad">chain broken: settlement stopped</span><ul>${s.chain.problems.map((p) => `<li>${escapeHtml(p)}</li>`).join('')}</ul>`;
  const settled = s.settled.map((x) => `${x.amount} ${x.currency}`).join(', ') || 'nothing yet';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>meterbridge · ${escapeHtml(s.gatewayId)}</title><style>${STYLE}</style></head><body>
<header><h1>meterbridge gateway ${escapeHtml(s.gatewayId)}</h1>
<form method="post" action="/logout"><button type="submit">Log out</button></form></header>
<p>${chain} · sealed through ${s.chain.sealedThrough} · settled: <strong>${escapeHtml(settled)}</strong><br>
Gateway key <code>${escapeHtml(s.keyId)}</code> (public <code>${escapeHtml(s.publicKey)}</code>)</p>
${s.alerts.length > 0 ? `<h2>Reconciliation alerts</h2>\n${table(['#', 'when', 'kind', 'batch', 'detail'], s.alerts.map((a) => [a.alertNo, a.at, a.kind, a.batchId ?? '', a.detail]), '')}` : ''}
<h2>Devices</h2>
${table(['device', 'payer', 'meters', 'connected', 'accepted', 'duplicates', 'refused', 'last seq', 'missing seqs', 'last seen'],
    s.devices.map((d) => [d.revoked ? `${d.id} (revoked)` : d.id, d.payer, d.meters.join(', '), d.connected ? 'yes' : 'no', d.accepted, d.duplicates, d.rejected, d.lastSeq ?? '',
      d.gaps.map((g) => (g.from === g.to ? `${g.from}` : `${g.from}–${g.to}`)).join(', '), d.lastSeenAt ?? '']),
    'No devices provisioned.')}
<h2>Payments (batches)</h2>
${table(['batch', 'payer', 'records', 'priced total', 'paid', 'carried', 'state', 'why', 'bank payment', 'bank status', 'last error', 'sealed'],
    s.batches.map((b) => [b.batchNo, b.payer, b.records, `${b.total} ${b.currency}`, `${b.amount} ${b.currency}`, b.carriedOut, b.state, b.reason ?? '', b.paymentId ?? '', b.bankStatus ?? '', b.lastError ?? '', b.sealedAt]),
    'No batch sealed yet.')}
<h2>Carried remainders</h2>
${table(['payer', 'currency', 'carried'], s.carried.map((c) => [c.payer, c.currency, c.amount]), 'Nothing carried.')}
<h2>Latest records</h2>
${table(['#', 'device', 'seq', 'meter', 'quantity', 'payer', 'amount', 'received'],
    s.records.map((r) => [r.index, r.deviceId, r.seq, r.meter, `${r.quantity} ${r.unit}`, r.payer, `${r.amount} ${r.currency}`, r.receivedAt]),
    'No usage recorded yet.')}
${s.sparkplugEvents.length > 0 ? `<h2>Sparkplug B sequence</h2>\n${table(['event'], s.sparkplugEvents.map((e) => [JSON.stringify(e)]), '')}` : ''}
<h2>Refused messages</h2>
${table(['when', 'device', 'topic', 'reason', 'field', 'detail'], s.rejections.map((r) => [r.at, r.deviceId, r.topic, r.reason, r.field ?? '', r.detail]), 'Nothing refused.')}
${s.rejectionsDropped > 0 ? `<p>${s.rejectionsDropped} older refusals no longer kept.</p>` : ''}
</body></html>`;
}

export function renderLogin(message?: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>meterbridge · log in</title><style>${STYLE}</style></head><body>
<h1>meterbridge operator login</h1>
${message ? `<p class="bad">${escapeHtml(message)}</p>` : ''}
<form method="post" action="/login">
<p><label>User <input name="username" autocomplete="username" value="operator" required></label></p>
<p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
<p><button type="submit">Log in</button></p></form>
<p class="empty">The password was printed once when the gateway first started; <code>meterbridge gateway --reset-login</code> makes a new one.</p>
</body></html>`;
}
