package kcluster

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/wire"
)

// FuzzConnection writes arbitrary bytes to a broker's connection and
// checks that the broker survives them: nothing panics (not even a handler
// panic the connection loop recovers from, which is still a bug) and a
// new connection is answered.
//
// One cluster serves every input of a fuzzing process. With sized set the
// input is preceded by a size prefix equal to its length, so the mutator
// works on request headers and bodies rather than mostly on frame sizes.
func FuzzConnection(f *testing.F) {
	for _, seed := range connSeeds() {
		f.Add(seed.in, seed.sized)
	}
	panics := &panicLog{}
	c, err := New(InMemoryNetwork(), Brokers(1), Logger(slog.New(panics)))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(c.Close)
	addr := c.Addrs()[0]
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, in []byte, sized bool) {
		conn, err := c.Dial(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		msg := in
		if sized {
			msg = binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(in)), uint32(len(in)))
			msg = append(msg, in...)
		}
		// The in-memory network is a net.Pipe: a write returns only once
		// the broker has read it, and the broker's response write waits
		// for our read. So write in one goroutine, read in this one.
		conn.SetDeadline(time.Now().Add(time.Second))
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			conn.Write(msg)
		}()
		done := make(chan struct{})
		go func() {
			// Once the broker has read everything, give it a short
			// while to answer the last frame or close.
			select {
			case <-wrote:
				conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			case <-done:
			}
		}()
		io.Copy(io.Discard, conn)
		close(done)
		conn.Close()
		<-wrote

		if p := panics.take(); p != "" {
			t.Fatalf("the broker recovered a panic on input %x (sized %v): %s", in, sized, p)
		}
		hc, err := c.Dial(ctx, "tcp", addr)
		if err != nil {
			t.Fatalf("dial after input: %v", err)
		}
		cl := wire.NewClient(hc, "fuzz-health")
		defer cl.Close()
		req := kmsg.NewPtrApiVersionsRequest()
		req.SetVersion(3)
		req.ClientSoftwareName = "fuzz"
		req.ClientSoftwareVersion = "1"
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		resp, err := cl.Request(rctx, req)
		if err != nil {
			t.Fatalf("ApiVersions after input %x (sized %v): %v", in, sized, err)
		}
		if ec := resp.(*kmsg.ApiVersionsResponse).ErrorCode; ec != 0 {
			t.Fatalf("ApiVersions after input: error code %d", ec)
		}
	})
}

type connSeed struct {
	in    []byte
	sized bool
}

// connSeeds are the wire package's request seeds as whole frames, their
// bodies with sized set, and a few frames the connection loop refuses.
func connSeeds() []connSeed {
	var seeds []connSeed
	var ok []kmsg.Request
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(12)
	ok = append(ok, md)
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	ok = append(ok, av)
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.SetVersion(7)
	topic := kmsg.NewCreateTopicsRequestTopic()
	topic.Topic = "fuzz"
	topic.NumPartitions = 1
	topic.ReplicationFactor = 1
	ct.Topics = append(ct.Topics, topic)
	ok = append(ok, ct)
	prod := produceRequest("fuzz", 0, 1, 15000, makeBatch(1, "a", "b"))
	prod.SetVersion(9)
	ok = append(ok, prod)
	fetch := kmsg.NewPtrFetchRequest()
	fetch.SetVersion(12)
	fetch.MaxWaitMillis = 10
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "fuzz"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	ok = append(ok, fetch)
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(4)
	fc.CoordinatorKeys = []string{"g"}
	ok = append(ok, fc)
	for _, req := range ok {
		frame := wire.AppendRequest(nil, 1, "fuzz", req)
		seeds = append(seeds, connSeed{frame, false}, connSeed{frame[4:], true})
	}
	seeds = append(seeds,
		connSeed{[]byte{0x7f, 0xff, 0xff, 0xff, 1, 2, 3}, false},
		connSeed{[]byte{0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}, true},
		connSeed{[]byte(strings.Repeat("\x00", 16)), true},
	)
	return seeds
}

// panicLog is a slog.Handler that keeps the first recovered-panic record
// logged since the last take; every other record is dropped.
type panicLog struct {
	mu    sync.Mutex
	first string
}

func (p *panicLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }

func (p *panicLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "panic") {
		return nil
	}
	var sb strings.Builder
	sb.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		sb.WriteString(" " + a.String())
		return true
	})
	p.mu.Lock()
	if p.first == "" {
		p.first = sb.String()
	}
	p.mu.Unlock()
	return nil
}

func (p *panicLog) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicLog) WithGroup(string) slog.Handler      { return p }

func (p *panicLog) take() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.first
	p.first = ""
	return s
}
