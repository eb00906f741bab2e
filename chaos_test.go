package kcluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/internal/invariants"
	"github.com/kcluster/kcluster/wire"
)

// chaosSeeds returns the seeds a seeded chaos test runs:
//   - KCLUSTER_SEED alone, when set (a replay);
//   - KCLUSTER_CHAOS_SEEDS=n random seeds, when set (the long mode, which
//     explores; a failure prints its replay command, and its seed joins
//     the test's regression list);
//   - otherwise the test's fixed list (make test): every seed that ever
//     failed, and a fixed sample. CI passes or fails on the code, never on
//     the dice.
func chaosSeeds(t *testing.T, fixed []uint64) []uint64 {
	if s := os.Getenv("KCLUSTER_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KCLUSTER_SEED=%q: %v", s, err)
		}
		return []uint64{n}
	}
	if s := os.Getenv("KCLUSTER_CHAOS_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("KCLUSTER_CHAOS_SEEDS=%q: want a count", s)
		}
		seeds := make([]uint64, n)
		for i := range seeds {
			seeds[i] = rand.Uint64()
		}
		return seeds
	}
	return fixed
}

// runSeeds runs one subtest per seed, two at a time per core (each a
// synctest bubble of its own), and names the replay command of a failing
// one.
func runSeeds(t *testing.T, fixed []uint64, run func(t *testing.T, seed uint64)) {
	for _, seed := range chaosSeeds(t, fixed) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			t.Parallel()
			defer func() {
				if t.Failed() {
					t.Logf("replay: %s", invariants.ReplayCommand(".", t.Name()[:strings.IndexByte(t.Name(), '/')], seed))
				}
			}()
			run(t, seed)
		})
	}
}

// memTryProduce produces one record with acks=all to broker id, returning
// the partition's error or the request's (a timeout on a lossy link).
func memTryProduce(c *Cluster, id int32, topic, v string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := c.Dial(ctx, "tcp", c.Addrs()[id-1])
	if err != nil {
		return err
	}
	cl := wire.NewClient(conn, "chaos")
	defer cl.Close()
	req := produceRequest(topic, 0, -1, 3000, makeBatch(time.Now().UnixMilli(), v))
	req.SetVersion(11)
	resp, err := cl.Request(ctx, req)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode)
}

// Lossy links chosen at random (seeded) between brokers, the controller
// and clients, and power cuts of one broker at a time, under an acks=all
// producer, with Kafka's default timeouts, in a synctest bubble: whatever
// happens, once healed every replica holds the same log and every
// acknowledged record is in it. A failure prints its replay command.
func TestChaosLossyLinksAndPowerCutsKeepAckedRecords(t *testing.T) {
	runSeeds(t, lossyLinksSeeds, testChaosLossyLinksAndPowerCuts)
}

// lossyLinksSeeds is TestChaosLossyLinksAndPowerCutsKeepAckedRecords's
// fixed list: every seed that failed, with what it found, then a sample.
var lossyLinksSeeds = []uint64{
	// A follower appended the answer to a fetch it had sent to a leader
	// deposed meanwhile, after truncating against the new leader: one
	// record of the old epoch stayed below the high watermark on one ISR
	// member (fetcher.go, sent.currentLocked).
	1087929588394845653,
	// The same bug, found again by 10,000 seeds with the check taken
	// out after the replays became steadier: each replayed it 20 times
	// of 20, in both builds.
	3379114239125450389,
	1181591769205479393,
	// A restarted follower stayed out of the ISR for good: its leader
	// applied the follower's fence late, in one batch with its return,
	// while the follower's fetch was held at the log end, so neither an
	// unfencing nor a fetch woke the leader's ISR loop
	// (partition.wakeISRForCaughtUpLocked). Failed 3-4 replays of 5.
	9871854358088926092,
	// A fixed sample.
	7640050740771208385,
	5597175570858461536,
	6744562757361925207,
	3222430258815099802,
	13007583977083477501,
	9964661606799884494,
	5133295621680162413,
	16924759126501987428,
}

func testChaosLossyLinksAndPowerCuts(t *testing.T, seed uint64) {
	t.Logf("seed %d", seed) // shown with -v even if the run hangs
	wall := time.Now()
	synctest.Test(t, func(t *testing.T) {
		c, err := New(InMemoryNetwork(), Seed(seed), Brokers(3),
			BrokerConfig("min.insync.replicas", "2"),
			BrokerConfig("broker.session.timeout.ms", "9000"),
			BrokerConfig("broker.heartbeat.interval.ms", "2000"),
			BrokerConfig("replica.lag.time.max.ms", "30000"),
			BrokerConfig("replica.fetch.wait.max.ms", "500"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fail := func(format string, args ...any) {
			t.Helper()
			var ev strings.Builder
			for _, e := range c.Events() {
				if !strings.HasPrefix(e.Topic, "__") {
					ev.WriteString(e.String() + "\n")
				}
			}
			t.Fatalf("seed %d: %s\n%s\nevents:\n%s", seed, fmt.Sprintf(format, args...), c, ev.String())
		}
		memCreateTopic(t, c, "chaos", 3)
		ctx := context.Background()
		if err := c.WaitFor(ctx, FullyReplicated("chaos", 0)); err != nil {
			fail("%v", err)
		}
		rng := rand.New(rand.NewPCG(seed, 1))
		start := time.Now()
		nodes := []int32{1, 2, 3, c.Controller(), Client}
		var acked []string
		for round := range 4 {
			// Make two or three random links lossy.
			for range 2 + rng.IntN(2) {
				a, b := nodes[rng.IntN(len(nodes))], nodes[rng.IntN(len(nodes))]
				if a != b {
					c.Drop(a, b, 0.1+0.4*rng.Float64())
				}
			}
			cut := int32(0)
			for i := range 10 {
				if i == 5 && rng.IntN(2) == 0 {
					// A power cut of one broker (a minority):
					// it comes back with only what it had synced.
					cut = int32(1 + rng.IntN(3))
					if err := c.PowerCut(cut); err != nil {
						fail("%v", err)
					}
				}
				v := fmt.Sprintf("r%d-%d", round, i)
				st, _ := c.PartitionState("chaos", 0)
				if st.Leader < 0 {
					continue
				}
				if err := memTryProduce(c, st.Leader, "chaos", v); err == nil {
					acked = append(acked, v)
				}
			}
			c.Heal()
			if cut != 0 {
				if err := c.RestartBroker(cut); err != nil {
					fail("restart after power cut: %v", err)
				}
				// One failure at a time: the next power cut
				// comes once the broker is back in sync. Two
				// replicas losing power before either synced
				// lose what only they held, in Kafka as here
				// (acks are not fsyncs).
				wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
				err := c.WaitFor(wctx, FullyReplicated("chaos", 0))
				cancel()
				if err != nil {
					fail("not fully replicated after restarting broker %d: %v", cut, err)
				}
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		if err := c.WaitFor(wctx, FullyReplicated("chaos", 0)); err != nil {
			fail("not fully replicated after healing: %v", err)
		}
		st, _ := c.PartitionState("chaos", 0)
		var first []string
		for _, id := range st.Replicas {
			_, vals := checkReplicaLog(t, c, id, "chaos")
			if first == nil {
				first = vals
			} else if !slices.Equal(vals, first) {
				fail("broker %d's log %v differs from %v", id, vals, first)
			}
		}
		for _, v := range acked {
			if !slices.Contains(first, v) {
				fail("acknowledged record %s lost; log %v", v, first)
			}
		}
		t.Logf("seed %d: %d of 40 records acknowledged through lossy links and power cuts in %v of bubble time, all kept; log of %d",
			seed, len(acked), time.Since(start).Round(time.Millisecond), len(first))
	})
	t.Logf("in %v of wall time", time.Since(wall))
}
