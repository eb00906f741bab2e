package kcluster

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/wire"
)

func dialAs(t *testing.T, addr, clientID string) *wire.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cl := wire.NewClient(conn, clientID)
	t.Cleanup(func() { cl.Close() })
	return cl
}

func alterQuota(t *testing.T, c *Cluster, clientID *string, key string, value float64, remove bool) kmsg.AlterClientQuotasResponseEntry {
	t.Helper()
	req := kmsg.NewPtrAlterClientQuotasRequest()
	e := kmsg.NewAlterClientQuotasRequestEntry()
	e.Entity = []kmsg.AlterClientQuotasRequestEntryEntity{{Type: "client-id", Name: clientID}}
	e.Ops = []kmsg.AlterClientQuotasRequestEntryOp{{Key: key, Value: value, Remove: remove}}
	req.Entries = append(req.Entries, e)
	resp := do[*kmsg.AlterClientQuotasResponse](t, dial(t, c.Addrs()[0]), req, -1)
	waitFor(t, c, "every broker to know the quota", func(*Cluster) bool { return true })
	return resp.Entries[0]
}

// Quotas are stored by the controller and described by any broker; a
// client past its producer_byte_rate gets throttle_time_ms and its
// connection is muted that long; a consumer past consumer_byte_rate gets
// a throttled response without data; other clients are not touched.
func TestClientQuotas(t *testing.T) {
	c := Start(t, Brokers(2), BrokerConfig("quota.window.num", "2"), BrokerConfig("quota.window.size.seconds", "1"))
	createTopic(t, c, "q", 1, 1)
	if e := alterQuota(t, c, kmsg.StringPtr("slow"), "producer_byte_rate", 100000, false); e.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(e.ErrorCode))
	}
	if e := alterQuota(t, c, nil, "consumer_byte_rate", 1000, false); e.ErrorCode != 0 { // the default client
		t.Fatal(kerr.ErrorForCode(e.ErrorCode))
	}
	if e := alterQuota(t, c, kmsg.StringPtr("x"), "producer_byte_rate", -1, false); e.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("a negative quota: %v", kerr.ErrorForCode(e.ErrorCode))
	}
	if e := alterQuota(t, c, kmsg.StringPtr("x"), "bytes_per_fortnight", 1, false); e.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("an unknown quota key: %v", kerr.ErrorForCode(e.ErrorCode))
	}
	dreq := kmsg.NewPtrDescribeClientQuotasRequest()
	dreq.Components = []kmsg.DescribeClientQuotasRequestComponent{{EntityType: "client-id", MatchType: kmsg.QuotasMatchTypeExact, Match: kmsg.StringPtr("slow")}}
	dresp := do[*kmsg.DescribeClientQuotasResponse](t, dial(t, c.Addrs()[1]), dreq, -1)
	if len(dresp.Entries) != 1 || dresp.Entries[0].Values[0].Key != "producer_byte_rate" || dresp.Entries[0].Values[0].Value != 100000 {
		t.Fatalf("DescribeClientQuotas: %+v", dresp.Entries)
	}
	dreq.Components[0] = kmsg.DescribeClientQuotasRequestComponent{EntityType: "client-id", MatchType: kmsg.QuotasMatchTypeDefault}
	if dresp := do[*kmsg.DescribeClientQuotasResponse](t, dial(t, c.Addrs()[1]), dreq, -1); len(dresp.Entries) != 1 || dresp.Entries[0].Values[0].Key != "consumer_byte_rate" {
		t.Fatalf("DescribeClientQuotas of the default: %+v", dresp.Entries)
	}

	leader := addrOf(c, partState(t, c, "q", 0).Leader)
	big := strings.Repeat("x", 200000)
	send := func(cl *wire.Client) *kmsg.ProduceResponse {
		req := produceRequest("q", 0, 1, 5000, makeBatch(time.Now().UnixMilli(), big))
		resp := do[*kmsg.ProduceResponse](t, cl, req, 9)
		if err := kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := send(dialAs(t, leader, "fast")); r.ThrottleMillis != 0 {
		t.Fatalf("a client without a quota was throttled %d ms", r.ThrottleMillis)
	}
	slow := dialAs(t, leader, "slow")
	r := send(slow)
	// 200 kB over the 1 s minimum span at 100 kB/s: about a second.
	if r.ThrottleMillis < 500 || r.ThrottleMillis > 2000 {
		t.Fatalf("throttle %d ms for 200 kB at a 100 kB/s quota, want about 1000", r.ThrottleMillis)
	}
	start := time.Now()
	do[*kmsg.ApiVersionsResponse](t, slow, kmsg.NewPtrApiVersionsRequest(), 3)
	if el := time.Since(start); el < time.Duration(r.ThrottleMillis)*time.Millisecond*8/10 {
		t.Fatalf("the muted connection answered after %v, throttle %d ms", el, r.ThrottleMillis)
	}
	// Consumers: the default quota of 1 kB/s throttles a 400 kB fetch.
	freq := kmsg.NewPtrFetchRequest()
	freq.ReplicaID, freq.MaxBytes, freq.SessionEpoch = -1, 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "q"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	freq.Topics = append(freq.Topics, ft)
	fresp := do[*kmsg.FetchResponse](t, dialAs(t, leader, "reader"), freq, 12)
	if fresp.ThrottleMillis <= 0 || len(fresp.Topics[0].Partitions[0].RecordBatches) != 0 || fresp.Topics[0].Partitions[0].HighWatermark != 2 {
		t.Fatalf("fetch past consumer_byte_rate: throttle %d ms, %d bytes, high watermark %d", fresp.ThrottleMillis,
			len(fresp.Topics[0].Partitions[0].RecordBatches), fresp.Topics[0].Partitions[0].HighWatermark)
	}
	// Remove the quotas: nobody is throttled.
	alterQuota(t, c, nil, "consumer_byte_rate", 0, true)
	fresp = do[*kmsg.FetchResponse](t, dialAs(t, leader, "reader2"), freq, 12)
	if fresp.ThrottleMillis != 0 || len(fresp.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("fetch after the quota went: throttle %d ms, %d bytes", fresp.ThrottleMillis, len(fresp.Topics[0].Partitions[0].RecordBatches))
	}
}
