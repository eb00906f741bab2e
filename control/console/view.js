// Views: each renders one part of the page from the state, wiring its
// buttons to the levers through ui ({act, levers}).

// h makes an element: h('tr', {class: 'x', dataset: {topic: 't'}}, child, ...).
// Text children are text nodes, never HTML.
export function h(tag, attrs, ...children) {
  const el = document.createElementNS(tag === 'svg' || attrs?.svg ? 'http://www.w3.org/2000/svg' : 'http://www.w3.org/1999/xhtml', tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'svg' || v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'onclick') el.addEventListener('click', v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

const badge = (st, text) => h('span', { class: `badge ${st}` }, text ?? st);

// button is a lever's button: clicking it runs the lever through ui.act.
function button(ui, name, title, run, disabled) {
  return h('button', {
    dataset: { lever: name }, title, disabled,
    onclick: (e) => ui.act(e.currentTarget, run),
  }, name);
}

export function renderHeader(state) {
  const c = state.cluster;
  if (!c) return;
  const up = state.brokers.filter((b) => b.state === 'running').length;
  $('cluster').replaceChildren(
    h('dt', null, 'cluster'), h('dd', null, c.clusterId),
    h('dt', null, 'bootstrap'), h('dd', { class: 'mono' }, c.bootstrapServers),
    h('dt', null, 'brokers running'), h('dd', null, `${up} of ${state.brokers.length}`),
    h('dt', null, 'active controller'), h('dd', { id: 'active-controller' }, c.controller >= 0 ? String(c.controller) : 'none'),
  );
}

// leads counts the partitions each broker leads.
function leads(state) {
  const n = new Map();
  for (const t of state.topics.values()) {
    for (const p of t.partitions) n.set(p.leader, (n.get(p.leader) || 0) + 1);
  }
  return n;
}

export function renderBrokers(state, ui) {
  const n = leads(state);
  $('brokers').replaceChildren(...state.brokers.map((b) => {
    const down = b.state === 'down';
    return h('article', { class: `card broker ${b.state}`, dataset: { broker: b.id, state: b.state } },
      h('h3', null, `broker ${b.id} `, badge(b.state)),
      h('p', { class: 'mono' }, b.addr),
      h('p', null, `leader of ${n.get(b.id) || 0} partitions`),
      h('div', { class: 'buttons' },
        button(ui, 'kill', 'crash it: connections drop, the controller notices by missed heartbeats', () => ui.levers.kill(b.id), down),
        button(ui, 'stop', 'controlled shutdown: leadership moves away first', () => ui.levers.stop(b.id), down),
        button(ui, 'powercut', 'crash it and lose what it had not synced', () => ui.levers.powercut(b.id), down),
        button(ui, 'restart', 'start it again: same id, port and storage', () => ui.levers.restart(b.id), !down)));
  }));
}

export function renderControllers(state, ui) {
  $('controllers').replaceChildren(...state.controllers.map((c) => {
    const down = c.state === 'down';
    return h('article', { class: `card controller ${c.state}`, dataset: { controller: c.id, state: c.state } },
      h('h3', null, `controller ${c.id} `, badge(c.state), c.active ? badge('active') : null),
      h('p', null, down ? 'down' : `metadata offset ${c.metadataOffset}`),
      h('div', { class: 'buttons' },
        button(ui, 'kill', 'crash this controller', () => ui.levers.killController(c.id), down),
        button(ui, 'restart', 'start it again', () => ui.levers.restartController(c.id), !down)));
  }));
}

// renderLinks draws every link between two brokers, cut or not, and the
// other faults in place.
export function renderLinks(state, ui) {
  const cutOf = (a, b) => state.faults.find((f) => f.kind === 'cut' &&
    ((f.spec.a === a && f.spec.b === b) || (f.spec.a === b && f.spec.b === a)));
  const links = [];
  for (const x of state.brokers) {
    for (const y of state.brokers) {
      if (x.id >= y.id) continue;
      const cut = cutOf(x.id, y.id);
      links.push(h('div', { class: `link ${cut ? 'cut' : 'ok'}`, dataset: { link: `${x.id}-${y.id}` } },
        h('span', null, `${x.id} `, h('span', { class: 'wire' }, cut ? '✂' : '⟷'), ` ${y.id}`),
        cut ? button(ui, 'heal', 'undo this cut', () => ui.levers.undo(cut.id))
          : button(ui, 'cut', `cut the network between brokers ${x.id} and ${y.id}, both ways`, () => ui.levers.cut(x.id, y.id))));
    }
  }
  $('links').replaceChildren(...links);
  const broker = (id) => state.brokers.some((b) => b.id === id);
  const onLinks = (f) => f.kind === 'cut' && broker(f.spec.a) && broker(f.spec.b);
  $('faults').replaceChildren(...state.faults.filter((f) => !onLinks(f)).map((f) =>
    h('li', { dataset: { fault: f.id } }, `${f.kind} ${JSON.stringify(f.spec)} `, button(ui, 'undo', 'undo this fault', () => ui.levers.undo(f.id)))));
}

// replica draws one replica of a partition: its log-end offset against
// the high watermark, and whether it leads, is in the ISR, or is down.
function replica(p, id) {
  const leo = p.logEndOffsets[String(id)];
  const cls = ['replica'];
  if (id === p.leader) cls.push('leader');
  cls.push(leo === undefined ? 'down' : p.isr.includes(id) ? 'in-sync' : 'out');
  let delta = '';
  if (leo !== undefined && p.highWatermark >= 0 && leo !== p.highWatermark) delta = leo > p.highWatermark ? ` +${leo - p.highWatermark}` : ` −${p.highWatermark - leo}`;
  const title = leo === undefined ? `broker ${id}: not running` : `broker ${id}: log end ${leo}, high watermark ${p.highWatermark}`;
  return h('span', { class: cls.join(' '), title, dataset: { replica: id } }, h('b', null, String(id)), leo === undefined ? ' –' : ` ${leo}${delta}`);
}

export function renderTopics(state, showInternal) {
  const topics = [...state.topics.values()].filter((t) => showInternal || !t.name.startsWith('__')).sort((a, b) => a.name.localeCompare(b.name));
  $('topics').replaceChildren(...topics.map((t) => h('table', { class: 'topic', dataset: { topic: t.name } },
    h('caption', null, h('b', null, t.name), ` · ${t.partitionCount} partitions · RF ${t.replicationFactor}`),
    h('thead', null, h('tr', null, ...['partition', 'leader', 'epoch', 'ISR', 'replicas: log end vs HW', 'HW', 'LSO', 'log start'].map((c) => h('th', null, c)))),
    h('tbody', null, ...t.partitions.map((p) => h('tr', {
      class: `partition${p.leader < 0 ? ' offline' : ''}${p.isr.length < p.replicas.length ? ' under' : ''}`,
      dataset: { topic: t.name, partition: p.partition, leader: p.leader, epoch: p.leaderEpoch, isr: p.isr.join(','), isrSize: p.isr.length },
    },
    h('td', null, String(p.partition)),
    h('td', { class: 'leader' }, p.leader < 0 ? 'offline' : String(p.leader)),
    h('td', { class: 'epoch' }, String(p.leaderEpoch)),
    h('td', { class: 'isr' }, p.isr.join(', ')),
    h('td', { class: 'replicas' }, ...p.replicas.map((id) => replica(p, id))),
    h('td', { class: 'hw' }, String(p.highWatermark)),
    h('td', { class: 'lso' }, String(p.lastStableOffset)),
    h('td', null, String(p.logStartOffset))))))));
}

const partitionList = (m) => Object.entries(m).map(([t, ps]) => `${t}: ${ps.join(',')}`).join('; ');

export function renderGroups(state) {
  const groups = [...state.groups.values()].sort((a, b) => a.groupId.localeCompare(b.groupId));
  $('groups').replaceChildren(...(groups.length ? groups.map((g) => {
    const lag = Object.entries(g.lag).flatMap(([t, ps]) => Object.entries(ps).map(([p, l]) => [t, p, l]));
    const total = lag.reduce((s, [, , l]) => s + l, 0);
    return h('article', { class: 'card group', dataset: { group: g.groupId, state: g.state } },
      h('h3', null, `${g.groupId} `, badge(g.state === 'Stable' ? 'running' : 'fenced', g.state)),
      h('p', null, `${g.type} · ${g.type === 'consumer' ? 'epoch' : 'generation'} ${g.generation} · coordinator ${g.coordinator}${g.protocol ? ` · ${g.protocol}` : ''} · lag ${total}`),
      h('table', null, h('thead', null, h('tr', null, h('th', null, 'member'), h('th', null, 'client'), h('th', null, 'assignment'))),
        h('tbody', null, ...g.members.map((m) => h('tr', null,
          h('td', { class: 'mono', title: m.memberId }, m.memberId.slice(0, 12)), h('td', null, m.clientId), h('td', null, partitionList(m.assignment)))))),
      lag.length ? h('p', { class: 'lag' }, ...lag.map(([t, p, l]) => h('span', { class: `chip${l > 0 ? ' lagging' : ''}`, title: `committed ${g.offsets[t][p]}` }, `${t}/${p} lag ${l}`))) : null);
  }) : [h('p', { class: 'none' }, 'no groups')]));
}

const settled = (st) => st === 'Empty' || st === 'CompleteCommit' || st === 'CompleteAbort';

export function renderTransactions(state) {
  const txns = [...state.transactions.values()].sort((a, b) => settled(a.state) - settled(b.state) || a.transactionalId.localeCompare(b.transactionalId));
  const open = txns.filter((t) => !settled(t.state)).length;
  $('transactions').replaceChildren(txns.length ? h('table', null,
    h('caption', null, `${open} open of ${txns.length}`),
    h('thead', null, h('tr', null, ...['transactional id', 'state', 'producer', 'coordinator', 'partitions'].map((c) => h('th', null, c)))),
    h('tbody', null, ...txns.map((t) => h('tr', { class: settled(t.state) ? 'settled' : 'open', dataset: { transaction: t.transactionalId } },
      h('td', null, t.transactionalId), h('td', null, t.state), h('td', { class: 'mono' }, `${t.producerId}/${t.producerEpoch}`),
      h('td', null, String(t.coordinator)), h('td', null, partitionList(t.partitions))))))
    : h('p', { class: 'none' }, 'no transactional ids'));
}
