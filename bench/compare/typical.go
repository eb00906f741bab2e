package main

// The fixture rows: what a typical test pays, a suite of them, and what an
// idle cluster costs.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// typicalPhases names the phases of a typical test, in order.
var typicalPhases = []string{"cluster constructed", "topic created", "100 records acked", "group consumer's first record", "commit, close"}

// typicalTest is one typical test: start a cluster, create a 3-partition
// RF=3 topic, produce 100 records with acks=all, read them back in a
// consumer group, commit, close. It returns the time since the start at
// the end of each phase, in ms.
func typicalTest(s system) ([]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	var at []float64
	mark := func() { at = append(at, ms(time.Since(start))) }
	addrs, stop, err := s.start("")
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	mark()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("typical"))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	if err := createTopic(ctx, cl, "typical", 3, 3); err != nil {
		return nil, err
	}
	mark()
	var wg sync.WaitGroup
	var perr error
	var mu sync.Mutex
	for i := range 100 {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte("v")}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if perr != nil {
		return nil, perr
	}
	mark()
	cons, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumerGroup("typical-group"), kgo.ConsumeTopics("typical"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	for n := 0; n < 100; {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("consumed %d of 100: %w", n, err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return nil, errs[0].Err
		}
		if n == 0 && fs.NumRecords() > 0 {
			mark()
		}
		n += fs.NumRecords()
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		return nil, err
	}
	cons.Close()
	cl.Close()
	stop()
	stopped = true
	mark()
	return at, nil
}

// typicalRows adds a row per phase of the typical test, both systems
// taking turns (a dropped warm-up run each, then n rounds).
func (t *table) typicalRows(n int) {
	per := map[string][][]float64{}
	for round := -1; round < n; round++ {
		for _, s := range systems {
			at, err := typicalTest(s)
			if err != nil {
				for _, p := range typicalPhases {
					t.add("typical test: "+p, s.name, "ms since start", sample{err: err})
				}
				return
			}
			if round >= 0 {
				per[s.name] = append(per[s.name], at)
			}
		}
	}
	for i, p := range typicalPhases {
		for _, s := range systems {
			var vs []float64
			for _, at := range per[s.name] {
				vs = append(vs, at[i])
			}
			t.add("typical test: "+p, s.name, "ms since start", summarize(vs))
		}
	}
}

// suite runs total typical tests, parallel at a time, and returns the wall
// time in ms.
func suite(s system, total, parallel int) (float64, error) {
	start := time.Now()
	sem := make(chan struct{}, parallel)
	errs := make(chan error, total)
	var wg sync.WaitGroup
	for range total {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := typicalTest(s); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return ms(time.Since(start)), nil
}

// cpuPerTest runs n typical tests one after another and returns the
// process's CPU time (user and system: the clients', the cluster's and
// the garbage collector's) per test, in ms.
func cpuPerTest(s system, n int) (float64, error) {
	u0, s0 := cpuTime()
	for range n {
		if _, err := typicalTest(s); err != nil {
			return 0, err
		}
	}
	u1, s1 := cpuTime()
	return ms((u1-u0)+(s1-s0)) / float64(n), nil
}

// idleOf starts one system's cluster in a child process that creates an
// RF=3 topic, produces to it, lets it settle and then measures its own
// CPU time over a few idle seconds; it returns the CPU used as % of one
// core and the RSS at the end, in MiB.
func idleOf(name string) (cpu, rss float64, err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, 0, err
	}
	var stderr strings.Builder
	cmd := exec.Command(exe, "-idle", name)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("idle child %s: %v: %s", name, err, stderr.String())
	}
	if _, err := fmt.Sscanf(string(out), "%f %f", &cpu, &rss); err != nil {
		return 0, 0, fmt.Errorf("idle child %s printed %q: %v", name, out, err)
	}
	return cpu, rss, nil
}

// idleChild is the child of idleOf.
func idleChild(name string) error {
	s, err := systemNamed(name)
	if err != nil {
		return err
	}
	addrs, stop, err := s.start("")
	if err != nil {
		return err
	}
	defer stop()
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DefaultProduceTopic("idle"))
	if err != nil {
		return err
	}
	if err := createTopic(ctx, cl, "idle", 3, 3); err != nil {
		return err
	}
	for range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			return err
		}
	}
	cl.Close()
	time.Sleep(time.Second) // settle
	cpu := func() (time.Duration, error) {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0, err
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
	}
	const idle = 5 * time.Second
	c0, err := cpu()
	if err != nil {
		return err
	}
	time.Sleep(idle)
	c1, err := cpu()
	if err != nil {
		return err
	}
	kib, err := procStatus("VmRSS")
	if err != nil {
		return err
	}
	fmt.Printf("%.3f %.1f\n", 100*float64(c1-c0)/float64(idle), float64(kib)/1024)
	return nil
}

// idleRows adds the idle CPU and RSS rows, n runs per system in turns.
func (t *table) idleRows(n int) {
	cpus, rsss := map[string][]float64{}, map[string][]float64{}
	for range n {
		for _, s := range systems {
			c, r, err := idleOf(s.name)
			if err != nil {
				t.add("idle CPU, % of a core", s.name, "%", sample{err: err})
				t.add("idle RSS", s.name, "MiB", sample{err: err})
				return
			}
			cpus[s.name] = append(cpus[s.name], c)
			rsss[s.name] = append(rsss[s.name], r)
		}
	}
	for _, s := range systems {
		t.add("idle CPU of a 3-broker cluster with an RF=3 topic (5 s), % of a core", s.name, "%", summarize(cpus[s.name]))
	}
	for _, s := range systems {
		t.add("idle RSS of that cluster", s.name, "MiB", summarize(rsss[s.name]))
	}
	// Quorum mode: Raft ticks every tenth of an election timeout, and
	// heartbeats are answered at once.
	var qs []float64
	for range n {
		c, _, err := idleOf(quorumSystem.name)
		if err != nil {
			t.add("idle CPU, the same with 3 Raft controllers, % of a core", "kcluster", "%", sample{err: err})
			return
		}
		qs = append(qs, c)
	}
	t.add("idle CPU, the same with 3 Raft controllers, % of a core", "kcluster", "%", summarize(qs))
}
