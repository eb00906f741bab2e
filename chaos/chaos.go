// Package chaos runs a seeded schedule of faults against a kcluster.Cluster
// under a Kafka workload, heals everything, drains, and checks the promises
// Kafka makes about acknowledged writes, the way Jepsen checks a database,
// inside one process.
//
// # Usage
//
//  1. Start a cluster (kcluster.Start or kcluster.New). For faults that
//     lose no acknowledged write, give it at least 3 brokers; Run creates
//     its topic with replication factor 3 and min.insync.replicas 2.
//  2. Call Run with a Config: the seed (0: a random one, reported), how
//     many faults, which kinds. Run returns a Report.
//  3. Fail the test with Report.Err(): it names the seed, the violations
//     and the fault timeline. Replaying the same seed replays the same
//     schedule of faults (the workload's timing is the machine's, unless
//     the cluster runs in a testing/synctest bubble on
//     kcluster.InMemoryNetwork, where it is the bubble's).
//
// What is checked, once every fault is healed and the workload drained:
// every acknowledged record is in its partition exactly once, at the offset
// it was acknowledged with, and no record appears that was never sent;
// records of one partition are in the order they were produced; every
// replica of every partition ends at the same log end offset; no replica's
// high watermark went backwards while that broker kept running; a consumer
// group's committed offsets never went backwards; the group consumed every
// acknowledged record.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster"
)

// Fault is a kind of fault Run injects.
type Fault string

// The faults, each undone before the next one starts.
const (
	// Kill is KillBroker of a random broker, restarted afterwards.
	Kill Fault = "kill"
	// Stop is StopBroker (controlled shutdown), restarted afterwards.
	Stop Fault = "stop"
	// PowerCut is PowerCut of a random broker (only what it had synced
	// survives), restarted afterwards. With on-disk storage, which cannot
	// simulate it, Run injects Kill instead and says so in the timeline.
	PowerCut Fault = "power-cut"
	// Cut cuts the link between two random brokers.
	Cut Fault = "cut"
	// Isolate isolates a random broker from every node and client.
	Isolate Fault = "isolate"
	// Partition splits the brokers and controllers into a minority and a
	// majority.
	Partition Fault = "partition"
	// SlowLink adds 5-50 ms of latency to a random link (clients
	// included).
	SlowLink Fault = "slow-link"
	// LossyLink loses 10-50% of the writes on a random link (clients
	// included): TCP stalls and retransmits.
	LossyLink Fault = "lossy-link"
	// KillController kills the active controller of a quorum
	// (kcluster.Controllers(n) with n > 1), restarted afterwards; with
	// one controller Run injects Kill instead.
	KillController Fault = "kill-controller"
)

// AllFaults is every Fault; Config.Faults defaults to it.
var AllFaults = []Fault{Kill, Stop, PowerCut, Cut, Isolate, Partition, SlowLink, LossyLink, KillController}

// Config says what Run does. The zero value runs 8 random faults of every
// kind against a 3-partition topic named "chaos".
type Config struct {
	// Seed drives the schedule; 0 picks a random seed, reported in the
	// Report.
	Seed uint64
	// Steps is the number of faults, one at a time (default 8).
	Steps int
	// Faults are the kinds to choose from (default AllFaults).
	Faults []Fault
	// Topic is created by Run with Partitions partitions, replication
	// factor 3 and min.insync.replicas 2 (default "chaos", 3).
	Topic      string
	Partitions int32
	// FaultDuration is how long each fault lasts while the workload runs
	// (default 300 ms).
	FaultDuration time.Duration
	// Recovery bounds the wait, after each fault is undone, for every
	// partition to be fully replicated again, and the final drain
	// (default 60 s). Not recovering in time is a violation.
	Recovery time.Duration
	// Logf, if set, gets the timeline as it happens.
	Logf func(format string, args ...any)
	// BeforeCheck, if set, is called after the workload has drained and
	// before the final check: e.g. to restart every broker and check
	// what survives it. An error stops Run.
	BeforeCheck func() error
}

func (cfg *Config) defaults() {
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if cfg.Steps <= 0 {
		cfg.Steps = 8
	}
	if len(cfg.Faults) == 0 {
		cfg.Faults = AllFaults
	}
	if cfg.Topic == "" {
		cfg.Topic = "chaos"
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 3
	}
	if cfg.FaultDuration <= 0 {
		cfg.FaultDuration = 300 * time.Millisecond
	}
	if cfg.Recovery <= 0 {
		cfg.Recovery = 60 * time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
}

// Event is one line of the fault timeline.
type Event struct {
	At   time.Duration // since Run started
	What string
}

// Report is what Run did and found.
type Report struct {
	Seed     uint64
	Timeline []Event
	// Sent records were handed to the producer; Acked were
	// acknowledged (acks=all, idempotent); Consumed were read by the
	// group (with repeats after rebalances); InLog are in the topic at
	// the end.
	Sent, Acked, Consumed, InLog int
	// HighWatermarkSamples counts the high watermark observations the
	// monotonicity check made; OffsetSamples the committed-offset ones.
	HighWatermarkSamples, OffsetSamples int
	// Violations are the broken promises; empty when all held.
	Violations []string
}

// Err is nil when no promise was broken; otherwise an error naming the
// seed, the violations and the timeline.
func (r *Report) Err() error {
	if len(r.Violations) == 0 {
		return nil
	}
	return errors.New(r.String())
}

// String summarises the report: seed, counts, violations and timeline.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos seed %d: %d sent, %d acknowledged, %d in the log, %d consumed; %d high watermark and %d committed offset samples; %d violations\n",
		r.Seed, r.Sent, r.Acked, r.InLog, r.Consumed, r.HighWatermarkSamples, r.OffsetSamples, len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "  VIOLATION: %s\n", v)
	}
	for _, e := range r.Timeline {
		fmt.Fprintf(&b, "  %8v %s\n", e.At.Round(time.Millisecond), e.What)
	}
	return b.String()
}

// run is the state of one Run.
type run struct {
	c     *kcluster.Cluster
	cfg   Config
	rng   *rand.Rand
	start time.Time

	mu struct {
		sync.Mutex
		report Report
		// incarnation counts the restarts of each broker, so the high
		// watermark check compares a replica only with itself while it
		// kept running.
		incarnation map[int32]int
		hw          map[hwKey]int64
		committed   map[int32]int64
		acked       map[string]ack // value -> where it was acknowledged
		consumed    map[string]bool
	}
}

type hwKey struct {
	broker, incarnation, partition int32
}

type ack struct {
	partition int32
	offset    int64
}

func (r *run) logf(format string, args ...any) {
	e := Event{At: time.Since(r.start), What: fmt.Sprintf(format, args...)}
	r.mu.Lock()
	r.mu.report.Timeline = append(r.mu.report.Timeline, e)
	r.mu.Unlock()
	r.cfg.Logf("%v %s", e.At.Round(time.Millisecond), e.What)
}

func (r *run) violation(format string, args ...any) {
	v := fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.mu.report.Violations = append(r.mu.report.Violations, v)
	r.mu.Unlock()
	r.logf("VIOLATION: %s", v)
}

// Run creates cfg.Topic on c, runs an idempotent acks=all producer and a
// consumer group on it while it injects cfg.Steps faults, one at a time,
// each undone before the next, then drains and checks. The error is for
// a harness that could not run (the topic could not be created, ctx
// ended); broken promises are in Report.Violations.
func Run(ctx context.Context, c *kcluster.Cluster, cfg Config) (*Report, error) {
	cfg.defaults()
	r := &run{c: c, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6b636c7573746572)), start: time.Now()}
	r.mu.report.Seed = cfg.Seed
	r.mu.incarnation = map[int32]int{}
	r.mu.hw = map[hwKey]int64{}
	r.mu.committed = map[int32]int64{}
	r.mu.acked = map[string]ack{}
	r.mu.consumed = map[string]bool{}
	report := func() *Report {
		r.mu.Lock()
		defer r.mu.Unlock()
		rep := r.mu.report
		return &rep
	}
	r.logf("seed %d: %d faults of %v on %d brokers, controllers %v", cfg.Seed, cfg.Steps, cfg.Faults, len(c.Addrs()), c.ControllerIDs())

	if err := r.createTopic(ctx); err != nil {
		return report(), err
	}
	wctx, stopWorkload := context.WithCancel(ctx)
	var wg sync.WaitGroup
	prod, err := r.client()
	if err != nil {
		stopWorkload()
		return report(), err
	}
	defer prod.Close()
	cons, err := r.client(kgo.ConsumerGroup(cfg.Topic+"-group"), kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AutoCommitInterval(100*time.Millisecond))
	if err != nil {
		stopWorkload()
		return report(), err
	}
	wg.Add(3)
	go func() { defer wg.Done(); r.produce(wctx, prod) }()
	go func() { defer wg.Done(); r.consume(wctx, cons) }()
	go func() { defer wg.Done(); r.sample(wctx) }()

	for step := range cfg.Steps {
		if err := r.step(ctx, step); err != nil {
			stopWorkload()
			wg.Wait()
			cons.Close()
			return report(), err
		}
	}
	stopWorkload()
	wg.Wait()
	r.drain(ctx, prod, cons)
	cons.Close()
	if cfg.BeforeCheck != nil {
		r.logf("before the check")
		if err := cfg.BeforeCheck(); err != nil {
			return report(), fmt.Errorf("chaos: BeforeCheck: %w", err)
		}
	}
	r.check(ctx)
	rep := report()
	r.logf("done: %d sent, %d acknowledged, %d violations", rep.Sent, rep.Acked, len(rep.Violations))
	return report(), nil
}

// client is a franz-go client of the cluster, through its dialer (so an
// in-memory network works too).
func (r *run) client(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(r.c.Addrs()...),
		kgo.Dialer(r.c.Dial),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.DefaultProduceTopic(r.cfg.Topic),
		kgo.MetadataMinAge(50 * time.Millisecond),
		kgo.RetryTimeout(r.cfg.Recovery),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}, opts...)...)
}

func (r *run) createTopic(ctx context.Context) error {
	cl, err := r.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = r.cfg.Topic, r.cfg.Partitions, 3
	minISR := "2"
	rt.Configs = []kmsg.CreateTopicsRequestTopicConfig{{Name: "min.insync.replicas", Value: &minISR}}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		if len(resp.Topics) != 1 {
			err = fmt.Errorf("%d topics in the CreateTopics response", len(resp.Topics))
		} else {
			err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
		}
	}
	if err != nil {
		return fmt.Errorf("chaos: creating topic %q (%d partitions, RF 3): %w", r.cfg.Topic, r.cfg.Partitions, err)
	}
	return r.waitReplicated(ctx, "the topic to be created")
}

// waitReplicated waits, up to cfg.Recovery, for every partition of the
// topic to be fully replicated; not getting there is a violation.
func (r *run) waitReplicated(ctx context.Context, what string) error {
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Recovery)
	defer cancel()
	err := r.c.WaitFor(wctx, func(c *kcluster.Cluster) bool {
		for p := range r.cfg.Partitions {
			if !kcluster.FullyReplicated(r.cfg.Topic, p)(c) {
				return false
			}
		}
		return true
	})
	if err != nil && ctx.Err() == nil {
		r.violation("not fully replicated %v after waiting for %s: %v\n%s", r.cfg.Recovery, what, err, r.c)
		return nil
	}
	return ctx.Err()
}

// produce sends records "v<n>" in order until ctx ends, each keyed so it
// goes to partition n % Partitions, with at most 100 in flight.
func (r *run) produce(ctx context.Context, cl *kgo.Client) {
	inflight := make(chan struct{}, 100)
	for n := 0; ; n++ {
		select {
		case inflight <- struct{}{}:
		case <-ctx.Done():
			return
		}
		v := fmt.Sprintf("v%08d", n)
		rec := &kgo.Record{Value: []byte(v), Partition: int32(n) % r.cfg.Partitions}
		r.mu.Lock()
		r.mu.report.Sent++
		r.mu.Unlock()
		// ctx is not the record's context: a record handed over is
		// followed to its end by the drain.
		cl.Produce(context.Background(), rec, func(rec *kgo.Record, err error) {
			<-inflight
			if err != nil {
				return // not acknowledged: may or may not be in the log
			}
			r.mu.Lock()
			r.mu.report.Acked++
			r.mu.acked[string(rec.Value)] = ack{rec.Partition, rec.Offset}
			r.mu.Unlock()
		})
	}
}

// consume polls the group until ctx ends, recording what it reads.
func (r *run) consume(ctx context.Context, cl *kgo.Client) {
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		r.record(fs)
	}
}

func (r *run) record(fs kgo.Fetches) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fs.EachRecord(func(rec *kgo.Record) {
		r.mu.report.Consumed++
		r.mu.consumed[string(rec.Value)] = true
	})
}

// sample checks, on every cluster event, that no replica's high watermark
// and no committed offset of the group went backwards.
func (r *run) sample(ctx context.Context) {
	_ = r.c.WaitFor(ctx, func(c *kcluster.Cluster) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		for p := range r.cfg.Partitions {
			st, err := c.PartitionState(r.cfg.Topic, p)
			if err != nil {
				continue
			}
			for b, hw := range st.HighWatermarks {
				k := hwKey{b, int32(r.mu.incarnation[b]), p}
				if prev, ok := r.mu.hw[k]; ok && hw < prev {
					r.mu.report.Violations = append(r.mu.report.Violations,
						fmt.Sprintf("broker %d's high watermark of %s/%d went back from %d to %d while it kept running", b, r.cfg.Topic, p, prev, hw))
				}
				r.mu.hw[k] = hw
				r.mu.report.HighWatermarkSamples++
			}
		}
		if g, err := c.Group(r.cfg.Topic + "-group"); err == nil {
			for p, off := range g.Offsets[r.cfg.Topic] {
				if prev, ok := r.mu.committed[p]; ok && off < prev {
					r.mu.report.Violations = append(r.mu.report.Violations,
						fmt.Sprintf("the group's committed offset of %s/%d went back from %d to %d", r.cfg.Topic, p, prev, off))
				}
				r.mu.committed[p] = off
				r.mu.report.OffsetSamples++
			}
		}
		return false
	})
}

// restarted marks broker id as a new incarnation for the high watermark
// check. It is called with the broker down, before it restarts.
func (r *run) restarted(id int32) {
	r.mu.Lock()
	r.mu.incarnation[id]++
	r.mu.Unlock()
}

// brokers are the broker ids, 1..n.
func (r *run) brokers() []int32 {
	ids := make([]int32, len(r.c.Addrs()))
	for i := range ids {
		ids[i] = int32(i + 1)
	}
	return ids
}

// step injects one fault, lets the workload run for FaultDuration, undoes
// it and waits for the topic to be fully replicated again.
func (r *run) step(ctx context.Context, step int) error {
	f := r.cfg.Faults[r.rng.IntN(len(r.cfg.Faults))]
	brokers := r.brokers()
	b := brokers[r.rng.IntN(len(brokers))]
	var undo func() error
	switch f {
	case Kill, Stop, PowerCut:
		var err error
		r.mu.Lock() // the sampler must not see the restarted replica under its old incarnation
		switch f {
		case Kill:
			err = r.c.KillBroker(b)
		case Stop:
			err = r.c.StopBroker(b)
		case PowerCut:
			err = r.c.PowerCut(b)
			if errors.Is(err, kcluster.ErrPowerCutUnsupported) {
				f = Kill + " (power cut unsupported on this storage)"
				err = r.c.KillBroker(b)
			}
		}
		r.mu.incarnation[b]++
		r.mu.Unlock()
		if err != nil {
			return fmt.Errorf("chaos: step %d %s broker %d: %w", step, f, b, err)
		}
		r.logf("step %d: %s broker %d", step, f, b)
		undo = func() error { return r.restart(b) }
	case KillController:
		ids := r.c.ControllerIDs()
		active := r.c.Controller()
		if len(ids) < 2 || active < 0 {
			r.logf("step %d: kill-controller needs a quorum (controllers %v, active %d): killing broker %d instead", step, ids, active, b)
			r.mu.Lock()
			err := r.c.KillBroker(b)
			r.mu.incarnation[b]++
			r.mu.Unlock()
			if err != nil {
				return fmt.Errorf("chaos: step %d kill broker %d: %w", step, b, err)
			}
			undo = func() error { return r.restart(b) }
			break
		}
		if slices.Contains(brokers, active) { // combined mode: the broker goes too
			r.mu.Lock()
			r.mu.incarnation[active]++
			r.mu.Unlock()
		}
		if err := r.c.KillController(active); err != nil {
			return fmt.Errorf("chaos: step %d kill controller %d: %w", step, active, err)
		}
		r.logf("step %d: kill-controller %d", step, active)
		undo = func() error {
			r.logf("restart controller %d", active)
			return r.c.RestartController(active)
		}
	case Cut:
		other := r.other(brokers, b)
		heal := r.c.Cut(b, other)
		r.logf("step %d: cut %d-%d", step, b, other)
		undo = func() error { heal(); return nil }
	case Isolate:
		heal := r.c.Isolate(b)
		r.logf("step %d: isolate %d", step, b)
		undo = func() error { heal(); return nil }
	case Partition:
		nodes := append(slices.Clone(brokers), r.c.ControllerIDs()...)
		nodes = slices.Compact(slices.Sorted(slices.Values(nodes)))
		r.rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
		k := 1 + r.rng.IntN((len(nodes)-1)/2) // a minority of one or more
		minority, majority := slices.Clone(nodes[:k]), slices.Clone(nodes[k:])
		heal := r.c.Partition(minority, majority)
		r.logf("step %d: partition %v | %v", step, minority, majority)
		undo = func() error { heal(); return nil }
	case SlowLink, LossyLink:
		a := r.linkEnd(brokers)
		z := r.linkEnd(brokers)
		for z == a {
			z = r.linkEnd(brokers)
		}
		var heal func()
		if f == SlowLink {
			d := time.Duration(5+r.rng.IntN(46)) * time.Millisecond
			heal = r.c.SlowLink(a, z, d)
			r.logf("step %d: slow link %s-%s +%v", step, nodeName(a), nodeName(z), d)
		} else {
			p := 0.1 + 0.4*r.rng.Float64()
			heal = r.c.Drop(a, z, p)
			r.logf("step %d: lossy link %s-%s %.0f%%", step, nodeName(a), nodeName(z), 100*p)
		}
		undo = func() error { heal(); return nil }
	default:
		return fmt.Errorf("chaos: unknown fault %q", f)
	}
	select {
	case <-time.After(r.cfg.FaultDuration):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := undo(); err != nil {
		return fmt.Errorf("chaos: step %d undoing %s: %w", step, f, err)
	}
	r.logf("step %d: healed", step)
	return r.waitReplicated(ctx, fmt.Sprintf("healing step %d (%s)", step, f))
}

func (r *run) restart(id int32) error {
	r.logf("restart broker %d", id)
	return r.c.RestartBroker(id)
}

func (r *run) other(ids []int32, not int32) int32 {
	for {
		if o := ids[r.rng.IntN(len(ids))]; o != not {
			return o
		}
	}
}

// linkEnd is a random broker, or the clients one time in four.
func (r *run) linkEnd(brokers []int32) int32 {
	if r.rng.IntN(4) == 0 {
		return kcluster.Client
	}
	return brokers[r.rng.IntN(len(brokers))]
}

func nodeName(id int32) string {
	if id == kcluster.Client {
		return "clients"
	}
	return fmt.Sprint(id)
}

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

// check reads every partition from the start and checks the acknowledged
// records against it.
func (r *run) check(ctx context.Context) {
	if err := r.waitReplicated(ctx, "the drain"); err != nil {
		return
	}
	cl, err := r.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.cfg.Topic: r.allFromStart()}))
	if err != nil {
		r.violation("reading the topic back: %v", err)
		return
	}
	defer cl.Close()
	ends := map[int32]int64{}
	for p := range r.cfg.Partitions {
		st, err := r.c.PartitionState(r.cfg.Topic, p)
		if err != nil {
			r.violation("%s/%d: %v", r.cfg.Topic, p, err)
			return
		}
		for b, leo := range st.LogEndOffsets {
			if leo != st.HighWatermark {
				r.violation("%s/%d: broker %d's log ends at %d, the high watermark is %d", r.cfg.Topic, p, b, leo, st.HighWatermark)
			}
		}
		ends[p] = st.HighWatermark
	}
	logs := map[int32]map[int64]string{}
	seen := map[string]int{}
	last := map[int32]string{}
	next := map[int32]int64{} // the offset after the last one read
	rctx, cancel := context.WithTimeout(ctx, r.cfg.Recovery)
	defer cancel()
	for read := 0; ; {
		done := true
		for p, end := range ends {
			if next[p] < end {
				done = false
			}
		}
		if done {
			break
		}
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			r.violation("reading the topic back did not finish in %v (read %d records)", r.cfg.Recovery, read)
			break
		}
		fs.EachRecord(func(rec *kgo.Record) {
			read++
			if logs[rec.Partition] == nil {
				logs[rec.Partition] = map[int64]string{}
			}
			v := string(rec.Value)
			logs[rec.Partition][rec.Offset] = v
			seen[v]++
			if prev := last[rec.Partition]; prev != "" && v <= prev {
				r.violation("%s/%d: %s at offset %d after %s: out of the order produced", r.cfg.Topic, rec.Partition, v, rec.Offset, prev)
			}
			last[rec.Partition] = v
			next[rec.Partition] = rec.Offset + 1
		})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sent := r.mu.report.Sent
	for p := range logs {
		r.mu.report.InLog += len(logs[p])
	}
	var bad []string
	for v, a := range r.mu.acked {
		switch got, n := logs[a.partition][a.offset], seen[v]; {
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
	slices.Sort(bad)
	if len(bad) > 20 {
		bad = append(bad[:20], fmt.Sprintf("... and %d more", len(bad)-20))
	}
	r.mu.report.Violations = append(r.mu.report.Violations, bad...)
}

func (r *run) allFromStart() map[int32]kgo.Offset {
	m := map[int32]kgo.Offset{}
	for p := range r.cfg.Partitions {
		m[p] = kgo.NewOffset().AtStart()
	}
	return m
}
