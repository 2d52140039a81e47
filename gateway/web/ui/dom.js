/**
 * Building the page's DOM and showing server values as text: strings only ever become text
 * nodes or attribute values, never markup (the CSP allows no inline script or style either).
 */

export const $ = (id) => document.getElementById(id);

/** Builds an element; strings become text nodes, never markup. */
export function el(tag, props, ...children) {
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
export function show(value) {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value);
}

/**
 * A table whose cells carry their heading (data-label), so that under 700 px app.css shows
 * each row as a card. `rows` are { props, cells }; a cell is a value, a Node, or
 * { value, props }.
 */
export function table({ headings, rows, empty, caption }) {
  if (rows.length === 0) return el('p', { class: 'muted empty', text: empty });
  const head = el('thead', null, el('tr', null, headings.map((h) => el('th', { scope: 'col', text: h }))));
  const body = el('tbody', null, rows.map((row) => el('tr', row.props, row.cells.map((cell, i) => {
    const isWrapped = cell !== null && typeof cell === 'object' && !(cell instanceof Node);
    const value = isWrapped ? cell.value : cell;
    return el('td', { 'data-label': headings[i], ...(isWrapped ? cell.props : {}) }, value instanceof Node ? value : show(value));
  }))));
  return el('table', { class: 'grid' }, caption ? el('caption', { class: 'visually-hidden', text: caption }) : null, head, body);
}

export const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' });

/** A time as text, or the server's text as it is when it is not a time. */
export function whenText(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? show(iso) : timeFormat.format(date);
}

export function when(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return show(iso);
  return el('time', { datetime: date.toISOString(), title: show(iso), text: whenText(iso) });
}

export function duration(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** Display only (disk space), never money. */
export function bytes(n) {
  const value = Number(n);
  if (!Number.isFinite(value)) return show(n);
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = value;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i += 1; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export const money = (amount, currency) => (amount === undefined || amount === null ? '' : `${show(amount)} ${show(currency ?? '')}`.trim());

export function gapText(gaps) {
  return (gaps ?? []).map((g) => (g.from === g.to ? `${g.from}` : `${g.from}–${g.to}`)).join(', ');
}

/** Links from the snapshot must stay on this gateway (no javascript: or other origins). */
export function sameOriginHref(href) {
  if (typeof href !== 'string' || href === '') return undefined;
  try {
    const url = new URL(href, location.href);
    return url.origin === location.origin ? url.pathname + url.search : undefined;
  } catch {
    return undefined;
  }
}

/** A state word with a class for colour; the word itself carries the meaning. */
export const badge = (text, kind, testid) => el('span', { class: `badge ${kind}`, testid, text });

const renderedKeys = new WeakMap();

/**
 * Replaces a container's content only when what it shows changed, and gives focus back
 * to the element with the same test id, so a keyboard user is not thrown out every 2 s.
 */
export function renderInto(container, key, build) {
  const keyText = JSON.stringify(key);
  if (renderedKeys.get(container) === keyText) return;
  renderedKeys.set(container, keyText);
  const focused = document.activeElement;
  const focusedId = focused instanceof HTMLElement && container.contains(focused) ? focused.dataset.testid : undefined;
  container.replaceChildren(...[build()].flat(Infinity).filter(Boolean));
  if (focusedId) container.querySelector(`[data-testid="${CSS.escape(focusedId)}"]`)?.focus();
}

/** One label and value of a <dl class="facts">. */
export function fact(label, testid, ...value) {
  return [el('dt', { text: label }), el('dd', { testid }, ...value)];
}

/** Shows why a form was not sent; false, so a form reader can `return fieldError(…)`. */
export function fieldError(target, message) {
  $(target).textContent = message;
  return false;
}
