/**
 * Keeping the page current: the /api/events stream of snapshots, falling back to polling
 * /api/state when the stream fails, and drawing every part of the page from a snapshot.
 */

import { $ } from './dom.js';
import { api, showStatus } from './gateway-api.js';
import { state } from './state.js';
import { renderHeader, renderProblems } from './header-and-problems.js';
import { renderHealth } from './health.js';
import { renderDevices } from './devices.js';
import { renderProvisionChoices } from './provisioning.js';
import { renderMoney, renderBatches } from './money.js';
import { renderRecords } from './records.js';

const POLL_INTERVAL_MS = 5_000;
const EVENTS_RETRY_MS = 60_000;
const EVENT_ERRORS_MAX = 3;

const live = { source: undefined, errors: 0, pollTimer: 0, retryTimer: 0 };
const LIVE_TEXT = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', polling: 'polling every 5 s', offline: 'offline: showing the last state' };

function setLive(mode) {
  const indicator = $('live');
  if (indicator.dataset.state === mode) return;
  indicator.dataset.state = mode;
  indicator.textContent = LIVE_TEXT[mode];
}

export function connectEvents() {
  clearTimeout(live.retryTimer);
  live.retryTimer = 0;
  if (typeof EventSource !== 'function') { startPolling(); return; }
  live.errors = 0;
  const source = new EventSource('/api/events');
  live.source = source;
  source.addEventListener('open', () => { live.errors = 0; setLive('live'); });
  source.addEventListener('state', (event) => {
    live.errors = 0;
    stopPolling();
    setLive('live');
    applyJson(event.data);
  });
  source.addEventListener('error', () => {
    if (live.source !== source) return;
    live.errors += 1;
    // EventSource retries by itself; a closed stream (e.g. 401) or repeated failures do not heal.
    if (source.readyState === EventSource.CLOSED || live.errors >= EVENT_ERRORS_MAX) {
      source.close();
      live.source = undefined;
      startPolling();
    } else {
      setLive('reconnecting');
    }
  });
}

function startPolling() {
  if (!live.pollTimer) {
    live.pollTimer = setInterval(() => void pollState(), POLL_INTERVAL_MS);
    void pollState();
  }
  if (!live.retryTimer) live.retryTimer = setTimeout(connectEvents, EVENTS_RETRY_MS);
}

function stopPolling() {
  clearInterval(live.pollTimer);
  live.pollTimer = 0;
}

async function pollState() {
  const ok = await refreshState();
  if (live.pollTimer) setLive(ok ? 'polling' : 'offline');
}

export async function refreshState() {
  const result = await api('GET', '/api/state');
  if (result.ok) applySnapshot(result.data);
  return result.ok;
}

function applyJson(text) {
  let parsed;
  try { parsed = JSON.parse(text); } catch { return; }
  applySnapshot(parsed);
}

let renderErrorShown = false;

function applySnapshot(s) {
  if (!s || typeof s !== 'object') return;
  state.snapshot = s;
  const parts = [renderHeader, renderProblems, renderHealth, renderDevices, renderProvisionChoices, renderMoney, renderBatches, renderRecords];
  for (const render of parts) {
    try {
      render(s);
    } catch (error) {
      // One odd field must not blank the whole page; say so once.
      if (!renderErrorShown) showStatus(`Part of the page could not be shown (${error.message}).`, 'error');
      renderErrorShown = true;
    }
  }
  $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
}
