// Command compare runs kcluster and franz-go's kfake side by side, in the
// same run, with the same client (franz-go kgo), and prints a table of
// medians with ratios:
//
//	cd bench && go run ./compare -runs 5
//
// What it measures, per system: the time from the constructor (3 brokers)
// to the first record acknowledged with acks=all; produce throughput of 1
// KiB incompressible records without compression (RF=1 acks=1 and RF=3
// acks=all, in memory and on disk); consume throughput; peak RSS of a
// cluster after 200 MB were produced to it (the cluster runs in a child
// process, the client here, so neither the other system nor the client's
// buffers count); the time to create a topic of 10,000
// partitions; and, for kcluster only, the time from killing a partition
// leader to the first record acknowledged by the new one.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// system starts a 3-broker cluster of one implementation.
type system struct {
	name  string
	start func(disk string) (addrs []string, stop func(), err error)
}

// quorumSystem is kcluster with a Raft quorum of 3 controllers, for the
// idle rows only.
var quorumSystem = system{"kcluster-quorum", func(string) ([]string, func(), error) {
	c, err := kcluster.New(kcluster.Brokers(3), kcluster.Controllers(3), kcluster.Logger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, nil, err
	}
	return c.Addrs(), c.Close, nil
}}

var systems = []system{
	{"kcluster", func(disk string) ([]string, func(), error) {
		opts := []kcluster.Option{kcluster.Brokers(3), kcluster.Logger(slog.New(slog.DiscardHandler))}
		if disk != "" {
			opts = append(opts, kcluster.Dir(disk))
		}
		c, err := kcluster.New(opts...)
		if err != nil {
			return nil, nil, err
		}
		return c.Addrs(), c.Close, nil
	}},
	{"kfake", func(disk string) ([]string, func(), error) {
		opts := []kfake.Opt{kfake.NumBrokers(3)}
		if disk != "" {
			opts = append(opts, kfake.DataDir(disk))
		}
		c, err := kfake.NewCluster(opts...)
		if err != nil {
			return nil, nil, err
		}
		return c.ListenAddrs(), c.Close, nil
	}},
}

func main() {
	runs := flag.Int("runs", 5, "runs per measurement (medians are reported)")
	records := flag.Int("records", 100000, "1 KiB records per throughput run (100 MB: long enough that a run is not one scheduling hiccup)")
	child := flag.String("child", "", "internal: run one system's cluster for the RSS measurement")
	idle := flag.String("idle", "", "internal: run one system's cluster for the idle measurement")
	only := flag.String("only", "", "comma-separated measurements to run (default all): typical,suite,cpu,idle,start,produce (producedisk: its on-disk rows only),manypartitions,consume,rss,partitions,failover")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (both systems; narrow it with -only) to this file")
	only1 := flag.String("system", "", "run one system only (kcluster or kfake), to profile it alone")
	flag.BoolVar(&runCPU, "runcpu", false, "print each produce run's wall, user and system time to stderr (the whole process's CPU: use with -system)")
	flag.Parse()
	if *only1 != "" {
		systems = slices.DeleteFunc(systems, func(s system) bool { return s.name != *only1 })
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	if *idle != "" {
		if err := idleChild(*idle); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	if *child != "" {
		if err := rssChild(*child); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	want := func(m string) bool { return *only == "" || slices.Contains(strings.Split(*only, ","), m) }
	t := &table{}
	if want("typical") {
		t.typicalRows(*runs)
	}
	if want("suite") {
		for _, par := range []int{8, 1} {
			t.sideBySide(fmt.Sprintf("suite of 40 typical tests, %d at a time", par), "ms", max(*runs/2, 1), func(s system) (float64, error) { return suite(s, 40, par) })
		}
	}
	if want("cpu") {
		t.sideBySide("CPU per typical test, clients included (process user+system time over 20 one at a time)", "ms", *runs, func(s system) (float64, error) { return cpuPerTest(s, 20) })
	}
	if want("idle") {
		t.idleRows(*runs)
	}
	if want("start") {
		t.sideBySide("start to first acks=all ack (3 brokers)", "ms", *runs, startToFirstAck)
	}
	if want("produce") || want("producedisk") {
		for _, disk := range []bool{false, true} {
			if !disk && !want("produce") {
				continue
			}
			where := "memory"
			if disk {
				where = "disk"
			}
			for _, rf := range []int16{1, 3} {
				name := fmt.Sprintf("produce MB/s, RF=%d acks=%s, %s", rf, acksName(rf), where)
				t.sideBySide(name, "MB/s", *runs, func(s system) (float64, error) { return produceMBs(s, rf, disk, 6, *records) })
			}
		}
	}
	if want("manypartitions") {
		// One waiter's wake-up per partition, not per broker: an
		// acks=all produce spread over many partitions.
		t.sideBySide("produce MB/s, RF=3 acks=all, memory, 300 partitions", "MB/s", *runs, func(s system) (float64, error) { return produceMBs(s, 3, false, 300, *records) })
	}
	if want("consume") {
		t.sideBySide("consume MB/s (RF=1, from the start)", "MB/s", *runs, func(s system) (float64, error) { return consumeMBs(s, *records) })
	}
	if want("rss") {
		for _, rf := range []int16{1, 3} {
			name := fmt.Sprintf("peak RSS after producing 200 MB, RF=%d", rf)
			t.sideBySide(name, "MiB", *runs, func(s system) (float64, error) { return rssOf(s.name, rf) })
		}
	}
	if want("partitions") {
		t.sideBySide("create a 10,000-partition topic (RF=3), ms", "ms", *runs, create10k)
	}
	if want("failover") {
		t.add("kill leader to first acks=all ack on the new one", "kcluster", "ms", medianOf(*runs, failover))
	}
	t.print()
}

func acksName(rf int16) string {
	if rf == 1 {
		return "1"
	}
	return "all"
}

type sample struct {
	median, lo, hi float64
	err            error
}

// sideBySide measures f for every system: one warm-up run each, whose
// result is dropped (the first run in a process pays for memory the machine
// hands it for the first time, and on a virtual machine that can cost more
// than the work measured), then n rounds in which the systems take turns,
// so a slow spell of the machine falls on both.
func (t *table) sideBySide(what, unit string, n int, f func(system) (float64, error)) {
	vs := make([][]float64, len(systems))
	errs := make([]error, len(systems))
	for round := -1; round < n; round++ {
		for i, s := range systems {
			if errs[i] != nil {
				continue
			}
			v, err := f(s)
			if err != nil {
				errs[i] = err
				continue
			}
			if round >= 0 {
				vs[i] = append(vs[i], v)
			}
		}
	}
	for i, s := range systems {
		if errs[i] != nil {
			t.add(what, s.name, unit, sample{err: errs[i]})
			continue
		}
		t.add(what, s.name, unit, summarize(vs[i]))
	}
}

func summarize(vs []float64) sample {
	slices.Sort(vs)
	return sample{median: vs[len(vs)/2], lo: vs[0], hi: vs[len(vs)-1]}
}

func medianOf(n int, f func() (float64, error)) sample {
	var vs []float64
	for range n {
		v, err := f()
		if err != nil {
			return sample{err: err}
		}
		vs = append(vs, v)
	}
	return summarize(vs)
}

type row struct {
	what, unit string
	by         map[string]sample
}

type table struct{ rows []*row }

func (t *table) add(what, sys, unit string, s sample) {
	for _, r := range t.rows {
		if r.what == what {
			r.by[sys] = s
			return
		}
	}
	t.rows = append(t.rows, &row{what: what, unit: unit, by: map[string]sample{sys: s}})
	fmt.Fprintf(os.Stderr, "measured %s: %s\n", what, sys)
}

func (t *table) print() {
	fmt.Println("| what | kcluster | kfake | kcluster / kfake |")
	fmt.Println("|---|---|---|---|")
	cell := func(s sample, ok bool) string {
		switch {
		case !ok:
			return "-"
		case s.err != nil:
			return "error: " + s.err.Error()
		}
		if s.hi < 1 {
			return fmt.Sprintf("%.3f (%.3f-%.3f)", s.median, s.lo, s.hi)
		}
		return fmt.Sprintf("%.1f (%.1f-%.1f)", s.median, s.lo, s.hi)
	}
	for _, r := range t.rows {
		k, kok := r.by["kcluster"]
		f, fok := r.by["kfake"]
		ratio := "-"
		if kok && fok && k.err == nil && f.err == nil && f.median > 0 {
			ratio = fmt.Sprintf("%.2f", k.median/f.median)
		}
		fmt.Printf("| %s (%s) | %s | %s | %s |\n", r.what, r.unit, cell(k, kok), cell(f, fok), ratio)
	}
}

func startToFirstAck(s system) (float64, error) {
	ctx := context.Background()
	start := time.Now()
	addrs, stop, err := s.start("")
	if err != nil {
		return 0, err
	}
	defer stop()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	if err := createTopic(ctx, cl, "t", 1, 3); err != nil {
		return 0, err
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr(); err != nil {
		return 0, err
	}
	return ms(time.Since(start)), nil
}

func createTopic(ctx context.Context, cl *kgo.Client, name string, parts int32, rf int16) error {
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, parts, rf, nil, name)
	if err == nil {
		err = resp.Err
	}
	return err
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// value is the incompressible 1 KiB record value every run produces.
var value = func() []byte {
	v := make([]byte, 1024)
	rand.NewChaCha8([32]byte{1}).Read(v)
	return v
}()

func producer(addrs []string, acks kgo.Acks) (*kgo.Client, error) {
	return kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DisableIdempotentWrite(), kgo.RequiredAcks(acks),
		kgo.ProducerLinger(0), kgo.MaxBufferedRecords(100000), kgo.ProducerBatchCompression(kgo.NoCompression()))
}

// produceAll produces n records to topic and waits for every ack.
func produceAll(ctx context.Context, cl *kgo.Client, topic string, n int) error {
	errs := make(chan error, 1)
	for range n {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errs <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func produceMBs(s system, rf int16, disk bool, parts int32, n int) (float64, error) {
	ctx := context.Background()
	var dir string
	if disk {
		d, err := os.MkdirTemp("", "compare-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	addrs, stop, err := s.start(dir)
	if err != nil {
		return 0, err
	}
	defer stop()
	acks := kgo.LeaderAck()
	if rf > 1 {
		acks = kgo.AllISRAcks()
	}
	cl, err := producer(addrs, acks)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	if err := createTopic(ctx, cl, "p", parts, rf); err != nil {
		return 0, err
	}
	start := time.Now()
	u0, s0 := cpuTime()
	if err := produceAll(ctx, cl, "p", n); err != nil {
		return 0, err
	}
	wall := time.Since(start)
	if runCPU {
		u1, s1 := cpuTime()
		fmt.Fprintf(os.Stderr, "%s produce RF=%d disk=%v: wall %v, user %v, system %v\n", s.name, rf, disk,
			wall.Round(time.Millisecond), (u1 - u0).Round(time.Millisecond), (s1 - s0).Round(time.Millisecond))
	}
	return float64(n) * 1024 / 1e6 / wall.Seconds(), nil
}

// runCPU is the -runcpu flag.
var runCPU bool

func consumeMBs(s system, n int) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	addrs, stop, err := s.start("")
	if err != nil {
		return 0, err
	}
	defer stop()
	pcl, err := producer(addrs, kgo.LeaderAck())
	if err != nil {
		return 0, err
	}
	defer pcl.Close()
	if err := createTopic(ctx, pcl, "c", 6, 1); err != nil {
		return 0, err
	}
	if err := produceAll(ctx, pcl, "c", n); err != nil {
		return 0, err
	}
	ccl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics("c"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer ccl.Close()
	start := time.Now()
	got := 0
	for got < n {
		fs := ccl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("consumed %d of %d: %w", got, n, err)
		}
		fs.EachError(func(_ string, _ int32, e error) { err = e })
		if err != nil {
			return 0, err
		}
		got += fs.NumRecords()
	}
	return float64(n) * 1024 / 1e6 / time.Since(start).Seconds(), nil
}

// rssOf starts one system's cluster in a child process, produces 200 MB
// to it from this process, and returns the child's peak RSS in MiB: the
// cluster's memory alone, not the client's buffers.
func rssOf(name string, rf int16) (float64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(exe, "-child", name)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer cmd.Wait()
	defer stdin.Close()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		return 0, fmt.Errorf("child %s printed no addresses: %s", name, stderr.String())
	}
	addrs := strings.Split(lines.Text(), ",")
	ctx := context.Background()
	acks := kgo.LeaderAck()
	if rf > 1 {
		acks = kgo.AllISRAcks()
	}
	cl, err := producer(addrs, acks)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	if err := createTopic(ctx, cl, "r", 6, rf); err != nil {
		return 0, err
	}
	if err := produceAll(ctx, cl, "r", 200*1000*1000/1024); err != nil {
		return 0, err
	}
	if _, err := fmt.Fprintln(stdin, "report"); err != nil {
		return 0, err
	}
	if !lines.Scan() {
		return 0, fmt.Errorf("child %s reported nothing: %s", name, stderr.String())
	}
	return strconv.ParseFloat(strings.TrimSpace(lines.Text()), 64)
}

// systemNamed returns the system called name.
func systemNamed(name string) (system, error) {
	for _, s := range systems {
		if s.name == name {
			return s, nil
		}
	}
	if name == quorumSystem.name {
		return quorumSystem, nil
	}
	return system{}, fmt.Errorf("unknown system %q", name)
}

// rssChild runs one system's cluster, prints its addresses, and on a line
// from stdin prints its peak RSS in MiB.
func rssChild(name string) error {
	s, err := systemNamed(name)
	if err != nil {
		return err
	}
	addrs, stop, err := s.start("")
	if err != nil {
		return err
	}
	defer stop()
	fmt.Println(strings.Join(addrs, ","))
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() {
		return nil
	}
	kib, err := procStatus("VmHWM")
	if err != nil {
		return err
	}
	fmt.Printf("%.1f\n", float64(kib)/1024)
	return nil
}

// procStatus reads a kB field of /proc/self/status.
func procStatus(field string) (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

func create10k(s system) (float64, error) {
	ctx := context.Background()
	addrs, stop, err := s.start("")
	if err != nil {
		return 0, err
	}
	defer stop()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	start := time.Now()
	if err := createTopic(ctx, cl, "wide", 10000, 3); err != nil {
		return 0, err
	}
	return ms(time.Since(start)), nil
}

func failover() (float64, error) {
	ctx := context.Background()
	c, err := kcluster.New(kcluster.Brokers(3), kcluster.BrokerConfig("min.insync.replicas", "2"), kcluster.Logger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DisableIdempotentWrite(), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond }),
		kgo.MetadataMinAge(10*time.Millisecond))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	if err := createTopic(ctx, cl, "f", 1, 3); err != nil {
		return 0, err
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "f", Value: []byte("before")}).FirstErr(); err != nil {
		return 0, err
	}
	st, err := c.PartitionState("f", 0)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := c.KillBroker(st.Leader); err != nil {
		return 0, err
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "f", Value: []byte("after")}).FirstErr(); err != nil {
		return 0, err
	}
	return ms(time.Since(start)), nil
}
