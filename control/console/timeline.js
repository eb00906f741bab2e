// The event timeline: one lane per kind of change (brokers, fencing,
// leaders, ISR, controllers, topics), each event a mark at its time, and
// the events as a list below, newest first.

import { h } from './view.js';

// lanes, top to bottom: which event kinds each draws.
const lanes = [
  { name: 'brokers', kinds: ['broker up', 'broker down', 'log dir failed'] },
  { name: 'fencing', kinds: ['broker fenced', 'broker unfenced'] },
  { name: 'leaders', kinds: ['leader changed'] },
  { name: 'ISR', kinds: ['ISR changed'] },
  { name: 'controllers', kinds: ['controller changed', 'controller up', 'controller down'] },
  { name: 'topics', kinds: ['topic created', 'topic deleted', 'replicas changed', 'config changed'] },
];

// cls is an event's CSS class: its kind in one word.
const cls = (kind) => 'ev-' + kind.toLowerCase().replace(/[^a-z]+/g, '-');

const maxListed = 300;
const laneHeight = 18;
const labelWidth = 90;

export class Timeline {
  constructor(svg, list) {
    this.svg = svg;
    this.list = list;
    this.events = [];
    this.pending = false;
  }

  add(ev) {
    this.events.push(ev);
    // The event's text starts with its time.
    const li = h('li', { class: cls(ev.kind), title: ev.time, dataset: { seq: ev.seq, kind: ev.kind } }, ev.text);
    this.list.prepend(li);
    while (this.list.childElementCount > maxListed) this.list.lastElementChild.remove();
    // A burst of events draws once.
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => { this.pending = false; this.draw(); });
    }
  }

  draw() {
    const width = Math.max(this.svg.clientWidth || 600, 300);
    const height = lanes.length * laneHeight + 20;
    this.svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
    this.svg.setAttribute('height', height);
    if (!this.events.length) return;
    const t0 = Date.parse(this.events[0].time);
    const t1 = Math.max(Date.parse(this.events[this.events.length - 1].time), t0 + 1000);
    const x = (t) => labelWidth + (width - labelWidth - 10) * (Date.parse(t) - t0) / (t1 - t0);
    const parts = [];
    lanes.forEach((lane, i) => {
      const y = i * laneHeight + laneHeight / 2;
      parts.push(h('text', { svg: true, x: 4, y: y + 4, class: 'lane' }, lane.name));
      parts.push(h('line', { svg: true, x1: labelWidth, x2: width - 10, y1: y, y2: y, class: 'lane' }));
      for (const ev of this.events) {
        if (!lane.kinds.includes(ev.kind)) continue;
        parts.push(h('rect', { svg: true, x: x(ev.time) - 2, y: y - 6, width: 4, height: 12, class: `mark ${cls(ev.kind)}` },
          h('title', { svg: true }, `#${ev.seq} ${ev.time} ${ev.text}`)));
      }
    });
    const span = (t1 - t0) / 1000;
    parts.push(h('text', { svg: true, x: labelWidth, y: height - 4, class: 'axis' }, new Date(t0).toLocaleTimeString([], { hour12: false })));
    parts.push(h('text', { svg: true, x: width - 10, y: height - 4, class: 'axis end' }, `+${span.toFixed(1)} s`));
    this.svg.replaceChildren(...parts);
  }
}
