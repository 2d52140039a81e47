/** Actions that change something: asked in the confirm dialog first, then sent once. */

import { $, el } from './dom.js';
import { api, newActionId, showStatus } from './gateway-api.js';

let pendingAction;
/** Set by setUpConfirmDialog: app.js reloads the state and the audit log (this avoids an import cycle). */
let afterAction = () => {};

/**
 * Asks first, then POSTs once. The action id is made when the dialog opens and reused on
 * every Confirm, so a double click or a retry after a lost answer acts once (the gateway
 * answers a repeated id with the first answer).
 */
export function confirmAction({ title, lines, confirmLabel = 'Confirm', danger = false, url, body, success, done }) {
  pendingAction = { title, url, body, success, done, actionId: newActionId(), inFlight: false };
  $('confirm-title').textContent = title;
  $('confirm-text').replaceChildren(...lines.map((line) => el('p', { text: line })));
  $('confirm-error').textContent = '';
  const ok = $('confirm-ok');
  ok.textContent = confirmLabel;
  ok.dataset.label = confirmLabel;
  ok.disabled = false;
  ok.classList.toggle('danger', danger);
  const dialog = $('confirm-dialog');
  if (!dialog.open) dialog.showModal();
  (danger ? $('confirm-cancel') : ok).focus();
}

async function runPendingAction() {
  const action = pendingAction;
  if (!action || action.inFlight) return;
  action.inFlight = true;
  const ok = $('confirm-ok');
  ok.disabled = true;
  ok.textContent = 'Working…';
  const result = await api('POST', action.url, { body: action.body, actionId: action.actionId });
  action.inFlight = false;
  const stillShown = pendingAction === action;
  if (result.network) {
    if (stillShown) {
      $('confirm-error').textContent = `${result.error} Confirm again to retry: it will not be done twice.`;
      ok.disabled = false;
      ok.textContent = ok.dataset.label ?? 'Confirm';
    }
    showStatus(`${action.title}: ${result.error}`, 'error');
    return;
  }
  if (stillShown) {
    pendingAction = undefined;
    $('confirm-dialog').close();
  }
  if (result.ok) {
    showStatus(action.success ? action.success(result.data ?? {}) : `${action.title}: done.`, 'ok');
    action.done?.(result.data ?? {});
  } else {
    showStatus(`${action.title} failed: ${result.error}`, 'error');
  }
  afterAction();
}

/** `reload` runs after every answered action, so the page shows what the action changed. */
export function setUpConfirmDialog({ reload }) {
  afterAction = reload;
  $('confirm-ok').addEventListener('click', () => void runPendingAction());
  $('confirm-cancel').addEventListener('click', () => $('confirm-dialog').close());
  $('confirm-dialog').addEventListener('close', () => {
    // An action still in flight reports into the status area when its answer comes.
    if (pendingAction && !pendingAction.inFlight) pendingAction = undefined;
  });
}
