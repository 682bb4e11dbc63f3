// Dead letters (admin): grouped by reason, listed, one looked at with its messages; redriven to
// the consumer they failed for, or discarded. Reads /admin/dead-letters of whatever serves it.

import { api, badge, fill, h, shortSaga, show, time } from './dom.js';

const path = (id) => `/admin/dead-letters/${encodeURIComponent(id)}`;
const sagaLinks = (ids) => (ids.length === 0 ? '—' : ids.map((id) => h('a', { href: `#/sagas/${encodeURIComponent(id)}`, title: id, class: 'saga' }, shortSaga(id), ' ')));

/** Runs an action on a dead letter and says how it went in `note`; then `after()`. */
async function act(note, verb, id, after) {
  try {
    if (verb === 'redrive') await api(`${path(id)}/redrive`, 'POST');
    else await api(path(id), 'DELETE');
    fill(note, h('p', { class: 'note' }, verb === 'redrive' ? `Redriven: ${id} is on its way back to its consumer.` : `Discarded: ${id}.`));
    await after();
  } catch (error) {
    fill(note, h('p', { class: 'error' }, `Could not ${verb} ${id}: ${error.message}`));
  }
}

const buttons = (note, id, after) => [
  h('button', { type: 'button', 'data-action': 'redrive', onclick: () => act(note, 'redrive', id, after) }, 'Redrive'), ' ',
  h('button', { type: 'button', class: 'secondary danger', 'data-action': 'discard', onclick: () => confirm(`Discard ${id} for good?`) && act(note, 'discard', id, after) }, 'Discard'),
];

/** The groups (by reason) and a page of the dead letters, of one group when chosen. */
export async function deadLetters(query) {
  const params = new URLSearchParams(query);
  const note = h('div', { id: 'dead-note' });
  const groups = h('div', { class: 'panel' }, h('p', { class: 'muted' }, 'Loading…'));
  const list = h('div', { class: 'panel' });
  const pager = h('div', { class: 'pager' });
  const group = params.get('group');
  show(h('h1', {}, 'Dead letters'), note, h('h2', {}, 'By reason'), groups,
    h('h2', {}, group ? ['Dead letters of ', h('code', {}, group), ' ', h('a', { href: '#/dead-letters' }, '(all)')] : 'All dead letters'), list, pager);
  const load = async () => {
    const page = await api(`/admin/dead-letters?${new URLSearchParams({ limit: '50', ...Object.fromEntries(params) })}`);
    fill(groups, page.groups.length === 0 ? h('p', { class: 'muted' }, 'No dead letters: every message was consumed.') : h('table', { id: 'dead-groups' },
      h('tr', {}, ['reason', 'dead letters', 'consumers', 'types', 'newest', ''].map((t) => h('th', {}, t))),
      page.groups.map((g) => h('tr', { 'data-group': g.group },
        h('td', { class: 'wrap' }, h('code', {}, g.reason)), h('td', {}, g.count), h('td', {}, g.consumers.join(', ')), h('td', {}, g.types.join(', ')),
        h('td', {}, time(g.newest_at)),
        h('td', {}, h('a', { href: `#/dead-letters?${new URLSearchParams({ group: g.group })}`, 'data-action': 'look' }, 'look'))))));
    fill(list, page.dead_letters.length === 0 ? h('p', { class: 'muted' }, 'None.') : h('table', { id: 'dead-list' },
      h('tr', {}, ['kept', 'consumer', 'type', 'sagas', 'reason', ''].map((t) => h('th', {}, t))),
      page.dead_letters.map((d) => h('tr', { 'data-id': d.id },
        h('td', {}, time(d.at)), h('td', {}, d.consumer), h('td', {}, badge(d.type, 'failed'), d.messages > 1 ? ` ×${d.messages}` : ''),
        h('td', {}, sagaLinks(d.saga_ids)), h('td', { class: 'wrap' }, d.reason),
        h('td', {}, h('a', { href: `#/dead-letters/${encodeURIComponent(d.id)}`, 'data-action': 'look' }, 'look'), ' ', buttons(note, d.id, load))))));
    const first = new URLSearchParams(params);
    first.delete('after');
    fill(pager,
      params.has('after') ? h('a', { href: `#/dead-letters?${first}` }, '« first page') : null,
      page.next ? h('a', { href: `#/dead-letters?${new URLSearchParams({ ...Object.fromEntries(params), after: page.next })}` }, 'next page »') : null,
      h('span', { class: 'muted' }, `${page.dead_letters.length} shown of ${page.total}`));
  };
  await load();
  return () => {};
}

/** One dead letter: why, where it failed, its messages with their payloads; redrive or discard it. */
export async function deadLetter(id) {
  const note = h('div', { id: 'dead-note' });
  const found = await api(path(id));
  const gone = async () => {
    fill(actions, h('a', { href: '#/dead-letters' }, '« all dead letters'), ' ', found.saga_ids.map((s) => h('a', { href: `#/sagas/${encodeURIComponent(s)}`, class: 'saga' }, `watch saga ${shortSaga(s)} »`)));
  };
  const actions = h('p', { class: 'actions' }, buttons(note, id, gone));
  show(
    h('h1', {}, 'Dead letter ', h('code', {}, found.id)),
    note,
    h('dl', { class: 'kv panel' },
      h('dt', {}, 'consumer'), h('dd', {}, found.consumer),
      h('dt', {}, 'type'), h('dd', {}, found.type),
      h('dt', {}, 'kept'), h('dd', {}, time(found.at)),
      h('dt', {}, 'reason'), h('dd', { id: 'dead-reason' }, found.reason),
      h('dt', {}, 'sagas'), h('dd', {}, sagaLinks(found.saga_ids)),
      h('dt', {}, 'orders'), h('dd', {}, found.correlation_ids.join(', ') || '—')),
    actions,
    h('h2', {}, found.envelopes.length === 1 ? 'Message' : `Messages (${found.envelopes.length})`),
    h('div', { class: 'panel' }, h('pre', { id: 'dead-messages' }, found.undecodable ?? JSON.stringify(found.envelopes, null, 2))),
  );
  return () => {};
}
