package kcluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/wire"
)

// TestHundredClustersLeakNothing starts, uses and closes 100 clusters one
// after another in this process, and checks that each Close gives back
// what the cluster took: goroutines return to the count before it started,
// open file descriptors (listeners, connections, files) to the count after
// the first cluster, and the heap does not grow with the number of
// clusters.
//
// The heap bound: the in-use heap after 100 clusters may exceed the heap
// after the first 10 by at most 64 MiB. An open 3-broker cluster holds 1 to 2
// MiB of Go heap (the test logs it, and says so if it is too little for
// the bound to matter; pebble's memtables live outside the Go heap and do
// not count), so 90 clusters that Close left reachable would hold 100 to
// 170 MiB, past the bound, while the heap measured after a
// GC moves by well under a MiB between rounds. A leak of part of a cluster
// (a few KiB per round) would pass the heap check; the goroutine and
// descriptor counts catch most of those, as leaked state is usually held
// by a goroutine or a socket.
func TestHundredClustersLeakNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 100 clusters")
	}
	const rounds = 100
	baseGoroutines := runtime.NumGoroutine()
	var baseFDs int
	var heap10, openCost uint64
	start := time.Now()
	for i := range rounds {
		inUse := clusterRound(t, i)
		waitGoroutines(t, baseGoroutines, i)
		switch i + 1 {
		case 1:
			// The first cluster opens what the process keeps (the
			// network poller's descriptors): count from here.
			baseFDs = openFDs(t)
		case 10:
			heap10 = heapInUse()
			openCost = inUse - min(heap10, inUse)
		case rounds:
			heap100 := heapInUse()
			fds := openFDs(t)
			t.Logf("%d clusters in %v: goroutines %d (baseline %d), open fds %d (after the first cluster %d), heap in use %.1f MiB after 10 and %.1f MiB after %d; one open cluster holds about %.1f MiB",
				rounds, time.Since(start).Round(time.Millisecond), runtime.NumGoroutine(), baseGoroutines, fds, baseFDs,
				mib(heap10), mib(heap100), rounds, mib(openCost))
			if baseFDs >= 0 && fds > baseFDs {
				t.Errorf("open file descriptors grew from %d to %d over %d clusters", baseFDs, fds, rounds)
			}
			if 90*openCost < 64<<20 {
				t.Logf("an open cluster holds only %.1f MiB: the 64 MiB heap bound would not see every cluster leaking", mib(openCost))
			}
			if heap100 > heap10+64<<20 {
				t.Errorf("heap in use grew from %.1f MiB after 10 clusters to %.1f MiB after %d", mib(heap10), mib(heap100), rounds)
			}
		}
	}
}

// clusterRound starts a 3-broker cluster, creates a topic replicated on
// all three, produces with acks=all to its leader and fetches the records
// back over its own connections, closes everything, and returns the heap
// in use while the cluster was open.
func clusterRound(t *testing.T, i int) uint64 {
	t.Helper()
	c, err := New(Brokers(3))
	if err != nil {
		t.Fatalf("cluster %d: %v", i, err)
	}
	defer c.Close()
	conn, err := net.DialTimeout("tcp", c.Addrs()[0], 5*time.Second)
	if err != nil {
		t.Fatalf("cluster %d: dial: %v", i, err)
	}
	cl := wire.NewClient(conn, "lifecycle")
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	request := func(req kmsg.Request, v int16) kmsg.Response {
		t.Helper()
		req.SetVersion(v)
		resp, err := cl.Request(ctx, req)
		if err != nil {
			t.Fatalf("cluster %d: %s: %v", i, kmsg.NameForKey(req.Key()), err)
		}
		return resp
	}

	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.TimeoutMillis = 10000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "round", 1, 3
	ct.Topics = append(ct.Topics, rt)
	ctr := request(ct, 7).(*kmsg.CreateTopicsResponse)
	if err := kerr.ErrorForCode(ctr.Topics[0].ErrorCode); err != nil {
		t.Fatalf("cluster %d: create topic: %v", i, err)
	}

	// The partition's leader: broker 1 in practice, but placement is
	// the controller's business.
	md := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr("round")
	md.Topics = append(md.Topics, mt)
	mr := request(md, 12).(*kmsg.MetadataResponse)
	if len(mr.Topics) != 1 || len(mr.Topics[0].Partitions) != 1 {
		t.Fatalf("cluster %d: metadata %+v", i, mr.Topics)
	}
	leader := mr.Topics[0].Partitions[0].Leader
	if leader < 1 || int(leader) > len(c.Addrs()) {
		t.Fatalf("cluster %d: leader %d", i, leader)
	}
	if leader != 1 {
		conn, err := net.DialTimeout("tcp", c.Addrs()[leader-1], 5*time.Second)
		if err != nil {
			t.Fatalf("cluster %d: dial leader %d: %v", i, leader, err)
		}
		lcl := wire.NewClient(conn, "lifecycle")
		defer lcl.Close()
		cl = lcl
	}

	values := []string{fmt.Sprint("a", i), fmt.Sprint("b", i), fmt.Sprint("c", i)}
	pr := produceRequest("round", 0, -1, 10000, makeBatch(time.Now().UnixMilli(), values...))
	pr.SetVersion(11) // by topic name
	resp, err := cl.Request(ctx, pr)
	if err != nil {
		t.Fatalf("cluster %d: produce: %v", i, err)
	}
	if err := kerr.ErrorForCode(resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode); err != nil {
		t.Fatalf("cluster %d: produce: %v", i, err)
	}

	fr := kmsg.NewPtrFetchRequest()
	fr.MaxBytes, fr.SessionEpoch = 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "round"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fr.Topics = append(fr.Topics, ft)
	fr.SetVersion(12) // by topic name
	resp, err = cl.Request(ctx, fr)
	if err != nil {
		t.Fatalf("cluster %d: fetch: %v", i, err)
	}
	got := resp.(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(got.ErrorCode); err != nil {
		t.Fatalf("cluster %d: fetch: %v", i, err)
	}
	if _, vals := decodeValues(t, got.RecordBatches); fmt.Sprint(vals) != fmt.Sprint(values) || got.HighWatermark != 3 {
		t.Fatalf("cluster %d: fetched %v (high watermark %d), want %v", i, vals, got.HighWatermark, values)
	}
	return heapInUse()
}

// waitGoroutines waits up to 5 s for the goroutine count to come back to
// base: goroutines that Close stopped may still be returning.
func waitGoroutines(t *testing.T, base, round int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("after cluster %d: %d goroutines, %d before the first:\n%s", round, runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		<-tick.C
	}
}

// openFDs counts this process's open file descriptors, or returns -1 where
// /proc/self/fd does not exist.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Logf("not counting file descriptors: %v", err)
		return -1
	}
	return len(ents)
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
