package kcluster

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListOffsets v11: the tiered-storage timestamps are answered -1 (nothing
// is tiered); a special timestamp below its version, or an unknown
// negative one, is UNSUPPORTED_VERSION; a partition named twice is
// INVALID_REQUEST for both, as Kafka's ReplicaManager answers.
func TestListOffsetsV11(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "lo", 2, 1)
	if _, err := produceTo(t, c, "lo", -1, "a", "b"); err != nil {
		t.Fatal(err)
	}
	list := func(v int16, parts []int32, ts ...int64) []kmsg.ListOffsetsResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "lo"
		for i, x := range ts {
			p := kmsg.NewListOffsetsRequestTopicPartition()
			p.Partition, p.Timestamp = parts[i], x
			rt.Partitions = append(rt.Partitions, p)
		}
		req.Topics = append(req.Topics, rt)
		return do[*kmsg.ListOffsetsResponse](t, dial(t, c.Addrs()[0]), req, v).Topics[0].Partitions
	}
	got := list(11, []int32{0, 1}, -6, -5)
	for _, p := range got {
		if p.ErrorCode != 0 || p.Offset != -1 || p.LeaderEpoch != -1 {
			t.Errorf("v11 partition %d: %v offset %d epoch %d, want offset -1 epoch -1", p.Partition, kerr.ErrorForCode(p.ErrorCode), p.Offset, p.LeaderEpoch)
		}
	}
	got = list(10, []int32{0, 1}, -6, -7)
	for _, p := range got {
		if p.ErrorCode != kerr.UnsupportedVersion.Code {
			t.Errorf("v10 partition %d: %v, want UNSUPPORTED_VERSION", p.Partition, kerr.ErrorForCode(p.ErrorCode))
		}
	}
	got = list(11, []int32{0, 0, 1}, -1, -2, -1)
	if got[0].ErrorCode != kerr.InvalidRequest.Code || got[1].ErrorCode != kerr.InvalidRequest.Code || got[2].ErrorCode != 0 || got[2].Offset != 0 {
		t.Errorf("partition 0 named twice: %+v", got)
	}
	if got := list(11, []int32{0}, -1); got[0].ErrorCode != 0 || got[0].Offset != 2 {
		t.Errorf("latest: %+v", got)
	}
}

// DescribeCluster v2 lists fenced brokers when asked (KIP-1073); a broker
// refuses a request for controllers (KIP-919).
func TestDescribeClusterV2(t *testing.T) {
	c := Start(t, Brokers(3))
	if err := c.KillBroker(3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "broker 3 fenced", func(c *Cluster) bool { return c.Brokers()[2].Fenced })
	describe := func(v int16, fenced bool, typ int8) *kmsg.DescribeClusterResponse {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.IncludeFencedBrokers, req.EndpointType = fenced, typ
		return do[*kmsg.DescribeClusterResponse](t, dial(t, c.Addrs()[0]), req, v)
	}
	ids := func(resp *kmsg.DescribeClusterResponse) (out []string) {
		for _, b := range resp.Brokers {
			s := itoa(b.NodeID)
			if b.IsFenced {
				s += "f"
			}
			out = append(out, s)
		}
		return out
	}
	if got := ids(describe(2, true, 1)); strings.Join(got, ",") != "1,2,3f" {
		t.Errorf("v2 with fenced brokers: %v", got)
	}
	if got := ids(describe(2, false, 1)); strings.Join(got, ",") != "1,2" {
		t.Errorf("v2 without fenced brokers: %v", got)
	}
	if got := ids(describe(1, true, 1)); strings.Join(got, ",") != "1,2" {
		t.Errorf("v1 (no fenced brokers field): %v", got)
	}
	if resp := describe(2, false, 2); resp.ErrorCode != kerr.MismatchedEndpointType.Code {
		t.Errorf("endpoint type controller: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if resp := describe(2, false, 5); resp.ErrorCode != kerr.UnsupportedEndpointType.Code {
		t.Errorf("endpoint type 5: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
}

// ListConfigResources v1 lists topics, brokers and broker loggers (KIP-1142);
// v0, ListClientMetricsResources, lists the client metrics resources,
// which kcluster has none of.
func TestListConfigResources(t *testing.T) {
	c := Start(t, Brokers(2))
	createTopic(t, c, "cfg", 1, 1)
	list := func(v int16, types ...int8) *kmsg.ListConfigResourcesResponse {
		req := kmsg.NewPtrListConfigResourcesRequest()
		req.ResourceTypes = types
		return do[*kmsg.ListConfigResourcesResponse](t, dial(t, c.Addrs()[0]), req, v)
	}
	names := func(resp *kmsg.ListConfigResourcesResponse) (out []string) {
		for _, r := range resp.ConfigResources {
			out = append(out, itoa(int32(r.Type))+":"+r.Name)
		}
		slices.Sort(out)
		return out
	}
	if got := names(list(1)); strings.Join(got, " ") != "2:cfg 4:1 4:2 8:1 8:2" {
		t.Errorf("v1, every type: %v", got)
	}
	if got := names(list(1, 2)); strings.Join(got, " ") != "2:cfg" {
		t.Errorf("v1, topics: %v", got)
	}
	if resp := list(1, 2, 64); resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ConfigResources) != 0 {
		t.Errorf("v1 with an unknown type: %v %v", kerr.ErrorForCode(resp.ErrorCode), names(resp))
	}
	if resp := list(0); resp.ErrorCode != 0 || len(resp.ConfigResources) != 0 {
		t.Errorf("v0: %v %v", kerr.ErrorForCode(resp.ErrorCode), names(resp))
	}
}

// Fetch v18 (KIP-1166): a follower that names a high watermark behind the
// leader's is answered at once, not parked until MaxWait.
func TestFetchV18FollowerHighWatermark(t *testing.T) {
	c := Start(t, Brokers(2))
	id := createTopic(t, c, "hw", 1, 1)
	st := partState(t, c, "hw", 0)
	if _, err := produceTo(t, c, "hw", -1, "a"); err != nil {
		t.Fatal(err)
	}
	other := int32(3) - st.Leader // not a replica: the leader keeps no state for it
	fetchAsFollower := func(knownHW int64, wait time.Duration) time.Duration {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaState.ID, req.ReplicaState.Epoch = other, -1
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes = int32(wait/time.Millisecond), 1, 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.TopicID = id
		p := kmsg.NewFetchRequestTopicPartition()
		p.FetchOffset, p.PartitionMaxBytes, p.HighWatermark = 1, 1<<20, knownHW
		rt.Partitions = append(rt.Partitions, p)
		req.Topics = append(req.Topics, rt)
		start := time.Now()
		resp := do[*kmsg.FetchResponse](t, dial(t, addrOf(c, st.Leader)), req, 18)
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || p.HighWatermark != 1 {
			t.Fatalf("follower fetch: %v hw %d", kerr.ErrorForCode(p.ErrorCode), p.HighWatermark)
		}
		return time.Since(start)
	}
	if d := fetchAsFollower(0, 20*time.Second); d > 10*time.Second {
		t.Errorf("a follower behind the high watermark waited %v", d)
	}
	if d := fetchAsFollower(1, 300*time.Millisecond); d < 250*time.Millisecond {
		t.Errorf("a follower that knows the high watermark was answered after %v, before MaxWait", d)
	}
}

// DescribeTopicPartitions pages as Kafka's: the limit is at least 1, a
// cursor on a topic outside the listed ones is INVALID_REQUEST, and a page
// that ends with a topic points the cursor at the next topic's start.
func TestDescribeTopicPartitionsPaging(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "a", 2, 1)
	createTopic(t, c, "b", 2, 1)
	describe := func(limit int32, cursor *kmsg.DescribeTopicPartitionsRequestCursor, topics ...string) *kmsg.DescribeTopicPartitionsResponse {
		req := kmsg.NewPtrDescribeTopicPartitionsRequest()
		req.ResponsePartitionLimit, req.Cursor = limit, cursor
		for _, n := range topics {
			rt := kmsg.NewDescribeTopicPartitionsRequestTopic()
			rt.Topic = n
			req.Topics = append(req.Topics, rt)
		}
		return do[*kmsg.DescribeTopicPartitionsResponse](t, dial(t, c.Addrs()[0]), req, 0)
	}
	resp := describe(0, nil, "a", "b")
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.NextCursor == nil || resp.NextCursor.Topic != "a" || resp.NextCursor.Partition != 1 {
		t.Fatalf("limit 0 (1): %+v cursor %+v", resp.Topics, resp.NextCursor)
	}
	resp = describe(2, nil, "a", "b")
	if len(resp.Topics) != 1 || resp.NextCursor == nil || resp.NextCursor.Topic != "b" || resp.NextCursor.Partition != 0 {
		t.Fatalf("limit 2: %d topics, cursor %+v", len(resp.Topics), resp.NextCursor)
	}
	resp = describe(10, &kmsg.DescribeTopicPartitionsRequestCursor{Topic: "c"}, "a", "b")
	if len(resp.Topics) != 2 || resp.Topics[0].ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("cursor outside the topics: %+v", resp.Topics)
	}
	resp = describe(10, nil, "a", "nope", "b")
	if len(resp.Topics) != 3 || resp.Topics[2].ErrorCode != kerr.UnknownTopicOrPartition.Code || *resp.Topics[2].Topic != "nope" || resp.NextCursor != nil { // sorted by name, as Kafka
		t.Fatalf("unknown topic: %+v", resp.Topics)
	}
}

// Metadata v13 answers as v12 with the top-level error code (KIP-1102)
// unset: a broker answers from its own metadata.
func TestMetadataV13(t *testing.T) {
	c := Start(t, Brokers(2))
	id := createTopic(t, c, "m13", 2, 2)
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.TopicID = id
	req.Topics = append(req.Topics, rt)
	resp := do[*kmsg.MetadataResponse](t, dial(t, c.Addrs()[1]), req, 13)
	if resp.ErrorCode != 0 || len(resp.Brokers) != 2 || len(resp.Topics) != 1 || resp.Topics[0].Topic == nil || *resp.Topics[0].Topic != "m13" || len(resp.Topics[0].Partitions) != 2 {
		t.Fatalf("Metadata v13: %+v", resp)
	}
}
