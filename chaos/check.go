package chaos

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// drain waits for every record handed to the producer to be acknowledged
// or failed, then for the group to have read every acknowledged record.
func (r *run) drain(ctx context.Context, prod, cons *kgo.Client) {
	dctx, cancel := context.WithTimeout(ctx, r.cfg.Recovery)
	defer cancel()
	if err := prod.Flush(dctx); err != nil {
		r.violation("the producer did not drain within %v of healing: %v", r.cfg.Recovery, err)
	}
	r.logf("producer drained")
	for {
		r.mu.Lock()
		missing := 0
		for v := range r.mu.acked {
			if !r.mu.consumed[v] {
				missing++
			}
		}
		r.mu.Unlock()
		if missing == 0 {
			r.logf("group drained")
			return
		}
		fs := cons.PollFetches(dctx)
		if dctx.Err() != nil {
			r.violation("the group had not consumed %d acknowledged records %v after healing", missing, r.cfg.Recovery)
			return
		}
		r.record(fs)
	}
}

// stored is one record read back.
type stored struct {
	offset int64
	value  string
}

// readTopic reads every partition of topic from its start to its high
// watermark, with read_committed if committed (then the partitions must be
// stable: no transaction open). It checks that every replica's log ends at
// the high watermark. Control records are left out; ok is false when it
// could not finish (a violation is recorded).
func (r *run) readTopic(ctx context.Context, topic string, committed bool) (logs map[int32][]stored, ok bool) {
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Recovery)
	defer cancel()
	ends := map[int32]int64{}
	offsets := map[int32]kgo.Offset{}
	for p := range r.cfg.Partitions {
		if committed {
			if err := r.c.WaitFor(wctx, kcluster.PartitionStable(topic, p)); err != nil {
				st, _ := r.c.PartitionState(topic, p)
				r.violation("%s/%d: the last stable offset %d never reached the high watermark %d: %v", topic, p, st.LastStableOffset, st.HighWatermark, err)
				return nil, false
			}
		}
		st, err := r.c.PartitionState(topic, p)
		if err != nil {
			r.violation("%s/%d: %v", topic, p, err)
			return nil, false
		}
		for b, leo := range st.LogEndOffsets {
			if leo != st.HighWatermark {
				r.violation("%s/%d: broker %d's log ends at %d, the high watermark is %d", topic, p, b, leo, st.HighWatermark)
			}
		}
		ends[p] = st.HighWatermark
		offsets[p] = kgo.NewOffset().AtStart()
	}
	opts := []kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}), kgo.KeepControlRecords()}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := r.client(opts...)
	if err != nil {
		r.violation("reading %s back: %v", topic, err)
		return nil, false
	}
	defer cl.Close()
	logs = map[int32][]stored{}
	next := map[int32]int64{} // the offset after the last record read
	for read := 0; ; {
		done := true
		for p, end := range ends {
			if next[p] < end {
				done = false
			}
		}
		if done {
			return logs, true
		}
		fs := cl.PollFetches(wctx)
		if wctx.Err() != nil {
			r.violation("reading %s back did not finish in %v (read %d records)", topic, r.cfg.Recovery, read)
			return nil, false
		}
		fs.EachRecord(func(rec *kgo.Record) {
			read++
			next[rec.Partition] = rec.Offset + 1
			if !rec.Attrs.IsControl() {
				logs[rec.Partition] = append(logs[rec.Partition], stored{rec.Offset, string(rec.Value)})
			}
		})
	}
}

// check reads every partition from the start and checks the acknowledged
// records against it.
func (r *run) check(ctx context.Context) {
	if err := r.waitReplicated(ctx, "the drain"); err != nil {
		return
	}
	logs, ok := r.readTopic(ctx, r.cfg.Topic, false)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sent := r.mu.report.Sent
	at := map[int32]map[int64]string{}
	seen := map[string]int{}
	var bad []string
	for p, recs := range logs {
		r.mu.report.InLog += len(recs)
		at[p] = map[int64]string{}
		for i, rec := range recs {
			at[p][rec.offset] = rec.value
			seen[rec.value]++
			if i > 0 && rec.value <= recs[i-1].value {
				bad = append(bad, fmt.Sprintf("%s/%d: %s at offset %d after %s: out of the order produced", r.cfg.Topic, p, rec.value, rec.offset, recs[i-1].value))
			}
		}
	}
	for v, a := range r.mu.acked {
		switch got, n := at[a.partition][a.offset], seen[v]; {
		case n == 0:
			bad = append(bad, fmt.Sprintf("acknowledged %s at %s/%d offset %d is lost", v, r.cfg.Topic, a.partition, a.offset))
		case n > 1:
			bad = append(bad, fmt.Sprintf("acknowledged %s is in the topic %d times", v, n))
		case got != v:
			bad = append(bad, fmt.Sprintf("acknowledged %s at %s/%d offset %d, which holds %q", v, r.cfg.Topic, a.partition, a.offset, got))
		}
	}
	for v := range seen {
		var n int
		if _, err := fmt.Sscanf(v, "v%d", &n); err != nil || n >= sent {
			bad = append(bad, fmt.Sprintf("record %q in the topic was never sent", v))
		}
	}
	r.addViolationsLocked(bad)
}

// addViolationsLocked records bad, sorted, at most 20 of them named.
func (r *run) addViolationsLocked(bad []string) {
	slices.Sort(bad)
	if len(bad) > 20 {
		bad = append(bad[:20], fmt.Sprintf("... and %d more", len(bad)-20))
	}
	r.mu.report.Violations = append(r.mu.report.Violations, bad...)
}
