/** The devices table, rotating and revoking a device, and the device detail dialog. */

import { $, el, show, table, when, duration, gapText, badge, renderInto, fact } from './dom.js';
import { api } from './gateway-api.js';
import { confirmAction } from './confirm-dialog.js';
import { showCredentials } from './secret-dialog.js';
import { rejectionTable } from './header-and-problems.js';
import { seriesSummary, drawMinuteChart, dropChart } from './charts.js';

function deviceStatus(d) {
  if (d.revoked || d.status === 'revoked') return { text: 'revoked', kind: 'muted' };
  if (d.status === 'online') return { text: 'online', kind: 'ok' };
  if (d.status === 'never') return { text: 'never seen', kind: 'warn' };
  if (d.status === 'silent') return { text: d.silentForS === undefined ? 'silent' : `silent for ${duration(d.silentForS)}`, kind: 'bad' };
  return { text: show(d.status ?? (d.connected ? 'online' : 'offline')), kind: 'muted' };
}

function usageToday(usage) {
  return Object.entries(usage ?? {}).map(([meter, q]) => `${meter}: ${show(q)}`).join(', ');
}

function lastReading(r) {
  if (!r) return '';
  return el('span', null, `${show(r.quantity)} ${show(r.unit)} `, el('span', { class: 'muted' }, when(r.at)));
}

export function renderDevices(s) {
  const devices = s.devices ?? [];
  const key = devices.map((d) => ({ ...d, silentForS: undefined, status: deviceStatus(d).text }));
  renderInto($('devices'), key, () => table({
    caption: 'Devices',
    headings: ['Device', 'Status', 'Payer', 'Meters', 'Last reading', 'Today', 'Accepted', 'Duplicates', 'Rejected', 'Missing seqs', 'Signed', 'Actions'],
    empty: 'No devices provisioned yet. Use "Provision a device" below.',
    rows: devices.map((d) => {
      const status = deviceStatus(d);
      return {
        props: { testid: `device-row-${d.id}`, class: d.revoked ? 'revoked' : undefined },
        cells: [
          el('button', { type: 'button', class: 'link', testid: `device-open-${d.id}`, title: 'Show usage and rejections', text: d.id, onclick: () => void openDevice(d.id) }),
          badge(status.text, status.kind, `device-status-${d.id}`),
          d.payer, (d.meters ?? []).join(', '), lastReading(d.lastReading), usageToday(d.usageToday),
          d.accepted, d.duplicates, d.rejected, gapText(d.gaps),
          d.signed ? 'signed' : 'not signed',
          d.revoked ? '' : el('span', { class: 'row-actions' },
            el('button', { type: 'button', testid: `device-rotate-${d.id}`, text: 'Rotate…', onclick: () => confirmRotate(d) }),
            el('button', { type: 'button', class: 'danger', testid: `device-revoke-${d.id}`, text: 'Revoke…', onclick: () => confirmRevoke(d) })),
        ],
      };
    }),
  }));
}

function confirmRotate(d) {
  confirmAction({
    title: `Rotate the password of ${d.id}`,
    lines: [
      `Make a new MQTT password for ${d.id}. The old password stops working now, so the device cannot send usage until the new password is flashed onto it.`,
      'The new password is shown once, in the next window.',
    ],
    confirmLabel: 'Rotate password',
    danger: true,
    url: `/api/devices/${encodeURIComponent(d.id)}/rotate`,
    success: (a) => `New password made for ${show(a.id ?? d.id)}.`,
    done: (a) => showCredentials({ id: d.id, ...a }, 'Rotated'),
  });
}

function confirmRevoke(d) {
  confirmAction({
    title: `Revoke ${d.id}`,
    lines: [
      `Disconnect ${d.id} now and refuse it from now on: it can no longer connect or send usage.`,
      'Usage it already sent stays in the ledger and is still billed to its payer. Revoking cannot be undone from this page.',
    ],
    confirmLabel: 'Revoke device',
    danger: true,
    url: `/api/devices/${encodeURIComponent(d.id)}/revoke`,
    success: () => `${d.id} revoked and disconnected.`,
  });
}

let deviceRequestNo = 0;

async function openDevice(id) {
  const requestNo = ++deviceRequestNo;
  const dialog = $('device-dialog');
  $('device-title').textContent = `Device ${id}`;
  $('device-body').replaceChildren(el('p', { class: 'muted', text: 'Loading…' }));
  $('device-summary').textContent = '';
  $('device-rejections').replaceChildren();
  dropChart($('device-plot'));
  $('device-plot').replaceChildren();
  if (!dialog.open) dialog.showModal();
  const result = await api('GET', `/api/devices/${encodeURIComponent(id)}`);
  if (requestNo !== deviceRequestNo || !dialog.open) return;
  if (!result.ok) {
    $('device-body').replaceChildren(el('p', { class: 'form-error', text: `Cannot show ${id}: ${result.error}` }));
    return;
  }
  const { device = {}, usagePerMinute = [], rejections = [] } = result.data ?? {};
  const status = deviceStatus(device);
  $('device-body').replaceChildren(el('dl', { class: 'facts' },
    fact('Status', 'device-detail-status', badge(status.text, status.kind), device.connected ? ' (connected)' : ''),
    fact('Payer', 'device-detail-payer', show(device.payer)),
    fact('Meters', 'device-detail-meters', (device.meters ?? []).join(', ')),
    fact('Last seen', 'device-detail-seen', when(device.lastSeenAt), device.lastSeq !== undefined ? ` (seq ${device.lastSeq})` : ''),
    fact('Last reading', 'device-detail-reading', lastReading(device.lastReading)),
    fact('Today', 'device-detail-today', usageToday(device.usageToday)),
    fact('Messages', 'device-detail-counts', `${show(device.accepted)} accepted, ${show(device.duplicates)} duplicates, ${show(device.rejected)} rejected`),
    fact('Missing seqs', 'device-detail-gaps', gapText(device.gaps) || 'none'),
    fact('Signed', 'device-detail-signed', device.signed ? 'yes (Ed25519)' : 'no')));
  $('device-summary').textContent = seriesSummary(usagePerMinute.map((n) => Number(n) || 0));
  drawMinuteChart($('device-plot'), usagePerMinute, 'records');
  $('device-rejections').replaceChildren(rejectionTable(rejections, false));
}

export function setUpDeviceDialog() {
  const dialog = $('device-dialog');
  $('device-close').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => { deviceRequestNo += 1; dropChart($('device-plot')); });
}
