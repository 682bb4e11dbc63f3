// What every view of the console uses: building elements, reading the API, small formats.

const view = document.getElementById('view');

/** An element with attributes and children; text is always text, never parsed as HTML. */
export function h(tag, attrs = {}, ...children) {
  const svg = ['svg', 'g', 'rect', 'text', 'path', 'line', 'defs', 'marker', 'title'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

let signedOut = () => {};
/** What to do when an answer says the console is not (or no longer) signed in. */
export const whenSignedOut = (then) => {
  signedOut = then;
};

/** An error answer: its problem's status and code travel with the message. */
export class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls the API (GET unless told); resolves with the JSON answer. Operator routes read the
 * session cookie of the sign-in (sent by the browser, never seen by this page).
 */
export async function api(path, method = 'GET') {
  const res = await fetch(path, { method, headers: { accept: 'application/json' } });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) signedOut();
  if (!res.ok) throw new ApiError(body.detail ?? `${path} answered ${res.status}`, res.status, body.code);
  return body;
}

export const badge = (text, kind = text) => h('span', { class: `badge ${kind}` }, text);
export const time = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
export const ms = (n) => (n === null || n === undefined ? '—' : n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(2)} s`);
export const pct = (x) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '—');

/** Replaces `el`'s children; null, undefined and false are left out (as in h()). */
export function fill(el, ...nodes) {
  el.replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined && n !== false));
}

export const show = (...nodes) => fill(view, ...nodes);

/** A saga id is `<order id>.<attempt>`: the attempt's first characters tell sagas of one order apart. */
export const shortSaga = (id) => {
  const attempt = id.slice(id.indexOf('.') + 1);
  return attempt.length > 12 ? `${attempt.slice(0, 8)}…` : attempt;
};

export function failure(error) {
  return h('p', { class: 'error' }, `Could not load: ${error.message}`);
}
