package chaos_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kcluster/kcluster"
	"github.com/kcluster/kcluster/chaos"
	"github.com/kcluster/kcluster/internal/invariants"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seeds returns KCLUSTER_SEED alone if set (a replay), else
// KCLUSTER_CHAOS_SEEDS random ones if set (the long mode: e.g. 200), else
// the test's fixed seeds (make test: CI passes or fails on the code, not on
// the dice; a seed that ever failed joins its test's list). These runs are
// on real TCP, so a seed replays the schedule of faults, not the
// interleaving.
func seeds(t *testing.T, fixed ...uint64) []uint64 {
	if s := os.Getenv("KCLUSTER_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KCLUSTER_SEED=%q: %v", s, err)
		}
		return []uint64{seed}
	}
	if s := os.Getenv("KCLUSTER_CHAOS_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("KCLUSTER_CHAOS_SEEDS=%q: %v", s, err)
		}
		return make([]uint64, n) // 0: Run picks a random seed and reports it
	}
	return fixed
}

func runChaos(t *testing.T, c *kcluster.Cluster, cfg chaos.Config) *chaos.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rep, err := chaos.Run(ctx, c, cfg)
	if err != nil {
		t.Fatalf("chaos run could not run: %v\n%s", err, rep)
	}
	if err := rep.Err(); err != nil {
		var ev strings.Builder
		for _, e := range c.Events() {
			if !strings.HasPrefix(e.Topic, "__") {
				ev.WriteString(e.String() + "\n")
			}
		}
		test, _, _ := strings.Cut(t.Name(), "/")
		t.Fatalf("replay: %s\n%v\n%s\nevents:\n%s", invariants.ReplayCommand("./chaos", test, rep.Seed), err, c, ev.String())
	}
	if rep.Acked == 0 || rep.HighWatermarkSamples == 0 {
		t.Fatalf("the workload did nothing: %s", rep)
	}
	t.Logf("%s", rep)
	return rep
}

// Every fault kind against 3 brokers and one in-memory controller on
// loopback TCP with the default (test) timing: nothing acknowledged is
// lost, duplicated or misplaced.
func TestRunKeepsAcknowledgedRecords(t *testing.T) {
	for i, seed := range seeds(t, 4640711906270787069) {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			c := kcluster.Start(t, kcluster.Brokers(3))
			runChaos(t, c, chaos.Config{Seed: seed, Steps: 6, Logf: t.Logf})
		})
	}
}

// The same against a Raft quorum of three controllers, with controller
// kills among the faults.
func TestRunQuorum(t *testing.T) {
	for i, seed := range seeds(t, 9106317519406744213) {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			c := kcluster.Start(t, kcluster.Brokers(3), kcluster.Controllers(3))
			runChaos(t, c, chaos.Config{Seed: seed, Steps: 5, Logf: t.Logf,
				Faults: []chaos.Fault{chaos.KillController, chaos.Kill, chaos.Partition, chaos.PowerCut}})
		})
	}
}

// Transactions under broker and coordinator kills, power cuts and cuts:
// read_committed never shows an aborted transaction and shows every
// committed one exactly once.
func TestRunTransactions(t *testing.T) {
	for i, seed := range seeds(t, 2276081547739046457) {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			c := kcluster.Start(t, kcluster.Brokers(3))
			rep := runChaos(t, c, chaos.Config{Seed: seed, Steps: 5, Transactions: true, Logf: t.Logf,
				Faults: []chaos.Fault{chaos.Kill, chaos.PowerCut, chaos.Cut, chaos.Isolate, chaos.Stop}})
			if rep.Committed == 0 || rep.Aborted == 0 {
				t.Fatalf("the transactional workload committed %d and aborted %d transactions: %s", rep.Committed, rep.Aborted, rep)
			}
		})
	}
}

// Share consumers (KIP-932) beside the group, under broker kills (the
// share-partitions' leaders and the share coordinators among them), power
// cuts, stops and cuts: every acknowledged record is accepted exactly
// once, and none is delivered concurrently.
func TestRunShareGroups(t *testing.T) {
	for i, seed := range seeds(t, 16054023437037000253) {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			c := kcluster.Start(t, kcluster.Brokers(3))
			rep := runChaos(t, c, chaos.Config{Seed: seed, Steps: 5, Share: true, Logf: t.Logf,
				Faults: []chaos.Fault{chaos.Kill, chaos.PowerCut, chaos.Stop, chaos.Cut, chaos.Isolate}})
			if rep.ShareDelivered == 0 {
				t.Fatalf("the share consumers got nothing: %s", rep)
			}
		})
	}
}

// A harness that checks nothing would pass any cluster: this one must
// notice a lost acknowledged write. Cutting the power of every replica at
// once loses what none of them had synced (as in Kafka); the check must
// report it.
func TestRunDetectsLoss(t *testing.T) {
	c := kcluster.Start(t, kcluster.Brokers(3))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := chaos.Run(ctx, c, chaos.Config{Steps: 1, Faults: []chaos.Fault{chaos.SlowLink}, Partitions: 1,
		FaultDuration: 200 * time.Millisecond, Logf: t.Logf, BeforeCheck: func() error {
			if err := c.PowerCut(1, 2, 3); err != nil {
				return err
			}
			for id := int32(1); id <= 3; id++ {
				if err := c.RestartBroker(id); err != nil {
					return err
				}
			}
			return nil
		}})
	if err != nil {
		t.Fatalf("chaos run could not run: %v", err)
	}
	if rep.Acked == 0 || rep.Err() == nil {
		t.Fatalf("every replica lost its unsynced records, yet the check found nothing: %s", rep)
	}
	t.Logf("found, as it should: %s", rep)
}

// Failing log dirs (KIP-858) beside kills and power cuts, on brokers with
// two log dirs each: a broker takes a failed dir offline and serves the
// other; the repaired dir's replicas catch up; nothing acknowledged is
// lost.
func TestRunFailLogDir(t *testing.T) {
	for i, seed := range seeds(t, 8128506679814417771) {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			c := kcluster.Start(t, kcluster.Brokers(3), kcluster.LogDirs(2))
			runChaos(t, c, chaos.Config{Seed: seed, Steps: 5, Logf: t.Logf, Partitions: 4,
				Faults: []chaos.Fault{chaos.FailLogDir, chaos.FailLogDir, chaos.Kill, chaos.PowerCut}})
		})
	}
}
