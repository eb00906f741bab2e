// The kcluster console: the control API's gauges on one page, kept live by
// its event stream (/api/events/stream), with its levers as buttons.
//
// Every cluster event marks the gauges it touches as stale; they are
// fetched again together a moment later (debounced). Offsets, lag and
// transactions move without events, so while "refresh offsets" is on and
// the page is visible, those gauges alone are fetched every 2 s.

import { renderHeader, renderBrokers, renderControllers, renderLinks, renderTopics, renderGroups, renderTransactions } from './view.js';
import { Timeline } from './timeline.js';
import { url, get, levers } from './api.js';

// state is everything the page shows.
const state = {
  cluster: null,
  brokers: [],
  controllers: [],
  faults: [],
  topics: new Map(), // name -> topic with partitions
  groups: new Map(), // name -> group
  transactions: new Map(), // transactional id -> transaction
};

// act runs a lever from a button: the button is disabled meanwhile, an
// error is shown, and the faults (which have no events) are fetched again.
async function act(button, lever) {
  button.disabled = true;
  try {
    await lever();
    showError('');
  } catch (e) {
    showError(e.message);
  } finally {
    button.disabled = false;
    stale.faults = true;
    schedule();
  }
}

function showError(msg) {
  const el = document.getElementById('error');
  el.textContent = msg;
  el.hidden = !msg;
}

// stale marks what to fetch again; schedule fetches it after a short
// pause, so that a burst of events costs one round of requests. Rounds
// never overlap, so an older answer cannot overwrite a newer one.
const stale = { cluster: false, brokers: false, controllers: false, faults: false, topicList: false, topics: new Set(), offsets: false };
let timer = null;
let running = false;
let again = false;
function schedule() {
  if (timer === null) timer = setTimeout(refresh, 100);
}

async function refresh() {
  timer = null;
  if (running) {
    again = true;
    return;
  }
  running = true;
  try {
    await refreshStale();
  } finally {
    running = false;
    if (again) {
      again = false;
      schedule();
    }
  }
}

async function refreshStale() {
  const s = { ...stale, topics: new Set(stale.topics) };
  Object.assign(stale, { cluster: false, brokers: false, controllers: false, faults: false, topicList: false, offsets: false });
  stale.topics.clear();
  try {
    const jobs = [];
    if (s.cluster) jobs.push(get('/api/cluster').then((c) => { state.cluster = c; state.brokers = c.brokers; state.controllers = c.controllers; }));
    if (s.brokers) jobs.push(get('/api/brokers').then((b) => { state.brokers = b; }));
    if (s.controllers) jobs.push(get('/api/controllers').then((c) => {
      state.controllers = c;
      if (state.cluster) state.cluster.controller = (c.find((x) => x.active) || { id: -1 }).id;
    }));
    if (s.faults) jobs.push(get('/api/faults').then((f) => { state.faults = f; }));
    if (s.topicList) jobs.push(get('/api/topics').then((ts) => {
      const names = new Set(ts.map((t) => t.name));
      for (const name of state.topics.keys()) if (!names.has(name)) state.topics.delete(name);
      for (const name of names) if (!state.topics.has(name)) s.topics.add(name);
    }));
    await Promise.all(jobs);
    const names = s.offsets ? new Set([...state.topics.keys(), ...s.topics]) : s.topics;
    await Promise.all([...names].map(fetchTopic));
    if (s.offsets) await Promise.all([fetchGroups(), fetchTransactions()]);
    showError('');
  } catch (e) {
    showError(e.message);
  }
  render();
}

async function fetchTopic(name) {
  try {
    state.topics.set(name, await get(`/api/topics/${encodeURIComponent(name)}`));
  } catch {
    state.topics.delete(name); // deleted meanwhile
  }
}

async function fetchGroups() {
  const names = await get('/api/groups');
  const groups = await Promise.all(names.map((g) => get(`/api/groups/${encodeURIComponent(g)}`).catch(() => null)));
  state.groups = new Map(groups.filter(Boolean).map((g) => [g.groupId, g]));
}

async function fetchTransactions() {
  const ids = await get('/api/transactions');
  const txns = await Promise.all(ids.map((id) => get(`/api/transactions/${encodeURIComponent(id)}`).catch(() => null)));
  state.transactions = new Map(txns.filter(Boolean).map((t) => [t.transactionalId, t]));
}

// ui is what the views need to wire their buttons.
const ui = { act, levers };

function render() {
  const showInternal = document.getElementById('show-internal').checked;
  renderHeader(state);
  renderBrokers(state, ui);
  renderControllers(state, ui);
  renderLinks(state, ui);
  renderTopics(state, showInternal);
  renderGroups(state);
  renderTransactions(state);
}

// onEvent marks what an event touches as stale.
function onEvent(ev) {
  switch (ev.kind) {
    case 'broker up': case 'broker down': case 'broker fenced': case 'broker unfenced': case 'log dir failed':
      stale.brokers = true;
      stale.offsets = true; // leaders' offsets appear or vanish with their broker
      break;
    case 'controller changed': case 'controller up': case 'controller down':
      stale.controllers = true;
      break;
    case 'topic created': case 'topic deleted':
      stale.topicList = true;
      break;
    case 'leader changed': case 'ISR changed': case 'replicas changed':
      if (ev.topic) stale.topics.add(ev.topic);
      break;
    default:
      return;
  }
  schedule();
}

function connect(timeline) {
  const live = document.getElementById('live');
  // EventSource reconnects by itself and sends Last-Event-ID, so the
  // stream resumes after the last event seen.
  const es = new EventSource(url('/api/events/stream'));
  es.onopen = () => { live.textContent = 'live'; live.className = 'badge running'; };
  es.onerror = () => { live.textContent = 'reconnecting'; live.className = 'badge down'; };
  es.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    timeline.add(ev);
    onEvent(ev);
  };
}

function start() {
  const timeline = new Timeline(document.getElementById('timeline'), document.getElementById('event-list'));
  document.getElementById('heal-all').addEventListener('click', (e) => act(e.currentTarget, levers.healAll));
  document.getElementById('show-internal').addEventListener('change', render);
  window.addEventListener('resize', () => timeline.draw());
  Object.assign(stale, { cluster: true, faults: true, topicList: true, offsets: true });
  schedule();
  connect(timeline);
  setInterval(() => {
    if (document.getElementById('auto-refresh').checked && document.visibilityState === 'visible') {
      stale.offsets = true;
      schedule();
    }
  }, 2000);
}

start();
