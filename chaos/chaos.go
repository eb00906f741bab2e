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
// acknowledged record. With Config.Transactions, read_committed returns
// every committed transaction exactly once, no record of an aborted one,
// and all or none of one whose commit was not answered. With Config.Share,
// share consumers get every acknowledged record, accept each exactly once,
// and none is delivered twice at one delivery count within one leader
// epoch (share.go). Last, every replica
// serves the same log: each is made leader in turn, with Kafka's admin
// requests (a reassignment that reorders the replicas, a preferred
// election), and the whole partition is read through it.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
	// FailLogDir fails one random log dir of a random broker
	// (kcluster.FailLogDir): with several dirs (kcluster.LogDirs) the
	// broker takes a dir other than the first offline and serves the
	// others, the controller moves the leadership of its replicas there
	// away; with one dir, or the first (the metadata's), the broker
	// halts at its next write to it. Repaired afterwards (the dir comes
	// back online, or the halted broker restarts).
	FailLogDir Fault = "fail-log-dir"
)

// AllFaults is every Fault but FailLogDir (which came later: the seeded
// schedules of AllFaults stay as they were); Config.Faults defaults to
// it.
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
	// Calm is the time without a fault after each one is healed and the
	// topics are fully replicated again (default FaultDuration), so the
	// workload makes progress between faults.
	Calm time.Duration
	// Recovery bounds the wait, after each fault is undone, for every
	// partition to be fully replicated again, and the final drain
	// (default 60 s). Not recovering in time is a violation.
	Recovery time.Duration
	// Logf, if set, gets the timeline as it happens.
	Logf func(format string, args ...any)
	// Transactions adds a transactional producer (franz-go) writing
	// transactions of 1-10 records to Topic+"-txn" (same partitions,
	// replication factor 3), aborting about one in three; the check
	// reads that topic with read_committed.
	Transactions bool
	// BeforeCheck, if set, is called after the workload has drained and
	// before the final check: e.g. to restart every broker and check
	// what survives it. An error stops Run.
	BeforeCheck func() error
	// Share adds three share consumers (KIP-932) of the share group
	// Topic+"-share" reading Topic, accepting everything; the check
	// wants every acknowledged record delivered to them and accepted,
	// and no record delivered twice at one delivery count within one
	// leader epoch (share.go).
	Share bool
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
	if cfg.Calm <= 0 {
		cfg.Calm = cfg.FaultDuration
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
	// Transactions were begun by the transactional producer (with
	// Config.Transactions); Committed had their commit acknowledged,
	// Aborted were aborted; the rest ended with an unknown outcome.
	Transactions, Committed, Aborted int
	// ShareDelivered are the deliveries to the share consumers (with
	// Config.Share); ShareRedelivered the records delivered more than
	// once (in flight at a fault).
	ShareDelivered, ShareRedelivered int
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
	fmt.Fprintf(&b, "chaos seed %d: %d sent, %d acknowledged, %d in the log, %d consumed; ", r.Seed, r.Sent, r.Acked, r.InLog, r.Consumed)
	if r.Transactions > 0 {
		fmt.Fprintf(&b, "%d transactions (%d committed, %d aborted, %d unknown); ", r.Transactions, r.Committed, r.Aborted, r.Transactions-r.Committed-r.Aborted)
	}
	if r.ShareDelivered > 0 {
		fmt.Fprintf(&b, "%d share deliveries (%d records more than once); ", r.ShareDelivered, r.ShareRedelivered)
	}
	fmt.Fprintf(&b, "%d high watermark and %d committed offset samples; %d violations\n", r.HighWatermarkSamples, r.OffsetSamples, len(r.Violations))
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
		txns        []txn
	}
	share shareState // Config.Share (share.go)
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
	var shares []*kgo.Client
	if cfg.Share {
		if shares, err = r.startShare(wctx, &wg); err != nil {
			stopWorkload()
			cons.Close()
			return report(), err
		}
		defer func() {
			for _, cl := range shares {
				cl.Close()
			}
		}()
	}
	wg.Add(3)
	go func() { defer wg.Done(); r.produce(wctx, prod) }()
	go func() { defer wg.Done(); r.consume(wctx, cons) }()
	go func() { defer wg.Done(); r.sample(wctx) }()
	if cfg.Transactions {
		// The faults start once the transactional producer has ended
		// its first transaction, as an application runs before an
		// outage: its setup (the coordinator's partition, a producer
		// id) is not what the schedule tests.
		first := make(chan struct{})
		wg.Add(1)
		go func() { defer wg.Done(); r.produceTxns(wctx, first) }()
		select {
		case <-first:
		case <-time.After(cfg.Recovery):
			r.violation("the transactional producer ended no transaction within %v, before any fault", cfg.Recovery)
		case <-ctx.Done():
		}
	}

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
	if cfg.Share {
		r.drainShare(ctx, shares)
	}
	if cfg.BeforeCheck != nil {
		r.logf("before the check")
		if err := cfg.BeforeCheck(); err != nil {
			return report(), fmt.Errorf("chaos: BeforeCheck: %w", err)
		}
	}
	r.check(ctx)
	if cfg.Transactions {
		r.checkTxns(ctx)
	}
	if cfg.Share {
		r.checkShare()
	}
	r.checkReplicasAgree(ctx)
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
	minISR := "2"
	for _, topic := range r.topics() {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, r.cfg.Partitions, 3
		rt.Configs = []kmsg.CreateTopicsRequestTopicConfig{{Name: "min.insync.replicas", Value: &minISR}}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.Topics) != len(req.Topics) {
		err = fmt.Errorf("%d topics in the CreateTopics response", len(resp.Topics))
	}
	for i := 0; err == nil && i < len(resp.Topics); i++ {
		err = kerr.ErrorForCode(resp.Topics[i].ErrorCode)
	}
	if err != nil {
		return fmt.Errorf("chaos: creating topics %v (%d partitions, RF 3): %w", r.topics(), r.cfg.Partitions, err)
	}
	return r.waitReplicated(ctx, "the topics to be created")
}

// topics are the topics the workload writes to.
func (r *run) topics() []string {
	if r.cfg.Transactions {
		return []string{r.cfg.Topic, r.txnTopic()}
	}
	return []string{r.cfg.Topic}
}

// waitReplicated waits, up to cfg.Recovery, for every partition of the
// topics to be fully replicated; not getting there is a violation.
func (r *run) waitReplicated(ctx context.Context, what string) error {
	wctx, cancel := context.WithTimeout(ctx, r.cfg.Recovery)
	defer cancel()
	err := r.c.WaitFor(wctx, func(c *kcluster.Cluster) bool {
		for _, topic := range r.topics() {
			for p := range r.cfg.Partitions {
				if !kcluster.FullyReplicated(topic, p)(c) {
					return false
				}
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
		if r.cfg.Share {
			r.sampleShareEpochs(c)
		}
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

// brokers are the broker ids, 1..n.
func (r *run) brokers() []int32 {
	ids := make([]int32, len(r.c.Addrs()))
	for i := range ids {
		ids[i] = int32(i + 1)
	}
	return ids
}
