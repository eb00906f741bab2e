package kcluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestNewBindsEveryBrokerAndAgreesOnMetadata(t *testing.T) {
	c := Start(t, Brokers(3))
	addrs := c.Addrs()
	if len(addrs) != 3 {
		t.Fatalf("Addrs() = %v, want 3", addrs)
	}
	createTopic(t, c, "orders", 6, 3)
	var first *kmsg.MetadataResponse
	for i, a := range addrs {
		m := metadataOf(t, nil, a, "orders")
		if len(m.Brokers) != 3 {
			t.Fatalf("broker %d lists %d brokers, want 3", i+1, len(m.Brokers))
		}
		ids := []int32{}
		for _, b := range m.Brokers {
			ids = append(ids, b.NodeID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []int32{1, 2, 3}) {
			t.Fatalf("broker ids %v, want [1 2 3]", ids)
		}
		if len(m.Topics) != 1 || len(m.Topics[0].Partitions) != 6 {
			t.Fatalf("broker %d: topics %+v", i+1, m.Topics)
		}
		for _, p := range m.Topics[0].Partitions {
			if len(p.Replicas) != 3 {
				t.Fatalf("partition %d replicas %v", p.Partition, p.Replicas)
			}
			seen := map[int32]bool{}
			for _, r := range p.Replicas {
				if seen[r] {
					t.Fatalf("partition %d: replica %d placed twice", p.Partition, r)
				}
				seen[r] = true
			}
			if p.Leader != p.Replicas[0] {
				t.Fatalf("partition %d: leader %d is not the preferred replica %d", p.Partition, p.Leader, p.Replicas[0])
			}
		}
		if first == nil {
			first = m
			continue
		}
		if describeTopics(m) != describeTopics(first) || *m.ClusterID != *first.ClusterID {
			t.Fatalf("broker %d disagrees:\n%v\n%v", i+1, m.Topics, first.Topics)
		}
	}
}

func TestCreateTopicsErrors(t *testing.T) {
	c := Start(t, Brokers(2))
	cl := dial(t, c.Addrs()[0])
	req := kmsg.NewPtrCreateTopicsRequest()
	add := func(name string, p int32, rf int16) {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, p, rf
		req.Topics = append(req.Topics, rt)
	}
	add("too-many-replicas", 1, 3)
	add("bad/name", 1, 1)
	add("zero-partitions", 0, 1)
	add("ok", 2, 2)
	resp := do[*kmsg.CreateTopicsResponse](t, cl, req, -1)
	want := []error{kerr.InvalidReplicationFactor, kerr.InvalidTopicException, kerr.InvalidPartitions, nil}
	for i, rt := range resp.Topics {
		if got := kerr.ErrorForCode(rt.ErrorCode); got != want[i] {
			t.Errorf("%s: got %v, want %v", rt.Topic, got, want[i])
		}
	}
	resp = do[*kmsg.CreateTopicsResponse](t, cl, req, -1)
	if got := kerr.ErrorForCode(resp.Topics[3].ErrorCode); got != kerr.TopicAlreadyExists {
		t.Errorf("second create: %v, want TOPIC_ALREADY_EXISTS", got)
	}
}

// A CreateTopics or CreatePartitions of a few bytes asking for billions of
// partitions is refused as Kafka's controller refuses more than 10,000 per
// request (POLICY_VIOLATION), instead of being carried out until the
// process runs out of memory. FuzzConnection ran into this.
func TestCreateTopicsRefusesHugePartitionCounts(t *testing.T) {
	c := Start(t, Brokers(1))
	cl := dial(t, c.Addrs()[0])
	create := func(parts ...int32) *kmsg.CreateTopicsResponse {
		t.Helper()
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = 10000
		for i, p := range parts {
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = fmt.Sprint("huge-", i, "-", p), p, 1
			req.Topics = append(req.Topics, rt)
		}
		return do[*kmsg.CreateTopicsResponse](t, cl, req, -1)
	}
	for _, parts := range [][]int32{{math.MaxInt32}, {6000, 6000}, {10000, 1}} {
		resp := create(parts...)
		for _, rt := range resp.Topics {
			if got := kerr.ErrorForCode(rt.ErrorCode); got != kerr.PolicyViolation {
				t.Errorf("create %v: %s: %v, want POLICY_VIOLATION", parts, rt.Topic, got)
			}
		}
	}
	resp := create(2)
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create 2 partitions: %v", err)
	}
	for _, count := range []int32{math.MaxInt32, 2 + 10001} {
		req := kmsg.NewPtrCreatePartitionsRequest()
		req.TimeoutMillis = 10000
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = resp.Topics[0].Topic, count
		req.Topics = append(req.Topics, rt)
		cp := do[*kmsg.CreatePartitionsResponse](t, cl, req, -1)
		if got := kerr.ErrorForCode(cp.Topics[0].ErrorCode); got != kerr.PolicyViolation {
			t.Errorf("CreatePartitions to %d: %v, want POLICY_VIOLATION", count, got)
		}
	}
}

func TestProduceAcksAllReplicatesAndFetchesBack(t *testing.T) {
	c := Start(t, Brokers(3))
	id := createTopic(t, c, "events", 1, 3)
	_, addr := leaderAddr(t, c, "events", 0)
	var want []string
	for i := 0; i < 5; i++ {
		vals := []string{fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i), fmt.Sprintf("c%d", i)}
		want = append(want, vals...)
		rp := produce(t, nil, c, addr, "events", 0, -1, makeBatch(time.Now().UnixMilli(), vals...))
		if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		if rp.BaseOffset != int64(3*i) {
			t.Fatalf("produce %d: base offset %d, want %d", i, rp.BaseOffset, 3*i)
		}
	}
	// acks=all answered: every replica has the data. Each broker's own
	// replica holds all 15 records.
	for _, b := range c.running() {
		r := b.partition(id, 0)
		if r == nil {
			t.Fatalf("broker %d has no replica", b.id)
		}
		if leo := r.log.LogEndOffset(); leo != 15 {
			t.Fatalf("broker %d: log end offset %d, want 15", b.id, leo)
		}
	}
	for _, v := range []int16{11, 13, 17} {
		fp := fetch(t, addr, "events", id, 0, 0, v)
		if err := kerr.ErrorForCode(fp.ErrorCode); err != nil {
			t.Fatalf("fetch v%d: %v", v, err)
		}
		if fp.HighWatermark != 15 {
			t.Fatalf("fetch v%d: high watermark %d, want 15", v, fp.HighWatermark)
		}
		offs, vals := decodeValues(t, fp.RecordBatches)
		if !slices.Equal(vals, want) {
			t.Fatalf("fetch v%d: values %v, want %v", v, vals, want)
		}
		for i, o := range offs {
			if o != int64(i) {
				t.Fatalf("fetch v%d: offset %d at %d", v, o, i)
			}
		}
	}
	// Fetch from a follower: not the leader.
	for _, b := range c.running() {
		if a := b.advertisedAddr(); a != addr {
			fp := fetch(t, a, "events", id, 0, 0, 11)
			if got := kerr.ErrorForCode(fp.ErrorCode); got != kerr.NotLeaderForPartition {
				t.Fatalf("fetch from follower %d: %v, want NOT_LEADER_OR_FOLLOWER", b.id, got)
			}
		}
	}
	// At the high watermark: no data, and an empty (not null) record set,
	// which librdkafka and kafka-go require in non-flexible versions.
	if fp := fetchNoWait(t, addr, "events", 0, 15); fp.RecordBatches == nil || len(fp.RecordBatches) != 0 {
		t.Fatalf("fetch v11 at the high watermark: record set %v, want empty and not null", fp.RecordBatches)
	}
	// Out of range.
	fp := fetch(t, addr, "events", id, 0, 99, 11)
	if got := kerr.ErrorForCode(fp.ErrorCode); got != kerr.OffsetOutOfRange {
		t.Fatalf("fetch at 99: %v, want OFFSET_OUT_OF_RANGE", got)
	}
}

func TestFetchWaitsForMinBytes(t *testing.T) {
	c := Start(t, Brokers(1))
	id := createTopic(t, c, "wait", 1, 1)
	done := make(chan *kmsg.FetchResponseTopicPartition, 1)
	go func() {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis = 20000
		req.MinBytes = 1
		req.MaxBytes = 1 << 20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "wait", id
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.PartitionMaxBytes = 1 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		req.SetVersion(13)
		cl := dial(t, c.Addrs()[0])
		resp, err := cl.Request(context.Background(), req)
		if err != nil {
			done <- nil
			return
		}
		done <- &resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
	}()
	// The fetch is parked until data arrives; produce, and it must wake
	// well before its 20 s max wait.
	rp := produce(t, nil, c, c.Addrs()[0], "wait", 0, 1, makeBatch(1000, "x"))
	if rp.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rp.ErrorCode))
	}
	select {
	case fp := <-done:
		if fp == nil {
			t.Fatal("fetch failed")
		}
		_, vals := decodeValues(t, fp.RecordBatches)
		if !slices.Equal(vals, []string{"x"}) {
			t.Fatalf("values %v", vals)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("fetch did not wake on produce")
	}
}

func TestListOffsets(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "times", 1, 1)
	addr := c.Addrs()[0]
	produce(t, nil, c, addr, "times", 0, 1, makeBatch(1000, "a", "b", "c")) // ts 1000..1002, offsets 0..2
	produce(t, nil, c, addr, "times", 0, 1, makeBatch(5000, "d", "e"))      // ts 5000..5001, offsets 3..4
	produce(t, nil, c, addr, "times", 0, 1, makeBatch(3000, "f"))           // ts 3000, offset 5
	cases := []struct {
		ts         int64
		wantOffset int64
		wantTS     int64
	}{
		{-2, 0, -1},
		{-1, 6, -1},
		{0, 0, 1000},
		{1001, 1, 1001},
		{1003, 3, 5000},
		{5001, 4, 5001},
		{5002, -1, -1},
		{-3, 4, 5001},
	}
	cl := dial(t, addr)
	for _, tc := range cases {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "times"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = tc.ts
		rp.CurrentLeaderEpoch = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := do[*kmsg.ListOffsetsResponse](t, cl, req, 9)
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("ts %d: %v", tc.ts, kerr.ErrorForCode(p.ErrorCode))
		}
		if p.Offset != tc.wantOffset || p.Timestamp != tc.wantTS {
			t.Errorf("ts %d: offset %d timestamp %d, want %d %d", tc.ts, p.Offset, p.Timestamp, tc.wantOffset, tc.wantTS)
		}
	}
}

func TestAutoCreateOnMetadata(t *testing.T) {
	c := Start(t, Brokers(3), BrokerConfig("num.partitions", "4"), BrokerConfig("default.replication.factor", "3"))
	m := metadataOf(t, nil, c.Addrs()[1], "auto")
	if len(m.Topics) != 1 || m.Topics[0].ErrorCode != 0 || len(m.Topics[0].Partitions) != 4 || len(m.Topics[0].Partitions[0].Replicas) != 3 {
		t.Fatalf("auto-created topic: %+v", m.Topics)
	}
	c2 := Start(t, Brokers(1), BrokerConfig("auto.create.topics.enable", "false"))
	m = metadataOf(t, nil, c2.Addrs()[0], "auto")
	if kerr.ErrorForCode(m.Topics[0].ErrorCode) != kerr.UnknownTopicOrPartition {
		t.Fatalf("auto-create disabled: %v", kerr.ErrorForCode(m.Topics[0].ErrorCode))
	}
}

func TestApiVersions(t *testing.T) {
	c := Start(t, Brokers(1))
	cl := dial(t, c.Addrs()[0])
	resp := do[*kmsg.ApiVersionsResponse](t, cl, kmsg.NewPtrApiVersionsRequest(), 3)
	if resp.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(resp.ErrorCode))
	}
	got := map[int16][2]int16{}
	for _, k := range resp.ApiKeys {
		got[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	for key, h := range handlers {
		if got[key] != [2]int16{h.advertisedMin(), h.max} {
			t.Errorf("%s: advertised %v, served %d-%d (advertised from %d)", kmsg.NameForKey(key), got[key], h.min, h.max, h.advertisedMin())
		}
	}
	// Produce is advertised from v0 and served from v3, as Kafka 4
	// (KAFKA-18659); every other key from what it serves.
	if got[0] != [2]int16{0, 13} {
		t.Errorf("Produce advertised %v, want [0 13]", got[0])
	}
	for key, h := range handlers {
		if key != 0 && h.advertisedMin() != h.min {
			t.Errorf("%s advertised from %d, served from %d", kmsg.NameForKey(key), h.advertisedMin(), h.min)
		}
	}
	// A version newer than ours: UNSUPPORTED_VERSION in a v0 body, with
	// ApiVersions' range only (KIP-511), as Kafka answers it.
	conn, err := net.Dial("tcp", c.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	frame := []byte{0, 0, 0, 0, 0, 18, 0, 99, 0, 0, 0, 7, 0, 0}
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	conn.Write(frame)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var hdr [8]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:])-4)
	if _, err := io.ReadFull(conn, body); err != nil {
		t.Fatal(err)
	}
	v0 := kmsg.NewPtrApiVersionsResponse()
	v0.SetVersion(0)
	if err := v0.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if binary.BigEndian.Uint32(hdr[4:]) != 7 || v0.ErrorCode != kerr.UnsupportedVersion.Code || len(v0.ApiKeys) != 1 ||
		v0.ApiKeys[0].ApiKey != apiVersionsKey || v0.ApiKeys[0].MaxVersion != handlers[apiVersionsKey].max {
		t.Fatalf("unsupported ApiVersions answer: corr %d err %d keys %d", binary.BigEndian.Uint32(hdr[4:]), v0.ErrorCode, len(v0.ApiKeys))
	}
}

func TestCloseIsIdempotentAndFreesPorts(t *testing.T) {
	c, err := New(Brokers(2))
	if err != nil {
		t.Fatal(err)
	}
	addrs := c.Addrs()
	c.Close()
	c.Close()
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("port of %s still held after Close: %v", a, err)
		}
		ln.Close()
	}
}

func TestDeleteTopic(t *testing.T) {
	c := Start(t, Brokers(3))
	id := createTopic(t, c, "doomed", 2, 3)
	cl := dial(t, c.Addrs()[2])
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TopicNames = []string{"doomed", "never-was"}
	req.TimeoutMillis = 10000
	resp := do[*kmsg.DeleteTopicsResponse](t, cl, req, 5)
	if resp.Topics[0].ErrorCode != 0 || kerr.ErrorForCode(resp.Topics[1].ErrorCode) != kerr.UnknownTopicOrPartition {
		t.Fatalf("delete: %+v", resp.Topics)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, b := range c.running() {
		if err := b.waitMetadata(ctx, c.metadataEnd()); err != nil {
			t.Fatal(err)
		}
		if r := b.partition(id, 0); r != nil {
			t.Fatalf("broker %d still has a replica of a deleted topic", b.id)
		}
	}
}

func describeTopics(m *kmsg.MetadataResponse) string {
	var out string
	for _, t := range m.Topics {
		out += fmt.Sprintf("%s %x:", *t.Topic, t.TopicID)
		for _, p := range t.Partitions {
			out += fmt.Sprintf(" %d/%d/%d/%v/%v", p.Partition, p.Leader, p.LeaderEpoch, p.Replicas, p.ISR)
		}
	}
	return out
}

func fetchNoWait(t *testing.T, addr, topic string, part int32, offset int64) *kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.MaxBytes = 1 << 20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = part, offset, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := do[*kmsg.FetchResponse](t, dial(t, addr), req, 11)
	return &resp.Topics[0].Partitions[0]
}

// TestOnDisk runs a cluster with Dir: segments and the index are real files
// under the directory, and produce and fetch work as in memory.
func TestOnDisk(t *testing.T) {
	dir := t.TempDir()
	c := Start(t, Brokers(2), Dir(dir))
	id := createTopic(t, c, "disk", 1, 2)
	_, addr := leaderAddr(t, c, "disk", 0)
	if rp := produce(t, nil, c, addr, "disk", 0, -1, makeBatch(1, "on", "disk")); rp.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(rp.ErrorCode))
	}
	_, vals := decodeValues(t, fetch(t, addr, "disk", id, 0, 0, 13).RecordBatches)
	if !slices.Equal(vals, []string{"on", "disk"}) {
		t.Fatalf("values %v", vals)
	}
	for _, b := range []string{"broker-1", "broker-2"} {
		matches, _ := filepath.Glob(filepath.Join(dir, b, "disk-0.*", "*.log"))
		if len(matches) == 0 {
			t.Fatalf("%s: no segment file on disk", b)
		}
		if _, err := os.Stat(filepath.Join(dir, b, "index")); err != nil {
			t.Fatalf("%s: no pebble index on disk: %v", b, err)
		}
	}
}

// A failed acks=0 produce closes the connection (Kafka's way to tell a
// client that gets no responses); a good one keeps it open.
func TestAcksZeroErrorClosesConnection(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "z", 1, 1)
	cl := dial(t, c.Addrs()[0])
	send := func(topic string) {
		req := produceRequest(topic, 0, 0, 0, makeBatch(1, "v"))
		req.SetVersion(9)
		if _, err := cl.Request(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	send("z")
	do[*kmsg.ApiVersionsResponse](t, cl, kmsg.NewPtrApiVersionsRequest(), 3) // still open
	waitFor(t, c, "the acks=0 record", HighWatermarkAtLeast("z", 0, 1))
	send("no-such-topic")
	expectClosed(t, cl.Conn(), "connection after a failed acks=0 produce")
}

// A client creates a topic through broker 1 and at once asks broker 2,
// whose metadata arrives late (a slow link from the controller), about
// it: broker 2 first catches up with what the controller has committed,
// so it answers with the topic, not UNKNOWN_TOPIC_OR_PARTITION (after
// which franz-go backs off for 250 ms).
func TestMetadataOfATopicJustCreatedThroughAnotherBroker(t *testing.T) {
	c := Start(t, Brokers(2), BrokerConfig("auto.create.topics.enable", "false"))
	undo := c.SlowLink(2, c.Controller(), 100*time.Millisecond)
	defer undo()
	cl := dial(t, c.Addrs()[0])
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "late", 1, 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	if resp := do[*kmsg.CreateTopicsResponse](t, cl, req, -1); resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create: %v", kerr.ErrorForCode(resp.Topics[0].ErrorCode))
	}
	md := metadataOf(t, nil, c.Addrs()[1], "late")
	if len(md.Topics) != 1 || md.Topics[0].ErrorCode != 0 || len(md.Topics[0].Partitions) != 1 {
		t.Fatalf("broker 2's metadata of the topic just created through broker 1: %+v (error %v)", md.Topics, kerr.ErrorForCode(md.Topics[0].ErrorCode))
	}
}
