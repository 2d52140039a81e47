/** Secrets the gateway shows once (device passwords, flash sheets, invitation links). */

import { $, el, show } from './dom.js';

async function copyText(value, button, source) {
  let copied = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(value);
      copied = true;
    }
  } catch { /* fall back below */ }
  if (!copied) {
    // Plain http on a LAN address has no clipboard API; the old way still works there.
    const scratch = el('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true' });
    scratch.value = value;
    (button.closest('dialog') ?? document.body).append(scratch);
    scratch.select();
    try { copied = document.execCommand('copy'); } catch { copied = false; }
    scratch.remove();
  }
  if (!copied) {
    const range = document.createRange();
    range.selectNodeContents(source);
    getSelection()?.removeAllRanges();
    getSelection()?.addRange(range);
  }
  button.textContent = copied ? 'Copied' : 'Selected: press Ctrl+C';
  setTimeout(() => { button.textContent = 'Copy'; }, 2500);
}

export function showSecret({ title, warning, items }) {
  $('secret-title').textContent = title;
  $('secret-warning').textContent = warning;
  $('secret-body').replaceChildren(...items.map(({ label, value, testid, block }) => {
    const text = el(block ? 'pre' : 'code', { class: 'secret', testid, text: show(value) });
    return el('div', { class: 'secret-item' },
      el('p', null, el('strong', { text: label }), ' ',
        el('button', { type: 'button', testid: `${testid}-copy`, text: 'Copy', onclick: (e) => void copyText(show(value), e.currentTarget, text) })),
      text);
  }));
  $('secret-dialog').showModal();
}

export function showCredentials(answer, verb) {
  showSecret({
    title: `${verb} ${show(answer.id)}: its new MQTT password`,
    warning: 'Copy the password (or the flash sheet) now. It is shown only this once: the gateway keeps only a hash and cannot show it again.',
    items: [
      { label: 'Password', value: answer.password, testid: 'credentials' },
      ...(answer.flashSheet ? [{ label: 'Flash sheet', value: answer.flashSheet, testid: 'flash-sheet', block: true }] : []),
    ],
  });
}

export function setUpSecretDialog() {
  $('secret-close').addEventListener('click', () => $('secret-dialog').close());
}
