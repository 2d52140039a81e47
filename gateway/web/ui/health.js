/** The health section: broker, devices, queue, disk, bank, uplink, clock, ledger chain, key. */

import { $, el, show, when, duration, bytes, badge, renderInto, fact } from './dom.js';
import { renderIngest } from './charts.js';

export function renderHealth(s) {
  const h = s.health ?? {};
  const chain = s.chain ?? {};
  const devices = s.devices ?? [];
  const diskOk = Number(h.diskFreeBytes) > Number(h.diskFloorBytes);
  const bank = h.bank ?? {};
  const clock = h.clock ?? {};
  renderInto($('health-facts'), { h: { ...h, ingestPerMinute: undefined, uptimeS: duration(h.uptimeS) }, chain, n: devices.length, keyId: s.keyId, publicKey: s.publicKey }, () => [
    fact('Up for', 'health-uptime', duration(h.uptimeS), h.startedAt ? el('span', { class: 'muted' }, ' since ', when(h.startedAt)) : null),
    fact('MQTT', 'health-mqtt', `${show(h.mqttMode)} broker `, h.brokerConnected ? badge('connected', 'ok') : badge('not connected', 'bad')),
    fact('Devices connected', 'health-devices', `${show(h.devicesConnected)} of ${devices.filter((d) => !d.revoked).length}`),
    fact('Intake queue', 'health-queue', `${show(h.intakeQueue)} waiting`),
    fact('Disk', 'health-disk', diskOk ? badge('OK', 'ok') : badge('below floor', 'bad'), ` ${bytes(h.diskFreeBytes)} free, floor ${bytes(h.diskFloorBytes)}`,
      diskOk ? null : el('span', { class: 'muted', text: ' (new usage is refused until space is freed)' })),
    fact('Bank', 'health-bank', bankState(bank), bank.lastOkAt ? el('span', { class: 'muted' }, ' last OK ', when(bank.lastOkAt)) : null,
      bank.lastError ? el('span', { class: 'detail', text: ` ${show(bank.lastError)}` }) : null),
    fact('Uplink', 'health-uplink', uplinkState(h.uplink)),
    fact('Clock', 'health-clock', clock.ok ? badge('OK', 'ok') : badge('wrong', 'bad'), ' ', clock.now ? when(clock.now) : '', clock.detail ? el('span', { class: 'muted', text: ` ${show(clock.detail)}` }) : null),
    fact('Ledger chain', 'health-chain', chain.ok ? badge('verified', 'ok') : badge('BROKEN: settlement stopped', 'bad'),
      ' ', el('span', { testid: 'records-total', text: show(chain.headIndex) }), ' entries, sealed through ', show(chain.sealedThrough),
      chain.ok ? null : el('ul', null, (chain.problems ?? []).map((p) => el('li', { text: show(p) })))),
    fact('Gateway key', 'health-key', el('code', { text: show(s.keyId) }), ' ', el('code', { class: 'hash', text: show(s.publicKey) })),
  ]);
  renderIngest(h.ingestPerMinute ?? []);
}

function bankState(bank) {
  if (bank.reachable === true) return badge('reachable', 'ok');
  if (bank.reachable === false) return badge('unreachable', 'bad');
  return badge('not contacted yet', 'muted');
}

function uplinkState(uplink) {
  if (!uplink || uplink.configured === false) return badge('not configured', 'muted');
  const { configured, ...rest } = uplink;
  return [badge('configured', 'ok'), ...Object.entries(rest).map(([k, v]) => ` ${k}: ${show(v)}`)];
}
