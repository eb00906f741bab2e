// Command kcluster runs a kcluster cluster as a process, for clients in any
// language: it prints the bootstrap addresses and serves until interrupted.
//
//	go run ./cmd/kcluster -brokers 3 -ports 9092,9093,9094 -c min.insync.replicas=2
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/kcluster/kcluster"
)

type kvFlag []string

func (f *kvFlag) String() string     { return strings.Join(*f, ",") }
func (f *kvFlag) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kcluster:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("kcluster", flag.ContinueOnError)
	brokers := fs.Int("brokers", 3, "number of brokers (ids 1..n)")
	controllers := fs.Int("controllers", 0, "run the metadata log on a Raft quorum of n controllers (ids 1000..); 0: one in-memory controller")
	ports := fs.String("ports", "", "comma-separated port per broker (default: free ports)")
	host := fs.String("host", "127.0.0.1", "host to listen on")
	adv := fs.String("advertised-host", "", "host advertised to clients (default: -host)")
	dir := fs.String("dir", "", "store data on disk under this directory (default: in memory)")
	clusterID := fs.String("cluster-id", "", "cluster id (default: random)")
	verbose := fs.Bool("v", false, "log at debug level")
	var cfgs kvFlag
	fs.Var(&cfgs, "c", "broker config key=value with Kafka's names (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	opts := []kcluster.Option{
		kcluster.Brokers(*brokers),
		kcluster.Controllers(*controllers),
		kcluster.ListenHost(*host),
		kcluster.Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))),
	}
	if *ports != "" {
		var ps []int
		for _, p := range strings.Split(*ports, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil {
				return fmt.Errorf("-ports: %v", err)
			}
			ps = append(ps, n)
		}
		opts = append(opts, kcluster.Ports(ps...))
	}
	if *adv != "" {
		opts = append(opts, kcluster.AdvertisedHost(*adv))
	}
	if *dir != "" {
		opts = append(opts, kcluster.Dir(*dir))
	}
	if *clusterID != "" {
		opts = append(opts, kcluster.ClusterID(*clusterID))
	}
	for _, kv := range cfgs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("-c %q: want key=value", kv)
		}
		opts = append(opts, kcluster.BrokerConfig(k, v))
	}
	// Catch signals before printing the addresses: a supervisor may
	// stop us as soon as it has read them.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	c, err := kcluster.New(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println(strings.Join(c.Addrs(), ","))
	<-sig
	return nil
}
