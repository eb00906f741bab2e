// Command kcluster runs a kcluster cluster as a process, for clients in any
// language: it prints the bootstrap addresses and serves until interrupted.
// With -http it also serves the control API (package control: levers,
// gauges, events, Kafka's metrics at /metrics) and prints its URL as
// "http: http://HOST:PORT" after the bootstrap line.
//
//	go run ./cmd/kcluster -brokers 3 -ports 9092,9093,9094 -c min.insync.replicas=2 -feature group.version=0
//	go run ./cmd/kcluster -http 127.0.0.1:0
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kcluster/kcluster"
	"github.com/kcluster/kcluster/control"
	"github.com/kcluster/kcluster/tlstest"
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
	logDirs := fs.Int("log-dirs", 1, "log dirs per broker (Kafka's log.dirs, KRaft JBOD): broker N's data in broker-N, or with n > 1 in broker-N/dir-0 .. dir-(n-1) (under -dir)")
	clusterID := fs.String("cluster-id", "", "cluster id (default: random)")
	verbose := fs.Bool("v", false, "log at debug level")
	var cfgs, users, features kvFlag
	fs.Var(&cfgs, "c", "broker config key=value with Kafka's names (repeatable)")
	fs.Var(&features, "feature", "finalized feature level name=level for a new cluster, as kafka-storage format --feature (repeatable), e.g. transaction.version=0 group.version=0 for a 3.x-like cluster")
	fs.Var(&users, "sasl-user", "MECHANISM:user:password (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) served on a SASL_PLAINTEXT listener named SASL (repeatable)")
	httpAddr := fs.String("http", "", "serve the control API and /metrics on this address, e.g. 127.0.0.1:0 (a port alone listens on loopback; default: off)")
	tlsDir := fs.String("tls-dir", "", "add an SSL listener named SSL with a throwaway CA, writing its certificate to DIR/ca.pem")
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
	if *logDirs != 1 {
		opts = append(opts, kcluster.LogDirs(*logDirs))
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
	for _, kv := range features {
		name, v, ok := strings.Cut(kv, "=")
		level, err := strconv.ParseInt(strings.TrimSpace(v), 10, 16)
		if !ok || err != nil {
			return fmt.Errorf("-feature %q: want name=level", kv)
		}
		opts = append(opts, kcluster.Feature(strings.TrimSpace(name), int16(level)))
	}
	for _, u := range users {
		parts := strings.SplitN(u, ":", 3)
		if len(parts) != 3 {
			return fmt.Errorf("-sasl-user %q: want MECHANISM:user:password", u)
		}
		opts = append(opts, kcluster.SASLUser(parts[0], parts[1], parts[2]))
	}
	var extra []string
	if len(users) > 0 {
		opts = append(opts, kcluster.Listener("SASL", kcluster.SASLPlaintext))
		extra = append(extra, "SASL")
	}
	if *tlsDir != "" {
		ca, err := tlstest.NewCA()
		if err != nil {
			return err
		}
		srv, err := ca.ServerConfig(*host)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(*tlsDir, "ca.pem"), ca.CertPEM(), 0o644); err != nil {
			return fmt.Errorf("-tls-dir: %v", err)
		}
		opts = append(opts, kcluster.TLS(srv), kcluster.Listener("SSL", kcluster.SSL))
		extra = append(extra, "SSL")
	}
	// Catch signals before printing the addresses: a supervisor may
	// stop us as soon as it has read them.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	var hln net.Listener
	if *httpAddr != "" {
		addr := *httpAddr
		if h, p, err := net.SplitHostPort(addr); err == nil && h == "" {
			addr = net.JoinHostPort("127.0.0.1", p) // loopback unless told otherwise
		}
		var err error
		if hln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("-http: %v", err)
		}
		defer hln.Close()
	}
	c, err := kcluster.New(opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	var srv *http.Server
	served := make(chan error, 1)
	if hln != nil {
		srv = &http.Server{Handler: control.Handler(c), ReadHeaderTimeout: 10 * time.Second}
		go func() { served <- srv.Serve(hln) }()
	}
	fmt.Println(strings.Join(c.Addrs(), ","))
	for _, name := range extra {
		fmt.Printf("listener %s: %s\n", name, strings.Join(c.ListenerAddrs(name), ","))
	}
	if srv != nil {
		fmt.Printf("http: http://%s\n", hln.Addr())
	}
	select {
	case <-sig:
	case err := <-served:
		return fmt.Errorf("-http: %v", err)
	}
	if srv != nil {
		// The cluster first: its close ends the event streams and
		// waits, so the server then finds its connections idle.
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			srv.Close()
		}
	}
	return nil
}
