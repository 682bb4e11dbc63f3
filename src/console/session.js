// The console's sign-in: where ORDERLY_ADMIN_TOKEN is set, operator data (the sagas, events,
// dead letters) need it. The token is posted once to /console/session, which answers with an
// HttpOnly, SameSite=Strict cookie for 12 hours: the token is never kept by this page, nor put
// in a URL.

import { h, show } from './dom.js';

const controls = document.getElementById('session');

/** Whether this browser may read operator data; shows "Sign out" in the header when signed in. */
export async function session() {
  const now = await fetch('/console/session', { headers: { accept: 'application/json' } }).then((r) => r.json()).catch(() => ({ token_required: false, signed_in: true }));
  controls?.replaceChildren(...(now.token_required && now.signed_in
    ? [h('button', { type: 'button', class: 'secondary', id: 'sign-out', onclick: () => void change('DELETE').then(() => location.reload()) }, 'Sign out')]
    : []));
  return now;
}

function change(method, body) {
  return fetch('/console/session', {
    method, headers: { accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}),
  });
}

/** The sign-in page (or, on another machine without a token set, why there is nothing to show); `then` once signed in. */
export function signIn(now, then) {
  if (!now.token_required) {
    show(h('h1', {}, 'Operator data are not shown here'),
      h('p', {}, 'This deployment has no ORDERLY_ADMIN_TOKEN, so its operator routes answer only on the machine it runs on. Open the console there, or set ORDERLY_ADMIN_TOKEN on the server and sign in with it.'));
    return () => {};
  }
  const input = h('input', { type: 'password', name: 'token', id: 'admin-token', autocomplete: 'current-password', required: true, 'aria-label': 'admin token' });
  const message = h('p', { id: 'sign-in-message', role: 'status', class: 'muted' }, 'Kept in a session cookie for 12 hours, never in this page or a URL.');
  const form = h('form', { id: 'sign-in', class: 'panel sign-in', onsubmit: async (event) => {
    event.preventDefault();
    message.className = 'muted';
    message.textContent = 'Signing in…';
    const res = await change('POST', { token: input.value }).catch((error) => ({ ok: false, json: async () => ({ detail: error.message }) }));
    if (res.ok) return void then();
    const problem = await res.json().catch(() => ({}));
    message.className = 'error';
    message.textContent = problem.detail ?? `The sign-in answered ${res.status}.`;
    input.select();
  } }, h('label', { for: 'admin-token' }, 'Admin token (ORDERLY_ADMIN_TOKEN)'), input, h('button', { type: 'submit' }, 'Sign in'), message);
  show(h('h1', {}, 'Sign in'), h('p', {}, 'This deployment shows its sagas, events and dead letters to its operators only.'), form);
  input.focus();
  return () => {};
}
