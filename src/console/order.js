// One order in the console: where it is in the lifecycle, its money, its shipment, its
// timeline and what its customer was told, with the actions an operator takes on it: cancel
// it, record a carrier scan. It reads and acts through the lifecycle API (/api/…).

const FINAL = ['SHIPPED', 'IN_TRANSIT', 'DELIVERED', 'CANCELLED'];
const SCANS = [['picked_up', 'Picked up'], ['in_transit', 'In transit'], ['delivered', 'Delivered']];

/** POSTs JSON; resolves with the answer's body, or throws with the problem's detail. */
async function send(path, body) {
  const res = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body ?? {}) });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(answer.detail ?? `${path} answered ${res.status}`);
  return answer;
}

/** The order page; `ui` holds the console's helpers. Returns what stops its refreshing. */
export function orderView(id, ui) {
  const { h, api, show, badge, time, every, fill } = ui;
  let draft = '';
  const message = h('p', { id: 'order-message', class: 'muted', role: 'status' });
  const say = (text, kind = 'muted') => {
    message.className = kind;
    message.textContent = text;
  };
  const body = h('div', { id: 'order' }, h('p', { class: 'muted' }, 'Loading…'));
  show(h('h1', {}, 'Order ', h('code', {}, id), ' ', h('span', { id: 'order-status' })), message, body);

  const act = (label, run) => async () => {
    say(`${label}…`);
    try {
      await run();
      say(`${label}: done.`, 'ok');
    } catch (error) {
      say(`${label}: ${error.message}`, 'error');
    }
    await refresh();
  };

  const refresh = async () => {
    const order = await api(`/api/orders/${encodeURIComponent(id)}`);
    const told = await api(`/api/customers/${encodeURIComponent(order.user_id)}/notifications`).then((n) => n.notifications.filter((x) => x.order_id === id), () => []);
    fill(document.getElementById('order-status'), badge(order.status, order.status.toLowerCase()));
    // The page refreshes every 2 s: what is being typed stays.
    const reason = h('input', { name: 'reason', placeholder: 'reason (optional)', 'aria-label': 'reason', value: draft, oninput: (event) => { draft = event.target.value; } });
    const shipment = order.shipment;
    fill(body,
      h('dl', { class: 'kv panel' },
        h('dt', {}, 'customer'), h('dd', {}, order.user_id),
        h('dt', {}, 'items'), h('dd', {}, order.items.map((i) => `${i.quantity} × ${i.item_id}`).join(', ') || '—'),
        h('dt', {}, 'total'), h('dd', {}, order.total_cost),
        h('dt', {}, 'money'), h('dd', { id: 'order-amounts' }, `authorized ${order.amounts.authorized} · captured ${order.amounts.captured} · refunded ${order.amounts.refunded}`),
        h('dt', {}, 'checkout'), h('dd', {}, order.checkout
          ? [h('a', { href: `#/sagas/${encodeURIComponent(order.checkout.saga_id)}` }, order.checkout.saga_id), ' ', badge(order.checkout.status), ` v${order.checkout.definition.version}`]
          : '—'),
        order.cancelled ? [h('dt', {}, 'cancelled'), h('dd', {}, `by the ${order.cancelled.by === 'timeout' ? 'reservation\'s time to live' : 'customer'}: ${order.cancelled.reason}`)] : null,
        h('dt', {}, 'shipment'), h('dd', { id: 'order-shipment' }, shipment ? [h('code', {}, shipment.tracking_number), ` ${shipment.carrier} `, badge(shipment.status)] : '—')),
      h('h2', {}, 'Actions'),
      h('div', { class: 'panel order-actions' },
        h('form', {
          id: 'cancel-order',
          onsubmit: (event) => {
            event.preventDefault();
            void act('Cancel', () => send(`/api/orders/${encodeURIComponent(id)}/cancel`, reason.value ? { reason: reason.value } : {}))();
          },
        }, reason, h('button', { type: 'submit', disabled: FINAL.includes(order.status) }, 'Cancel order')),
        shipment
          ? h('div', { class: 'scans' }, 'Carrier scan: ', SCANS.map(([scan, label]) => h('button', {
            type: 'button', 'data-scan': scan, disabled: shipment.status === 'delivered',
            onclick: act(`Scan ${label.toLowerCase()}`, () => send(`/api/shipments/${encodeURIComponent(shipment.tracking_number)}/scans`, { scan })),
          }, label)))
          : h('p', { class: 'muted' }, 'Scans are recorded once the order has shipped.')),
      h('h2', {}, 'Timeline'),
      h('div', { class: 'panel' }, h('table', { id: 'order-timeline' },
        h('tr', {}, ['time', 'step', 'event', 'detail'].map((t) => h('th', {}, t))),
        order.timeline.map((e) => h('tr', {}, h('td', {}, time(e.at)), h('td', {}, e.step || '—'), h('td', {}, badge(e.event)), h('td', { class: 'wrap' }, e.detail ?? ''))))),
      h('h2', {}, 'What the customer was told'),
      h('div', { class: 'panel' }, told.length === 0 ? h('p', { class: 'muted' }, 'Nothing yet.') : h('table', { id: 'order-notifications' },
        h('tr', {}, ['time', 'kind', 'message'].map((t) => h('th', {}, t))),
        told.map((n) => h('tr', {}, h('td', {}, time(n.at)), h('td', {}, badge(n.kind)), h('td', { class: 'wrap' }, `${n.subject}. ${n.text}`))))),
      shipment?.label ? [h('h2', {}, 'Label'), h('div', { class: 'panel' }, h('pre', {}, shipment.label))] : null,
    );
  };
  return every(2000, refresh);
}
