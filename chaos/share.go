package chaos

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster"
)

// The share-group workload (Config.Share): three franz-go share consumers
// of the group Topic+"-share" (share.auto.offset.reset earliest) read
// Topic beside the classic group, accepting every record. The checks:
//
//   - Every acknowledged record is delivered to the share group, and in
//     the end every share-partition's start offset is its high watermark:
//     every record was ACCEPTED (none left in flight, none skipped).
//   - Accepted exactly once: in kcluster's invariants builds the share
//     coordinators check every write they are sent, and report a record
//     written again once it was acknowledged or archived as a broken
//     invariant of the cluster (which fails the test that started it).
//   - No concurrent delivery: a record is not delivered twice at one
//     delivery count within one leader epoch of its partition. A second
//     delivery at the same count is Kafka's only after a leader change
//     (an acquisition is not persisted, so a new leader hands the record
//     out again at once); with no leader change, only a lock's expiry or
//     a release makes a record available again, and either raises its
//     count.

// shareDelivery is one delivery of a record to a share consumer.
type shareDelivery struct {
	who   string
	at    time.Time
	count int32
	part  int32
}

// epochChange is a leader epoch of a partition, seen at a time.
type epochChange struct {
	at    time.Time
	epoch int32
}

type shareState struct {
	mu         sync.Mutex
	deliveries map[string][]shareDelivery
	epochs     map[int32][]epochChange
}

func (r *run) shareGroup() string { return r.cfg.Topic + "-share" }

// startShare sets the share group's configs and starts its consumers on
// wg until ctx ends; it returns them for the drain.
func (r *run) startShare(ctx context.Context, wg *sync.WaitGroup) ([]*kgo.Client, error) {
	r.share.deliveries = map[string][]shareDelivery{}
	r.share.epochs = map[int32][]epochChange{}
	cl, err := r.client()
	if err != nil {
		return nil, err
	}
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	res := kmsg.NewIncrementalAlterConfigsRequestResource()
	res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeGroupConfig, r.shareGroup()
	c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
	c.Name, c.Value, c.Op = "share.auto.offset.reset", kmsg.StringPtr("earliest"), kmsg.IncrementalAlterConfigOpSet
	res.Configs = append(res.Configs, c)
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	cl.Close()
	if err == nil {
		err = kerr.ErrorForCode(resp.Resources[0].ErrorCode)
	}
	if err != nil {
		return nil, fmt.Errorf("chaos: share.auto.offset.reset of %s: %w", r.shareGroup(), err)
	}
	var cls []*kgo.Client
	for i := range 3 {
		cl, err := r.client(kgo.ShareGroup(r.shareGroup()), kgo.ConsumeTopics(r.cfg.Topic), kgo.ShareMaxRecords(50))
		if err != nil {
			for _, c := range cls {
				c.Close()
			}
			return nil, err
		}
		cls = append(cls, cl)
		who := fmt.Sprintf("share-%d", i)
		wg.Go(func() {
			for ctx.Err() == nil {
				r.shareRecord(who, cl.PollFetches(ctx))
				cl.MarkAcks(kgo.AckAccept)
			}
		})
	}
	return cls, nil
}

func (r *run) shareRecord(who string, fs kgo.Fetches) {
	now := time.Now()
	r.share.mu.Lock()
	defer r.share.mu.Unlock()
	fs.EachRecord(func(rec *kgo.Record) {
		r.share.deliveries[string(rec.Value)] = append(r.share.deliveries[string(rec.Value)],
			shareDelivery{who: who, at: now, count: rec.DeliveryCount(), part: rec.Partition})
	})
}

// sampleShareEpochs notes the leader epochs of Topic's partitions (from
// sample, on every cluster event).
func (r *run) sampleShareEpochs(c *kcluster.Cluster) {
	now := time.Now()
	r.share.mu.Lock()
	defer r.share.mu.Unlock()
	for p := range r.cfg.Partitions {
		st, err := c.PartitionState(r.cfg.Topic, p)
		if err != nil {
			continue
		}
		es := r.share.epochs[p]
		if n := len(es); n == 0 || es[n-1].epoch != st.LeaderEpoch {
			r.share.epochs[p] = append(es, epochChange{now, st.LeaderEpoch})
		}
	}
}

// drainShare polls the share consumers until every acknowledged record
// was delivered to them and every share-partition's start offset reached
// its high watermark, then flushes their acknowledgements.
func (r *run) drainShare(ctx context.Context, cls []*kgo.Client) {
	dctx, cancel := context.WithTimeout(ctx, r.cfg.Recovery)
	defer cancel()
	missing := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.share.mu.Lock()
		defer r.share.mu.Unlock()
		n := 0
		for v := range r.mu.acked {
			if len(r.share.deliveries[v]) == 0 {
				n++
			}
		}
		return n
	}
	done := func(c *kcluster.Cluster) bool {
		for p := range r.cfg.Partitions {
			st, err := c.PartitionState(r.cfg.Topic, p)
			if err != nil || st.HighWatermark < 0 || !kcluster.ShareAcknowledged(r.shareGroup(), r.cfg.Topic, p, st.HighWatermark)(c) {
				return false
			}
		}
		return true
	}
	var wg sync.WaitGroup
	pctx, stop := context.WithCancel(dctx)
	for i, cl := range cls {
		who := fmt.Sprintf("share-%d", i)
		wg.Go(func() {
			for pctx.Err() == nil {
				r.shareRecord(who, cl.PollFetches(pctx))
				cl.MarkAcks(kgo.AckAccept)
			}
		})
	}
	err := r.c.WaitFor(dctx, func(c *kcluster.Cluster) bool {
		r.sampleShareEpochs(c)
		return missing() == 0 && done(c)
	})
	stop()
	wg.Wait()
	for _, cl := range cls {
		_ = cl.FlushAcks(dctx)
	}
	if err != nil {
		var at []string
		if st, gerr := r.c.ShareGroup(r.shareGroup()); gerr == nil {
			for _, p := range st.Partitions {
				at = append(at, fmt.Sprintf("%d: start %d end %d, %d in flight", p.Partition, p.StartOffset, p.EndOffset, len(p.InFlight)))
			}
		}
		r.violation("the share group had %d acknowledged records undelivered, or records not acknowledged, %v after healing: %v (share-partitions %v)",
			missing(), r.cfg.Recovery, err, at)
		return
	}
	r.logf("share group drained")
}

// checkShare checks the share-group promises (see the top of the file).
func (r *run) checkShare() {
	// A delivery is taken as in the epoch seen up to a second before
	// it arrived: the response of a deposed leader can arrive after the
	// new leader's election was seen.
	const slack = time.Second
	r.mu.Lock()
	defer r.mu.Unlock()
	r.share.mu.Lock()
	defer r.share.mu.Unlock()
	changed := func(p int32, from, to time.Time) bool {
		for _, e := range r.share.epochs[p][1:] {
			if e.at.After(from.Add(-slack)) && !e.at.After(to) {
				return true
			}
		}
		return false
	}
	var n, again int
	for v, ds := range r.share.deliveries {
		n += len(ds)
		if len(ds) > 1 {
			again++
		}
		slices.SortFunc(ds, func(a, b shareDelivery) int { return a.at.Compare(b.at) })
		for i := 1; i < len(ds); i++ {
			for j := range i {
				if ds[i].count <= ds[j].count && len(r.share.epochs[ds[i].part]) > 0 && !changed(ds[i].part, ds[j].at, ds[i].at) {
					r.mu.report.Violations = append(r.mu.report.Violations, fmt.Sprintf(
						"record %s of %s/%d delivered at count %d to %s and then at count %d to %s %v later, with no leader change between: delivered concurrently",
						v, r.cfg.Topic, ds[i].part, ds[j].count, ds[j].who, ds[i].count, ds[i].who, ds[i].at.Sub(ds[j].at).Round(time.Millisecond)))
				}
			}
		}
	}
	r.mu.report.ShareDelivered, r.mu.report.ShareRedelivered = n, again
}
