/** The "Provision a device" form: payer and meter choices, checking the fields, confirming. */

import { $, el, show, renderInto, fieldError } from './dom.js';
import { state } from './state.js';
import { confirmAction } from './confirm-dialog.js';
import { showCredentials } from './secret-dialog.js';

const ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const KEY_PATTERN = /^[0-9a-f]{64}$/;

export function renderProvisionChoices(s) {
  const select = $('provision-payer');
  const payers = (s.payers ?? []).map((p) => ({ payer: p.payer, name: p.name }));
  const chosen = select.value;
  renderInto(select, payers, () => [el('option', { value: '', text: payers.length ? 'Choose a payer' : 'No payers configured' }),
    ...payers.map((p) => el('option', { value: p.payer, text: p.name && p.name !== p.payer ? `${p.name} (${p.payer})` : p.payer }))]);
  if (chosen && select.value !== chosen && payers.some((p) => p.payer === chosen)) select.value = chosen;
  const meters = [...new Set((s.devices ?? []).flatMap((d) => d.meters ?? []))].sort();
  const boxes = $('provision-meter-boxes');
  $('provision-meter-choices').hidden = meters.length === 0;
  renderInto(boxes, meters, () => {
    const checked = new Set([...boxes.querySelectorAll('input:checked')].map((i) => i.value));
    return meters.map((m) => el('label', { class: 'choice' },
      el('input', { type: 'checkbox', name: 'meter', value: m, testid: `provision-meter-${m}`, checked: checked.has(m) }), ` ${m}`));
  });
}

function readProvisionForm() {
  const id = $('provision-id').value.trim();
  const payer = $('provision-payer').value;
  const typed = $('provision-meters').value.split(',').map((m) => m.trim()).filter(Boolean);
  const ticked = [...$('provision-meter-boxes').querySelectorAll('input:checked')].map((i) => i.value);
  const meters = [...new Set([...ticked, ...typed])];
  const description = $('provision-description').value.trim();
  const publicKey = $('provision-key').value.trim().toLowerCase();
  if (!ID_PATTERN.test(id)) return fieldError('provision-error', 'Device id: 1–63 of a–z 0–9 . _ - starting with a letter or digit.');
  if (!payer) return fieldError('provision-error', 'Payer: choose who pays for this device.');
  if (meters.length === 0) return fieldError('provision-error', 'Meters: tick or type at least one meter.');
  const badMeter = meters.find((m) => !ID_PATTERN.test(m));
  if (badMeter) return fieldError('provision-error', `Meters: "${badMeter}" is not a meter id (a–z 0–9 . _ -).`);
  if (publicKey && !KEY_PATTERN.test(publicKey)) return fieldError('provision-error', 'Public key: 64 hex digits (an Ed25519 public key), or leave it empty.');
  $('provision-error').textContent = '';
  return { id, payer, meters, ...(description ? { description } : {}), ...(publicKey ? { publicKey } : {}) };
}

export function setUpProvisionForm() {
  const form = $('provision-form');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const body = readProvisionForm();
    if (!body) return;
    const payer = (state.snapshot?.payers ?? []).find((p) => p.payer === body.payer);
    confirmAction({
      title: `Provision device ${body.id}`,
      lines: [
        `Add device ${body.id}, billed to ${payer?.name ?? body.payer}, for the meters ${body.meters.join(', ')}.`,
        body.publicKey ? 'It must sign every message with the Ed25519 key you gave; unsigned messages are refused.' : 'Its messages are not signed (no public key given).',
        'A new MQTT password is made for it and shown once, in the next window.',
      ],
      confirmLabel: 'Provision',
      url: '/api/devices',
      body,
      success: (a) => `Device ${show(a.id ?? body.id)} provisioned.`,
      done: (a) => {
        form.reset();
        for (const box of $('provision-meter-boxes').querySelectorAll('input')) box.checked = false;
        showCredentials({ id: body.id, ...a }, 'Provisioned'); },
    });
  });
}
