// kafkajs smoke test: create a topic, produce idempotently with acks=all,
// consume in a group, fetch the group's committed offsets, delete the
// topic. Bootstrap servers come from KAFKA_BOOTSTRAP (comma-separated).
// Exits non-zero with a message on the first thing that is not as Kafka
// would have it.
'use strict';
const { Kafka, logLevel } = require('kafkajs');

const brokers = (process.env.KAFKA_BOOTSTRAP || '').split(',').filter(Boolean);
if (brokers.length === 0) {
  console.error('KAFKA_BOOTSTRAP is not set');
  process.exit(2);
}
const rf = parseInt(process.env.SMOKE_RF || '3', 10);
const topic = `kafkajs-smoke-${process.pid}-${Date.now()}`;
const groupId = `${topic}-group`;
const N = 300;

function fail(msg) {
  throw new Error(msg);
}

async function main() {
  const kafka = new Kafka({
    clientId: 'kcluster-smoke',
    brokers,
    logLevel: logLevel.WARN,
    retry: { retries: 10, initialRetryTime: 100 },
  });
  const admin = kafka.admin();
  await admin.connect();
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: 3, replicationFactor: rf }],
    waitForLeaders: true,
  });
  if (!created) fail(`createTopics(${topic}) reported the topic as existing`);

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const messages = [];
  for (let i = 0; i < N; i++) messages.push({ key: `k${i}`, value: `v${i}` });
  const acks = await producer.send({ topic, acks: -1, messages });
  const produced = acks.reduce((n, r) => n + (r.errorCode === 0 ? 1 : 0), 0);
  if (produced === 0) fail(`produce answered ${JSON.stringify(acks)}`);
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId, sessionTimeout: 6000, heartbeatInterval: 300, rebalanceTimeout: 6000 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const seen = new Set();
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${seen.size} of ${N} distinct records in 30 s`)), 30000);
    consumer.run({
      autoCommitInterval: 100,
      eachMessage: async ({ message }) => {
        seen.add(message.value.toString());
        if (seen.size === N) {
          clearTimeout(timer);
          resolve();
        }
      },
    }).catch(reject);
  });
  await consumer.disconnect(); // commits what it consumed

  const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
  const committed = offsets[0].partitions.reduce((n, p) => n + Number(p.offset), 0);
  if (committed !== N) fail(`committed offsets add up to ${committed}, want ${N}: ${JSON.stringify(offsets)}`);

  await admin.deleteTopics({ topics: [topic] });
  const left = await admin.listTopics();
  if (left.includes(topic)) fail(`topic ${topic} still listed after deleteTopics`);
  await admin.disconnect();
  console.log(`kafkajs: ${N} records produced idempotently, consumed in group ${groupId}, offsets committed ${committed}, topic deleted`);
}

main().catch((err) => {
  console.error(`kafkajs smoke failed: ${err.stack || err}`);
  process.exit(1);
});
