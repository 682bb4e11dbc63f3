// The Orderly console: plain modules the browser runs as they are (no build step, no CDN). It
// reads the saga API (/sagas, /sagas/{id}, /sagas/statistics, /sagas/definitions) and the dead
// letters (/admin/dead-letters, deadLetters.js) of whatever serves it: `npm start` or the
// gateway of a cluster.

import { api, badge, failure, fill, h, ms, pct, shortSaga, show, time, whenSignedOut } from './dom.js';
import { session, signIn } from './session.js';
import { deadLetter, deadLetters } from './deadLetters.js';

import { orderView } from './order.js';

const connection = document.getElementById('connection');
let stopView = () => {};

/** Runs `tick` now and every `everyMs` until the view changes. */
function every(everyMs, tick) {
  let timer;
  let stopped = false;
  const run = async () => {
    try {
      await tick();
      connection.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      connection.textContent = `not reachable: ${error.message}`;
    }
    if (!stopped) timer = setTimeout(run, everyMs);
  };
  void run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// ---- Overview ----------------------------------------------------------------------------

function overview() {
  const cards = h('div', { class: 'cards' });
  const reasons = h('div', { class: 'panel' });
  show(h('h1', {}, 'Overview'), cards, h('h2', {}, 'Failures by reason'), reasons);
  let last;
  return every(2000, async () => {
    const [stats, stuck, dead] = await Promise.all([api('/sagas/statistics'), api('/sagas?stuck=true&limit=1000'), api('/admin/dead-letters?limit=1')]);
    const now = performance.now();
    const ended = stats.by_status.completed + stats.by_status.failed;
    const rate = last ? ((stats.total - last.total) * 1000) / (now - last.at) : null;
    last = { total: stats.total, at: now };
    const card = (label, value, href) => h('div', { class: 'card', 'data-card': label },
      h('div', { class: 'label' }, label), h('div', { class: 'value' }, href ? h('a', { href }, value) : value));
    fill(cards, 
      card('Checkouts/s', rate === null ? '…' : rate.toFixed(1)),
      card('Sagas', stats.total, '#/sagas'),
      card('Succeeded', pct(stats.by_status.completed / ended), '#/sagas?status=completed'),
      card('Failed', pct(stats.by_status.failed / ended), '#/sagas?status=failed'),
      card('Duration p50', ms(stats.duration_ms.p50)),
      card('Duration p99', ms(stats.duration_ms.p99)),
      card('Active', stats.by_status.running + stats.by_status.compensating, '#/sagas?status=running'),
      card('Stuck', stuck.sagas.length === 1000 ? '1000+' : stuck.sagas.length, '#/sagas?stuck=true'),
      card('Compensations', stats.compensations_triggered, '#/sagas?status=failed'),
      card('Dead letters', dead.total, '#/dead-letters'),
    );
    const rows = Object.entries(stats.failures_by_reason).sort((a, b) => b[1] - a[1]);
    fill(reasons, rows.length === 0
      ? h('p', { class: 'muted' }, 'No saga has failed.')
      : h('table', {}, h('tr', {}, h('th', {}, 'reason'), h('th', {}, 'sagas')),
        rows.map(([reason, n]) => h('tr', {}, h('td', {}, reason), h('td', {}, n)))));
  });
}

// ---- Saga list ---------------------------------------------------------------------------

async function sagas(query) {
  const { definitions } = await api('/sagas/definitions');
  const steps = [...new Set(definitions.flatMap((d) => d.groups.flat().map((s) => s.name)))];
  const params = new URLSearchParams(query);
  const field = (name) => params.get(name) ?? '';
  const form = h('form', { class: 'filters', onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, value] of new FormData(form)) {
      if (value === '') continue;
      next.set(name, name === 'from' || name === 'to' ? new Date(value).toISOString() : value);
    }
    location.hash = `#/sagas?${next}`;
  } },
  h('label', {}, 'Status', h('select', { name: 'status' },
    ['', 'running', 'compensating', 'completed', 'failed'].map((s) => h('option', { value: s, selected: field('status') === s }, s || 'any')))),
  h('label', {}, 'Current step', h('select', { name: 'step' },
    ['', ...steps].map((s) => h('option', { value: s, selected: field('step') === s }, s || 'any')))),
  h('label', {}, 'Started from', h('input', { type: 'datetime-local', name: 'from', value: localInput(field('from')) })),
  h('label', {}, 'Started before', h('input', { type: 'datetime-local', name: 'to', value: localInput(field('to')) })),
  h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'retrying', value: 'true', checked: field('retrying') === 'true' }), 'retrying'),
  h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'stuck', value: 'true', checked: field('stuck') === 'true' }), 'stuck'),
  h('button', { type: 'submit' }, 'Filter'),
  h('button', { type: 'button', class: 'secondary', onclick: () => { location.hash = '#/sagas'; } }, 'Clear'));
  const table = h('div', { class: 'panel' }, h('p', { class: 'muted' }, 'Loading…'));
  const pager = h('div', { class: 'pager' });
  show(h('h1', {}, 'Sagas'), form, table, pager);
  params.set('limit', params.get('limit') ?? '50');
  const page = await api(`/sagas?${params}`);
  fill(table, page.sagas.length === 0 ? h('p', { class: 'muted' }, 'No saga matches these filters.') : h('table', { id: 'saga-list' },
    h('tr', {}, ['saga', 'order', 'status', 'started', 'duration', 'current step', 'attempt', 'reason'].map((t) => h('th', {}, t))),
    page.sagas.map((s) => h('tr', {},
      h('td', {}, h('a', { href: `#/sagas/${encodeURIComponent(s.saga_id)}`, title: s.saga_id }, shortSaga(s.saga_id))),
      h('td', {}, s.order_id),
      h('td', {}, badge(s.status), s.stuck ? [' ', badge('stuck')] : null, s.retrying ? [' ', badge('retrying', 'retried')] : null),
      h('td', {}, time(s.started_at)),
      h('td', {}, ms(s.duration_ms)),
      h('td', {}, s.current_steps.join(', ') || '—'),
      h('td', {}, s.attempt ?? '—'),
      h('td', { class: 'wrap' }, s.reason ?? '')))));
  const first = new URLSearchParams(params);
  first.delete('after');
  fill(pager, 
    params.has('after') ? h('a', { href: `#/sagas?${first}` }, '« first page') : null,
    page.next ? h('a', { href: `#/sagas?${new URLSearchParams({ ...Object.fromEntries(params), after: page.next })}` }, 'next page »') : null,
    h('span', { class: 'muted' }, `${page.sagas.length} shown`));
  return () => {};
}

/** An ISO time as a datetime-local input's value (local time). */
function localInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

// ---- One saga ----------------------------------------------------------------------------

async function saga(id) {
  const [found, { definitions }] = await Promise.all([api(`/sagas/${encodeURIComponent(id)}`), api('/sagas/definitions')]);
  const version = found.definition?.version ?? 1;
  const definition = definitions.find((d) => d.version === version) ?? definitions[0];
  const latest = new Map();
  for (const e of found.steps) latest.set(e.step, e.event);
  const tries = new Map();
  const start = Date.parse(found.started_at);
  show(
    h('h1', {}, 'Saga ', h('code', {}, found.saga_id), ' ', badge(found.status), found.stuck ? [' ', badge('stuck')] : null),
    h('dl', { class: 'kv panel' },
      h('dt', {}, 'order'), h('dd', {}, h('a', { href: `#/orders/${encodeURIComponent(found.order_id)}` }, found.order_id)),
      h('dt', {}, 'started'), h('dd', {}, time(found.started_at)),
      h('dt', {}, 'ended'), h('dd', {}, time(found.ended_at)),
      h('dt', {}, 'duration'), h('dd', {}, ms(found.duration_ms)),
      h('dt', {}, 'waiting on'), h('dd', {}, found.current_steps.join(', ') || '—'),
      found.reason ? [h('dt', {}, 'reason'), h('dd', {}, found.reason)] : null),
    h('h2', {}, `Definition: ${definition ? `${definition.name} v${definition.version}` : '?'}`),
    h('div', { class: 'panel graph' }, definition ? graph(definition, latest) : h('p', { class: 'muted' }, 'No definition.')),
    h('h2', {}, 'Timeline'),
    h('div', { class: 'panel' }, h('table', { id: 'timeline' },
      h('tr', {}, ['time', '+ms', 'step', 'event', 'attempt', 'detail'].map((t) => h('th', {}, t))),
      found.steps.map((e) => {
        if (e.event === 'started' || e.event === 'retried' || e.event === 'compensating') tries.set(`${e.step} ${e.event === 'compensating'}`, (tries.get(`${e.step} ${e.event === 'compensating'}`) ?? 0) + 1);
        return h('tr', {},
          h('td', {}, time(e.at)), h('td', {}, Date.parse(e.at) - start), h('td', {}, e.step), h('td', {}, badge(e.event)),
          h('td', {}, tries.get(`${e.step} ${e.event === 'compensating' || e.event === 'compensated'}`) ?? ''),
          h('td', { class: 'wrap' }, e.detail ?? ''));
      }))),
    h('h2', {}, 'Context'),
    h('div', { class: 'panel' }, h('pre', {}, JSON.stringify(found.context, null, 2))),
    found.early_events?.length ? [h('h2', {}, 'Events seen before the start'), h('div', { class: 'panel' }, h('pre', {}, JSON.stringify(found.early_events, null, 2)))] : null,
  );
  // A saga under way is shown again every 2 s, so that one can watch it finish.
  if (found.status !== 'running' && found.status !== 'compensating') return () => {};
  const timer = setTimeout(() => void route(), 2000);
  return () => clearTimeout(timer);
}

/**
 * The definition as an SVG: groups of steps left to right, the undo steps under them, each
 * coloured by what this saga did there (its latest event for that step).
 */
function graph(definition, latest) {
  const W = 190, H = 50, GAP = 70, TOP = 30;
  const columns = definition.groups.length;
  const rows = Math.max(...definition.groups.map((g) => g.length));
  const undoY = TOP + rows * (H + 20) + 30;
  const width = 40 + (columns + 2) * (W + GAP);
  const height = undoY + H + 40;
  const x = (col) => 20 + col * (W + GAP);
  const y = (row) => TOP + row * (H + 20);
  const edges = [];
  const nodes = [];
  const node = (px, py, label, sub, cls, id) => h('g', { class: `node ${cls}`, 'data-step': id },
    h('rect', { x: px, y: py, width: W, height: H, rx: 8 }),
    h('text', { x: px + 10, y: py + 20 }, label),
    h('text', { x: px + 10, y: py + 38, class: 'sub' }, sub));
  const arrow = (x1, y1, x2, y2, cls = '') => h('path', { class: `edge ${cls}`, d: `M${x1},${y1} C${(x1 + x2) / 2},${y1} ${(x1 + x2) / 2},${y2} ${x2},${y2}`, 'marker-end': 'url(#arrow)' });
  nodes.push(node(x(0), y(0), 'start', definition.name, 'succeeded', 'start'));
  let previous = [[x(0) + W, y(0) + H / 2]];
  definition.groups.forEach((group, g) => {
    const here = group.map((step, r) => {
      const state = latest.get(step.name) ?? 'idle';
      nodes.push(node(x(g + 1), y(r), step.name, `waits for ${step.success}`, `${state}${step.afterPivot ? ' pivot' : ''}`, step.name));
      return [x(g + 1), y(r) + H / 2];
    });
    for (const [x1, y1] of previous) for (const [x2, y2] of here) edges.push(arrow(x1, y1, x2, y2));
    previous = here.map(([px, py]) => [px + W, py]);
  });
  nodes.push(node(x(columns + 1), y(0), 'completed', '', latest.size > 0 && [...latest.values()].every((e) => e === 'succeeded') ? 'succeeded' : 'idle', 'completed'));
  for (const [x1, y1] of previous) edges.push(arrow(x1, y1, x(columns + 1), y(0) + H / 2));
  const undoable = definition.groups.flat().filter((s) => s.compensated);
  undoable.reverse().forEach((step, i) => {
    const px = x(i + 1);
    const state = latest.get(step.name);
    nodes.push(node(px, undoY, `undo ${step.name}`, `waits for ${step.compensated}`, state === 'compensated' ? 'compensated' : state === 'compensating' ? 'compensating' : 'idle', `undo-${step.name}`));
    if (i > 0) edges.push(arrow(px - GAP, undoY + H / 2, px, undoY + H / 2, 'undo'));
  });
  return h('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': `${definition.name} saga graph` },
    h('defs', {}, h('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      h('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#8a93a5' }))),
    edges, nodes,
    h('text', { x: 20, y: height - 10, class: 'legend' }, 'Thick border: past the pivot (retried until done). Dashed: compensations, run in reverse order after a failure.'));
}

// ---- Live events -------------------------------------------------------------------------

/** The messages committed from now on (server-sent events), newest first, the last 300 kept. */
function events(query) {
  const params = new URLSearchParams(query);
  const rows = h('tbody', { id: 'event-rows' });
  const status = h('span', { class: 'muted' }, 'connecting…');
  let paused = false;
  const pause = h('button', { type: 'button', class: 'secondary', onclick: () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
  } }, 'Pause');
  const form = h('form', { class: 'filters', onsubmit: (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value !== '') next.set(name, value);
    location.hash = `#/events?${next}`;
  } },
  h('label', {}, 'Types (comma-separated)', h('input', { name: 'type', value: params.get('type') ?? '', placeholder: 'CheckoutFailed,PaymentDeclined' })),
  h('label', {}, 'Order', h('input', { name: 'correlation_id', value: params.get('correlation_id') ?? '', placeholder: 'order id' })),
  h('button', { type: 'submit' }, 'Filter'), pause, status);
  show(h('h1', {}, 'Live events'), form, h('div', { class: 'panel' }, h('table', { id: 'events' },
    h('thead', {}, h('tr', {}, ['time', 'service', 'message', 'saga', 'step', 'payload'].map((t) => h('th', {}, t)))), rows)));
  const source = new EventSource(`/events?${params}`);
  source.onopen = () => { status.textContent = 'live'; };
  source.onerror = () => { status.textContent = 'reconnecting…'; };
  source.addEventListener('dropped', (e) => { status.textContent = `live (${JSON.parse(e.data).count} events dropped: the page could not keep up)`; });
  source.onmessage = (e) => {
    if (paused) return;
    const m = JSON.parse(e.data);
    rows.prepend(h('tr', {},
      h('td', {}, new Date(m.at).toLocaleTimeString()), h('td', {}, m.service), h('td', {}, m.deliver_at ? [badge(m.type, 'idle'), ` timer, due ${new Date(m.deliver_at).toLocaleTimeString()}`] : badge(m.type, kindOf(m.type))),
      h('td', {}, m.saga_id ? h('a', { href: `#/sagas/${encodeURIComponent(m.saga_id)}`, title: m.saga_id }, shortSaga(m.saga_id)) : '—'),
      h('td', {}, m.step || '—'), h('td', { class: 'wrap' }, h('code', {}, JSON.stringify(m.payload)))));
    while (rows.children.length > 300) rows.lastElementChild.remove();
  };
  return () => source.close();
}

/** A message's colour: failures red, compensations orange, outcomes green, commands blue. */
function kindOf(type) {
  if (/Fail|Declined|Rejected/.test(type)) return 'failed';
  if (/Release|Void|Refund|Cancel/.test(type)) return 'compensating';
  if (/ed$/.test(type)) return 'succeeded';
  return 'running';
}

// ---- Routing -----------------------------------------------------------------------------

async function route() {
  stopView();
  stopView = () => {};
  const [path, query = ''] = location.hash.replace(/^#/, '').split('?');
  const parts = (path || '/').split('/').filter(Boolean);
  for (const link of document.querySelectorAll('header nav a')) link.classList.toggle('active', link.dataset.view === (parts[0] ?? 'overview'));
  // Operator data needs a signed-in console where ORDERLY_ADMIN_TOKEN is set.
  const now = await session();
  if (!now.signed_in) {
    stopView = signIn(now, route);
    return;
  }
  try {
    if (parts.length === 0) stopView = overview();
    else if (parts[0] === 'sagas' && parts.length === 1) stopView = await sagas(query);
    else if (parts[0] === 'sagas') stopView = await saga(decodeURIComponent(parts.slice(1).join('/')));
    else if (parts[0] === 'events') stopView = events(query);
    else if (parts[0] === 'orders' && parts[1]) stopView = orderView(decodeURIComponent(parts[1]), { h, api, show, badge, time, every, fill });
    else if (parts[0] === 'dead-letters' && parts.length === 1) stopView = await deadLetters(query);
    else if (parts[0] === 'dead-letters') stopView = await deadLetter(decodeURIComponent(parts.slice(1).join('/')));
    else show(h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Overview')));
  } catch (error) {
    show(failure(error));
  }
}

window.addEventListener('hashchange', () => void route());
whenSignedOut(() => void route());
document.getElementById('find-order')?.addEventListener('submit', (event) => {
  event.preventDefault();
  const id = new FormData(event.target).get('order')?.toString().trim();
  if (id) location.hash = `#/orders/${encodeURIComponent(id)}`;
});
void route();
