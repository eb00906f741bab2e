package compat

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster"
)

// TestKcatCompression produces with kcat (librdkafka) with each codec and
// reads the stored batches back with a raw Fetch: every batch's
// compression bits are that codec's. librdkafka before 2.11.1 turns on
// gzip, snappy and lz4 only when the broker advertises Produce from v0
// (Debian 12's 2.0.2 otherwise logs "Broker does not support compression
// type gzip: not compressing batch"); Kafka 4 advertises v0 for that
// reason (KAFKA-18659), and so does kcluster. kcat then reads every
// record back.
func TestKcatCompression(t *testing.T) {
	const topic, lines = "kcompress", 200
	kcat := kcatPath(t)
	c := kcluster.Start(t, kcluster.Brokers(3))
	ctx := testContext(t)
	cl := newFranzClient(t, c.Addrs())
	codecs := []string{"gzip", "snappy", "lz4", "zstd"}
	createTopicKadm(ctx, t, kadm.NewClient(cl), topic, int32(len(codecs)), 3)
	bootstrap := strings.Join(c.Addrs(), ",")

	var in strings.Builder
	var want []string
	for i := range lines {
		v := value(topic, i) + strings.Repeat(" compressible", 8)
		want = append(want, v)
		in.WriteString(v + "\n")
	}
	for p, codec := range codecs {
		stderr := runKcatStderr(ctx, t, kcat, in.String(), "-P", "-b", bootstrap, "-t", topic, "-p", strconv.Itoa(p),
			"-z", codec, "-X", "request.required.acks=-1", "-X", "linger.ms=50")
		if strings.Contains(stderr, "not compressing") || strings.Contains(stderr, "does not support compression") {
			t.Errorf("kcat -z %s did not compress:\n%s", codec, firstLines(stderr, 20))
		}
	}

	for p, codec := range codecs {
		st, err := c.PartitionState(topic, int32(p))
		if err != nil {
			t.Fatal(err)
		}
		batches := fetchRaw(ctx, t, cl, st.Leader, topic, int32(p))
		if len(batches) == 0 {
			t.Errorf("partition %d (%s): no batch stored", p, codec)
		}
		for _, b := range batches {
			if got := codecNames[b.Attributes&0x07]; got != codec {
				t.Errorf("partition %d: kcat -z %s stored a batch with codec %q (attributes %#x)", p, codec, got, b.Attributes)
			}
		}
		out := runKcat(ctx, t, kcat, "", "-C", "-b", bootstrap, "-t", topic, "-p", strconv.Itoa(p), "-o", "beginning", "-e", "-f", `%s\n`)
		if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("partition %d (%s): kcat read %d records, want the %d produced", p, codec, len(got), len(want))
		}
	}
}

// codecNames are the compression codecs by a batch's attribute bits 0-2.
var codecNames = map[int16]string{0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

// runKcatStderr runs kcat as runKcat does, failing the test if it exits
// non-zero, and returns what it printed on stderr (librdkafka's notices).
func runKcatStderr(ctx context.Context, t *testing.T, kcat, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, kcatTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\nstderr:\n%s", strings.Join(args, " "), err, firstLines(stderr.String(), 20))
	}
	return stderr.String()
}

// fetchRaw reads a partition from offset 0 with a raw Fetch to its leader
// and returns its record batches as stored.
func fetchRaw(ctx context.Context, t *testing.T, cl *kgo.Client, leader int32, topic string, part int32) []kmsg.RecordBatch {
	t.Helper()
	tds, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil || tds[topic].Err != nil {
		t.Fatalf("ListTopics %s: %v %v", topic, err, tds[topic].Err)
	}
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis, req.MaxBytes = 0, 10<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, tds[topic].ID // by name or id, whichever version the client picks
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.PartitionMaxBytes = part, 10<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := cl.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		t.Fatalf("Fetch %s/%d from broker %d: %v", topic, part, leader, err)
	}
	resp := kresp.(*kmsg.FetchResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("Fetch %s/%d: %+v", topic, part, resp)
	}
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("Fetch %s/%d: error %d", topic, part, p.ErrorCode)
	}
	var out []kmsg.RecordBatch
	for raw := p.RecordBatches; len(raw) > 0; {
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw); err != nil {
			t.Fatalf("Fetch %s/%d: decoding a batch: %v", topic, part, err)
		}
		out = append(out, b)
		raw = raw[12+int(b.Length):]
	}
	return out
}
