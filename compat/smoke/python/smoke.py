"""kafka-python smoke test: create a topic, produce with acks=all, consume
in a group with commits, read the committed offsets back, list and delete
the topic. Bootstrap servers come from KAFKA_BOOTSTRAP (comma-separated).
Run with Debian's interpreter (/usr/bin/python3) and python3-kafka. Exits
non-zero with a message on the first thing that is not as Kafka would
have it."""

import os
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

N = 300


def fail(msg):
    print("kafka-python smoke failed: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "")
    if not bootstrap:
        print("KAFKA_BOOTSTRAP is not set", file=sys.stderr)
        sys.exit(2)
    servers = bootstrap.split(",")
    rf = int(os.environ.get("SMOKE_RF", "3"))
    topic = "python-smoke-%d-%d" % (os.getpid(), int(time.time() * 1000))
    group = topic + "-group"

    admin = KafkaAdminClient(bootstrap_servers=servers, client_id="kcluster-smoke")
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=rf)])
    if topic not in admin.list_topics():
        fail("topic %s not listed after create_topics" % topic)

    producer = KafkaProducer(bootstrap_servers=servers, acks="all", retries=5)
    futures = [producer.send(topic, key=b"k%d" % i, value=b"v%d" % i) for i in range(N)]
    producer.flush(30)
    for f in futures:
        f.get(timeout=30)  # raises on a failed send
    producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30000,
    )
    seen = set()
    for msg in consumer:
        seen.add(msg.value)
        if len(seen) == N:
            break
    if len(seen) != N:
        fail("consumed %d of %d distinct records" % (len(seen), N))
    consumer.commit()
    parts = [TopicPartition(topic, p) for p in range(3)]
    committed = sum(consumer.committed(tp) or 0 for tp in parts)
    consumer.close()
    if committed != N:
        fail("committed offsets add up to %d, want %d" % (committed, N))

    offsets = admin.list_consumer_group_offsets(group)
    total = sum(o.offset for tp, o in offsets.items() if tp.topic == topic)
    if total != N:
        fail("admin sees committed offsets adding up to %d, want %d" % (total, N))

    admin.delete_topics([topic])
    deadline = time.time() + 10
    while topic in admin.list_topics():
        if time.time() > deadline:
            fail("topic %s still listed 10 s after delete_topics" % topic)
        time.sleep(0.1)
    admin.close()
    print("kafka-python: %d records produced with acks=all, consumed in group %s, offsets committed %d, topic deleted" % (N, group, committed))


if __name__ == "__main__":
    main()
