/**
 * The operator page in the browser: one ES module, no build step, no framework. Spec:
 * docs/operator-page.md. The CSP allows only this origin's scripts and styles, so there is
 * no inline style, eval or innerHTML here: server text (device ids, rejection details,
 * bank errors) only goes into textContent or attribute values.
 *
 * data-testid hooks (<id> device id, <no> batch number, <payer> payer id, <i> index):
 *   page       gateway-id version username live ("live" while the event stream is up)
 *              logout-form logout status (the role=status area)
 *   problems   problems no-problems problem-<i> alerts alert-<no> alert-ack-<no>
 *              rejections-by-reason rejection-reason-<reason> sequence-gaps gap-<id>
 *   health     health health-{uptime,mqtt,devices,queue,disk,bank,uplink,clock,chain,key}
 *              records-total (chain head index) ingest-chart ingest-summary
 *   devices    devices device-{row,open,status,rotate,revoke}-<id>
 *              device-detail (dialog) device-chart device-rejections device-close
 *              provision-{form,id,payer,meters,description,key,error,submit}
 *              provision-meter-<meter> (checkboxes of meters seen on devices)
 *   money      seal-now settle-now settled payers payer-<payer> balance-<payer>
 *              carried-<payer> next-<payer> consent-<payer> statement-{html,csv,json}-<payer>
 *              bundle-<payer> batches batch-{row,state,retry,cancel}-<no> records
 *              record-row-<index> correction-{form,entry,reason,error,submit}
 *   operators  invite audit audit-refresh audit-row-<auditNo>
 *   dialogs    confirm-dialog confirm (its Confirm button) confirm-cancel secret-dialog
 *              credentials (the password shown once) flash-sheet invite-link
 *              credentials-copy flash-sheet-copy invite-link-copy secret-close
 *
 * Assumed beyond docs/operator-page.md: a POST without fields accepts the JSON body `{}`;
 * /api/devices/:id's `device` has a snapshot device's fields; audit entries are
 * gateway/web/audit-log.ts's AuditEntry; payer.statement.* are same-origin paths (others
 * are not linked); snapshot.records, when an array, holds the latest ledger entries.
 */

const ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const KEY_PATTERN = /^[0-9a-f]{64}$/;
const POLL_INTERVAL_MS = 5_000;
const EVENTS_RETRY_MS = 60_000;
const EVENT_ERRORS_MAX = 3;
const CHART_HEIGHT_PX = 180;

const session = { username: '', csrfToken: '' };
/** The latest snapshot, for actions that describe what they change. */
let snapshot;

// ---------- DOM ----------

const $ = (id) => document.getElementById(id);

/** Builds an element; strings become text nodes, never markup. */
function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'testid') node.dataset.testid = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false || child === '') continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Text for any server value: strings as they are (amounts included), other values as JSON. */
function show(value) {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value);
}

/**
 * A table whose cells carry their heading (data-label), so that under 700 px app.css shows
 * each row as a card. `rows` are { props, cells }; a cell is a value, a Node, or
 * { value, props }.
 */
function table({ headings, rows, empty, caption }) {
  if (rows.length === 0) return el('p', { class: 'muted empty', text: empty });
  const head = el('thead', null, el('tr', null, headings.map((h) => el('th', { scope: 'col', text: h }))));
  const body = el('tbody', null, rows.map((row) => el('tr', row.props, row.cells.map((cell, i) => {
    const isWrapped = cell !== null && typeof cell === 'object' && !(cell instanceof Node);
    const value = isWrapped ? cell.value : cell;
    return el('td', { 'data-label': headings[i], ...(isWrapped ? cell.props : {}) }, value instanceof Node ? value : show(value));
  }))));
  return el('table', { class: 'grid' }, caption ? el('caption', { class: 'visually-hidden', text: caption }) : null, head, body);
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' });

/** A time as text, or the server's text as it is when it is not a time. */
function whenText(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? show(iso) : timeFormat.format(date);
}

function when(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return show(iso);
  return el('time', { datetime: date.toISOString(), title: show(iso), text: whenText(iso) });
}

function duration(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** Display only (disk space), never money. */
function bytes(n) {
  const value = Number(n);
  if (!Number.isFinite(value)) return show(n);
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = value;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

const money = (amount, currency) => (amount === undefined || amount === null ? '' : `${show(amount)} ${show(currency ?? '')}`.trim());

function gapText(gaps) {
  return (gaps ?? []).map((g) => (g.from === g.to ? `${g.from}` : `${g.from}–${g.to}`)).join(', ');
}

/** Links from the snapshot must stay on this gateway (no javascript: or other origins). */
function sameOriginHref(href) {
  if (typeof href !== 'string' || href === '') return undefined;
  try {
    const url = new URL(href, location.href);
    return url.origin === location.origin ? url.pathname + url.search : undefined;
  } catch {
    return undefined;
  }
}

/** A state word with a class for colour; the word itself carries the meaning. */
const badge = (text, kind, testid) => el('span', { class: `badge ${kind}`, testid, text });

const renderedKeys = new WeakMap();

/**
 * Replaces a container's content only when what it shows changed, and gives focus back
 * to the element with the same test id, so a keyboard user is not thrown out every 2 s.
 */
function renderInto(container, key, build) {
  const keyText = JSON.stringify(key);
  if (renderedKeys.get(container) === keyText) return;
  renderedKeys.set(container, keyText);
  const focused = document.activeElement;
  const focusedId = focused instanceof HTMLElement && container.contains(focused) ? focused.dataset.testid : undefined;
  container.replaceChildren(...[build()].flat(Infinity).filter(Boolean));
  if (focusedId) container.querySelector(`[data-testid="${CSS.escape(focusedId)}"]`)?.focus();
}

// ---------- talking to the gateway ----------

function newActionId() {
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
async function api(method, url, { body, actionId } = {}) {
  const headers = { accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET') {
    headers['content-type'] = 'application/json';
    headers['x-csrf-token'] = session.csrfToken;
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

function showStatus(message, kind = 'ok') {
  const area = $('status');
  area.dataset.kind = kind;
  area.replaceChildren(
    el('span', { class: 'status-time', text: timeFormat.format(new Date()) }),
    el('span', { class: 'status-text', text: message }),
    el('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss message', text: '×', onclick: () => { area.replaceChildren(); delete area.dataset.kind; } }),
  );
}

// ---------- confirmed actions ----------

let pendingAction;

/**
 * Asks first, then POSTs once. The action id is made when the dialog opens and reused on
 * every Confirm, so a double click or a retry after a lost answer acts once (the gateway
 * answers a repeated id with the first answer).
 */
function confirmAction({ title, lines, confirmLabel = 'Confirm', danger = false, url, body, success, done }) {
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
  void refreshState();
  void loadAudit();
}

function setUpConfirmDialog() {
  $('confirm-ok').addEventListener('click', () => void runPendingAction());
  $('confirm-cancel').addEventListener('click', () => $('confirm-dialog').close());
  $('confirm-dialog').addEventListener('close', () => {
    // An action still in flight reports into the status area when its answer comes.
    if (pendingAction && !pendingAction.inFlight) pendingAction = undefined;
  });
}

// ---------- secrets shown once ----------

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

function showSecret({ title, warning, items }) {
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

function showCredentials(answer, verb) {
  showSecret({
    title: `${verb} ${show(answer.id)}: its new MQTT password`,
    warning: 'Copy the password (or the flash sheet) now. It is shown only this once: the gateway keeps only a hash and cannot show it again.',
    items: [
      { label: 'Password', value: answer.password, testid: 'credentials' },
      ...(answer.flashSheet ? [{ label: 'Flash sheet', value: answer.flashSheet, testid: 'flash-sheet', block: true }] : []),
    ],
  });
}

// ---------- live updates ----------

const live = { source: undefined, errors: 0, pollTimer: 0, retryTimer: 0 };
const LIVE_TEXT = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', polling: 'polling every 5 s', offline: 'offline: showing the last state' };

function setLive(state) {
  const indicator = $('live');
  if (indicator.dataset.state === state) return;
  indicator.dataset.state = state;
  indicator.textContent = LIVE_TEXT[state];
}

function connectEvents() {
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

async function refreshState() {
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
  snapshot = s;
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

// ---------- header and problems ----------

function renderHeader(s) {
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

function renderProblems(s) {
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

function rejectionTable(rejections, withDevice) {
  const headings = ['When', ...(withDevice ? ['Device'] : []), 'Reason', 'Field', 'Detail', 'Topic'];
  return table({
    headings,
    rows: rejections.map((r) => ({ cells: [when(r.at), ...(withDevice ? [r.deviceId] : []), r.reason, r.field ?? '', r.detail, r.topic] })),
    empty: 'No rejections.',
  });
}

// ---------- health ----------

function fact(label, testid, ...value) {
  return [el('dt', { text: label }), el('dd', { testid }, ...value)];
}

function renderHealth(s) {
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

// ---------- charts (uPlot, loaded as a global by /ui/uplot.js) ----------

const charts = new Map();

function minuteSeries(counts) {
  const ys = counts.map((n) => Number(n) || 0);
  const xs = ys.map((_, i) => i - (ys.length - 1));
  return [xs, ys];
}

function seriesSummary(ys) {
  const total = ys.reduce((a, b) => a + b, 0);
  return `(this minute ${ys.at(-1) ?? 0}, last hour ${total}, peak ${Math.max(0, ...ys)} a minute)`;
}

function drawMinuteChart(container, counts, label) {
  const data = minuteSeries(counts);
  const existing = charts.get(container);
  if (existing) { existing.setData(data); return; }
  if (typeof window.uPlot !== 'function') {
    container.replaceChildren(el('p', { class: 'muted', text: 'Chart unavailable (uPlot did not load); the totals are above.' }));
    return;
  }
  const width = Math.max(240, container.clientWidth || 600);
  const chart = new window.uPlot({
    width,
    height: CHART_HEIGHT_PX,
    scales: { x: { time: false }, y: { range: (u, min, max) => [0, max > 0 ? Math.ceil(max * 1.15) : 1] } },
    axes: [
      { values: (u, ticks) => ticks.map((v) => (v === 0 ? 'now' : `${-v} min`)) },
      { size: 50, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6] },
    ],
    series: [
      { label: 'minute', value: (u, v) => (v === null || v === undefined ? '–' : v === 0 ? 'this minute' : `${-v} min ago`) },
      { label, stroke: '#0969da', fill: 'rgba(9, 105, 218, 0.12)', width: 2, points: { show: false } },
    ],
  }, data, container);
  const resize = new ResizeObserver(() => {
    const w = container.clientWidth;
    if (w > 0 && Math.abs(w - chart.width) > 2) chart.setSize({ width: w, height: CHART_HEIGHT_PX });
  });
  resize.observe(container);
  charts.set(container, chart);
  chart.stopResizing = () => resize.disconnect();
}

function dropChart(container) {
  const chart = charts.get(container);
  if (!chart) return;
  chart.stopResizing();
  chart.destroy();
  charts.delete(container);
}

function renderIngest(counts) {
  $('ingest-summary').textContent = seriesSummary(counts.map((n) => Number(n) || 0));
  drawMinuteChart($('ingest-plot'), counts, 'records');
}

// ---------- devices ----------

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

function renderDevices(s) {
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

function setUpDeviceDialog() {
  const dialog = $('device-dialog');
  $('device-close').addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => { deviceRequestNo += 1; dropChart($('device-plot')); });
}

// ---------- provisioning ----------

function renderProvisionChoices(s) {
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

function fieldError(target, message) {
  $(target).textContent = message;
  return false;
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

function setUpProvisionForm() {
  const form = $('provision-form');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const body = readProvisionForm();
    if (!body) return;
    const payer = (snapshot?.payers ?? []).find((p) => p.payer === body.payer);
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

// ---------- money ----------

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

function renderMoney(s) {
  const payers = s.payers ?? [];
  renderInto($('payers'), payers, () => (payers.length ? payers.map(payerCard) : el('p', { class: 'muted empty', text: 'No payers configured.' })));
  const settled = (s.settled ?? []).map((x) => money(x.amount, x.currency)).join(', ');
  $('settled-total').textContent = `Settled so far: ${settled || 'nothing yet'}`;
}

/** gateway/settlement/batch-book.ts BATCH_STATES; a cancelled batch ends as 'carried'. */
const BATCH_STATE_KIND = { sealed: 'info', submitted: 'info', pending: 'info', held: 'warn', unknown: 'warn', settled: 'ok', rejected: 'bad', carried: 'muted' };

function renderBatches(s) {
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

function renderRecords(s) {
  const records = Array.isArray(s.records) ? s.records : [];
  renderInto($('records'), records, () => table({
    caption: 'Latest usage records (journal)',
    headings: ['Record', 'Device', 'Seq', 'Meter', 'Quantity', 'Payer', 'Amount', 'Received'],
    empty: 'No usage recorded yet.',
    rows: records.map((r) => ({
      props: { testid: `record-row-${r.index}` },
      cells: [r.index, r.deviceId, r.seq, r.meter, `${show(r.quantity)} ${show(r.unit)}`, r.payer, money(r.amount, r.currency), when(r.receivedAt)],
    })),
  }));
  // Accounts entries: what a correction names (a reversing entry that references it).
  const entries = Array.isArray(s.entries) ? s.entries : [];
  renderInto($('entries'), entries, () => table({
    caption: 'Latest accounts entries (a correction names one of these)',
    headings: ['Entry', 'When', 'Kind', 'Batch', 'Lines', 'Note'],
    empty: 'No accounts entries yet: they are posted when batches are sealed and settled.',
    rows: entries.map((e) => ({
      props: { testid: `entry-row-${e.no}` },
      cells: [e.no, when(e.at), e.kind, show(e.batchId ?? (e.corrects ? `corrects ${e.corrects}` : '')),
        (e.lines ?? []).map((l) => `${show(l.account)} ${l.debit ? `Dr ${l.debit}` : `Cr ${show(l.credit)}`} ${show(e.currency)}`).join('; '),
        [e.operator, e.reason].filter(Boolean).join(': ')],
    })),
  }));
}

function setUpMoneyActions() {
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

// ---------- operators and audit ----------

function setUpOperators() {
  $('invite').addEventListener('click', () => confirmAction({
    title: 'Invite an operator',
    lines: ['Make an invitation link. Whoever opens it within 24 hours chooses a user name and password and can then do everything you can here.', 'The link works once and is shown only now: send it over a channel you trust.'],
    confirmLabel: 'Make link',
    url: '/api/invites',
    success: () => 'Invitation link made.',
    done: (a) => showSecret({
      title: 'Invitation link',
      warning: `Shown only now. It works once${a.expiresAt ? `, until ${whenText(a.expiresAt)}` : ''}.`,
      items: [{ label: 'Link', value: a.link, testid: 'invite-link' }],
    }),
  }));
  $('audit-refresh').addEventListener('click', () => void loadAudit());
}

async function loadAudit() {
  const result = await api('GET', '/api/audit');
  if (!result.ok) {
    renderInto($('audit'), { error: result.error }, () => el('p', { class: 'form-error', text: `Cannot load the audit log: ${result.error}` }));
    return;
  }
  const entries = result.data?.entries ?? [];
  renderInto($('audit'), entries, () => table({
    caption: 'Audit log, newest first',
    headings: ['When', 'Who', 'Action', 'Target', 'Outcome'],
    empty: 'No actions yet.',
    rows: entries.map((e) => ({
      props: { testid: `audit-row-${e.auditNo ?? ''}` },
      cells: [when(e.at), e.by, e.action, e.target ?? '',
        el('span', null, badge(show(e.outcome), e.outcome === 'ok' ? 'ok' : 'bad'), e.detail ? el('span', { class: 'muted', text: ` ${show(e.detail)}` }) : null)],
    })),
  }));
}

// ---------- start ----------

async function start() {
  setUpConfirmDialog();
  setUpDeviceDialog();
  setUpProvisionForm();
  setUpMoneyActions();
  setUpOperators();
  $('secret-close').addEventListener('click', () => $('secret-dialog').close());
  const result = await api('GET', '/api/session');
  if (!result.ok) {
    // A 401 is already on its way to /login.
    if (result.status !== undefined || result.network) showStatus(`Cannot start: ${result.error} Reload the page to try again.`, 'error');
    return;
  }
  session.username = show(result.data.username);
  session.csrfToken = show(result.data.csrfToken);
  $('username').textContent = session.username;
  $('logout-csrf').value = session.csrfToken;
  connectEvents();
  void loadAudit();
}

void start();
