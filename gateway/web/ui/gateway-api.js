/**
 * Talking to the gateway's JSON API (docs/operator-page.md), and the status line where the
 * page reports what the gateway answered.
 */

import { $, el, timeFormat } from './dom.js';
import { state } from './state.js';

export function newActionId() {
  // randomUUID exists only in secure contexts; a LAN address over http is not one.
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

function errorText(status, data) {
  if (data && typeof data.error === 'string') return data.error;
  if (status === 403) return 'The gateway refused the request (403): reload the page and try again.';
  return `The gateway answered ${status}.`;
}

/** One request; never throws. `network` is true when no answer came back. */
export async function api(method, url, { body, actionId } = {}) {
  const headers = { accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET') {
    headers['content-type'] = 'application/json';
    headers['x-csrf-token'] = state.session.csrfToken;
    if (actionId) headers['x-action-id'] = actionId;
    init.body = JSON.stringify(body ?? {});
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    return { ok: false, network: true, error: `Could not reach the gateway (${error.message}).` };
  }
  if (response.status === 401) {
    location.assign('/login');
    return { ok: false, error: 'Your session has ended: log in again.' };
  }
  let data;
  try { data = await response.json(); } catch { data = undefined; }
  if (!response.ok) return { ok: false, status: response.status, error: errorText(response.status, data) };
  return { ok: true, status: response.status, data };
}

export function showStatus(message, kind = 'ok') {
  const area = $('status');
  area.dataset.kind = kind;
  area.replaceChildren(
    el('span', { class: 'status-time', text: timeFormat.format(new Date()) }),
    el('span', { class: 'status-text', text: message }),
    el('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss message', text: '×', onclick: () => { area.replaceChildren(); delete area.dataset.kind; } }),
  );
}
