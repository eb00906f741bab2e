// A failover experiment from Node: a kafkajs producer (idempotent,
// acks=all) and a consumer group on a topic replicated to 3 brokers with
// min.insync.replicas=2, against cmd/kcluster. Midway, the partition's
// leader is killed through kcluster's control API. The script prints what
// the application saw: send errors, the longest gap between
// acknowledgements and between received records, the cluster's events
// around the kill, and every acknowledged record the consumer never got.
//
//	go run ./cmd/kcluster -http 127.0.0.1:0      # prints the bootstrap line and http: URL
//	cd examples/node-failover && npm ci
//	KAFKA_BOOTSTRAP=127.0.0.1:PORT,... KCLUSTER_HTTP=http://127.0.0.1:PORT node failover.js
//
// It exits 1 if an acknowledged record was lost, 2 if it could not run.
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const brokers = (process.env.KAFKA_BOOTSTRAP || '').split(',').filter(Boolean);
const controlURL = (process.env.KCLUSTER_HTTP || '').replace(/\/$/, '');
if (brokers.length === 0 || controlURL === '') {
  console.error('set KAFKA_BOOTSTRAP (host:port,...) and KCLUSTER_HTTP (the URL cmd/kcluster -http prints)');
  process.exit(2);
}
const BEFORE = parseInt(process.env.RECORDS_BEFORE || '200', 10); // acks before the kill
const AFTER = parseInt(process.env.RECORDS_AFTER || '300', 10); // acks after it
const topic = `failover-${process.pid}-${Date.now()}`;
const groupId = `${topic}-group`;

// api calls kcluster's control API and returns its JSON answer.
async function api(method, path, body) {
  const resp = await fetch(controlURL + path, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await resp.json();
  if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${json.error}`);
  return json;
}

const t0 = Date.now();
const ms = (t) => `${String(t - t0).padStart(6)} ms`;

async function main() {
  const kafka = new Kafka({
    clientId: 'node-failover',
    brokers,
    logLevel: logLevel.NOTHING, // the script reports what the application sees
    retry: { retries: 20, initialRetryTime: 100, maxRetryTime: 1000 },
  });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [{ topic, numPartitions: 1, replicationFactor: 3, configEntries: [{ name: 'min.insync.replicas', value: '2' }] }],
    waitForLeaders: true,
  });
  await admin.disconnect();
  await api('POST', '/api/wait', { condition: 'fullyReplicated', topic, partition: 0 });

  // The consumer: every record it is handed, with when.
  const received = new Map(); // value -> times received
  const receivedAt = [];
  const consumer = kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 300, rebalanceTimeout: 6000, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const v = message.value.toString();
      received.set(v, (received.get(v) || 0) + 1);
      receivedAt.push(Date.now());
    },
  });
  await api('POST', '/api/wait', { condition: 'groupStable', group: groupId, members: 1 });

  // The producer: one record at a time, each acknowledged by every ISR
  // member before the next; a send that fails after kafkajs' retries is
  // sent again by the application, as a service would.
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const acked = [];
  const ackedAt = [];
  const errors = [];
  let killedAt = 0;
  let killed = -1;
  let eventsBefore = 0;
  for (let i = 0; acked.length < BEFORE + AFTER; ) {
    if (acked.length === BEFORE && killed < 0) {
      const p = await api('GET', `/api/topics/${topic}/partitions/0`);
      eventsBefore = (await api('GET', '/api/events')).length;
      killed = p.leader;
      killedAt = Date.now();
      await api('POST', `/api/brokers/${killed}/kill`);
      console.log(`${ms(killedAt)}  killed broker ${killed}, the leader (epoch ${p.leaderEpoch}, isr [${p.isr}], high watermark ${p.highWatermark})`);
    }
    const value = `m-${i}`;
    try {
      await producer.send({ topic, acks: -1, messages: [{ value }] });
      acked.push(value);
      ackedAt.push(Date.now());
      i++;
    } catch (e) {
      errors.push({ at: Date.now(), error: e.name + ': ' + e.message });
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await producer.disconnect();

  // Wait for the consumer to catch up (or give up after 30 s).
  const deadline = Date.now() + 30000;
  while (acked.some((v) => !received.has(v)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  await consumer.disconnect();

  const p = await api('GET', `/api/topics/${topic}/partitions/0`);
  console.log(`${ms(Date.now())}  new leader ${p.leader} (epoch ${p.leaderEpoch}, isr [${p.isr}], high watermark ${p.highWatermark})`);
  console.log('cluster events after the kill:');
  for (const e of await api('GET', `/api/events?since=${eventsBefore}`)) {
    if (e.topic && e.topic !== topic) continue;
    console.log(`  ${ms(Date.parse(e.time))}  ${e.kind} ${e.broker ?? ''}${e.topic ? `${e.topic}/${e.partition}` : ''}${e.leader !== undefined ? ` leader ${e.leader} epoch ${e.leaderEpoch}` : ''}${e.isr ? ` isr [${e.isr}]` : ''}`);
  }
  await api('POST', `/api/brokers/${killed}/restart`);
  await api('POST', '/api/wait', { condition: 'fullyReplicated', topic, partition: 0 });

  const gap = (ts) => {
    let best = { gap: 0, at: 0 };
    for (let i = 1; i < ts.length; i++) if (ts[i] - ts[i - 1] > best.gap) best = { gap: ts[i] - ts[i - 1], at: ts[i - 1] };
    return best;
  };
  const ackGap = gap(ackedAt);
  const recvGap = gap(receivedAt);
  const lost = acked.filter((v) => !received.has(v));
  const duplicates = [...received.values()].filter((n) => n > 1).length;
  console.log(`send errors the application saw: ${errors.length}`);
  for (const e of errors.slice(0, 5)) console.log(`  ${ms(e.at)}  ${e.error}`);
  console.log(`longest gap between acknowledgements: ${ackGap.gap} ms (from ${ms(ackGap.at).trim()}; the kill at ${ms(killedAt).trim()})`);
  console.log(`longest gap between received records: ${recvGap.gap} ms (from ${ms(recvGap.at).trim()})`);
  console.log(`acknowledged ${acked.length}, received ${received.size} distinct (${duplicates} more than once), lost ${lost.length}${lost.length ? ': ' + lost.slice(0, 10).join(' ') : ''}`);
  console.log('RESULT ' + JSON.stringify({ acked: acked.length, received: received.size, lost: lost.length, duplicates, sendErrors: errors.length, longestAckGapMs: ackGap.gap, longestReceiveGapMs: recvGap.gap, killedLeader: killed, newLeader: p.leader }));
  return lost.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(2);
  },
);
