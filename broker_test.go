package kcluster

import (
	"context"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/internal/invariants"
)

// blockedOpen stops the first opening of a log whose name starts with a
// prefix, in the segment store's MkdirAll of the log's directory, until
// released.
type blockedOpen struct {
	vfs.FS
	prefix string
	b      atomic.Pointer[broker] // the broker whose lock is checked
	once   sync.Once
	// opening receives, once the open has begun, whether the broker's
	// lock was free at that point. The open waits for release only if it
	// was: a lock held by the opener itself would never be released.
	opening chan bool
	release chan struct{}
	done    sync.Once
}

func newBlockedOpen(t *testing.T, prefix string) *blockedOpen {
	fs := &blockedOpen{FS: vfs.NewMem(), prefix: prefix, opening: make(chan bool, 1), release: make(chan struct{})}
	t.Cleanup(fs.unblock)
	return fs
}

func (fs *blockedOpen) MkdirAll(dir string, perm os.FileMode) error {
	if strings.HasPrefix(fs.PathBase(dir), fs.prefix) {
		fs.once.Do(func() {
			// The broker's only writers of its lock are applyLoop and
			// close, and close is not running: TryRLock fails exactly
			// when applyLoop, the opener, holds the lock.
			b := fs.b.Load()
			free := b != nil && b.mu.TryRLock()
			if free {
				b.mu.RUnlock()
			}
			fs.opening <- free
			if free {
				<-fs.release
			}
		})
	}
	return fs.FS.MkdirAll(dir, perm)
}

func (fs *blockedOpen) unblock() { fs.done.Do(func() { close(fs.release) }) }

// createTopicAsync sends CreateTopics to addr from a goroutine (the broker
// answers once it has the topic's partitions open, after the blocked
// open); the channel gets the request's error or the topic's.
func createTopicAsync(t *testing.T, addr, name string) <-chan error {
	cl := dial(t, addr)
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 20000
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		resp, err := cl.Request(ctx, req)
		if err == nil {
			err = kerr.ErrorForCode(resp.(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode)
		}
		errc <- err
	}()
	return errc
}

// A broker opens a new partition's log without holding its lock: while
// the open is stopped, the broker answers a Metadata request, which reads
// its state under that lock, and the answer does not have the topic yet
// (the state and the partitions move together, once the log is open).
// Then the topic is there and takes records.
func TestLogOpensWithoutTheBrokerLock(t *testing.T) {
	fs := newBlockedOpen(t, "slow-")
	c := Start(t, Brokers(1), FS(fs))
	fs.b.Store(c.running()[0])
	created := createTopicAsync(t, c.Addrs()[0], "slow")
	if free := <-fs.opening; !free {
		t.Fatal("the broker's lock was held while a partition's log opened")
	}
	m := metadataOf(t, nil, c.Addrs()[0])
	for _, mt := range m.Topics {
		if *mt.Topic == "slow" {
			t.Fatalf("Metadata has topic slow while its log is still opening: %s", describeTopics(m))
		}
	}
	fs.unblock()
	if err := <-created; err != nil {
		t.Fatalf("create topic: %v", err)
	}
	waitFor(t, c, "a leader of slow", LeaderElected("slow", 0))
	if _, err := produceTo(t, c, "slow", -1, "a"); err != nil {
		t.Fatalf("produce to slow: %v", err)
	}
}

// A broker killed while it opens a partition's log, outside its lock,
// closes that log (the invariants build's registry of logs forgets it) and
// restarts on the same storage with the partition whole.
func TestKillWhileALogOpens(t *testing.T) {
	fs := newBlockedOpen(t, "slow-")
	c := Start(t, Brokers(1), FS(fs))
	b := c.running()[0]
	fs.b.Store(b)
	created := createTopicAsync(t, c.Addrs()[0], "slow")
	if free := <-fs.opening; !free {
		t.Fatal("the broker's lock was held while a partition's log opened")
	}
	killed := make(chan error, 1)
	go func() { killed <- c.KillBroker(1) }()
	<-b.ctx.Done() // the kill has begun: the open ends after it
	fs.unblock()
	if err := <-killed; err != nil {
		t.Fatal(err)
	}
	<-created // the connection was dropped, or the topic created: either
	if invariants.Enabled {
		c.logs.Lock()
		for k := range c.logs.m {
			if k.broker == 1 {
				t.Errorf("a killed broker's log is still registered: topic %s partition %d", k.topic, k.part)
			}
		}
		c.logs.Unlock()
	}
	if err := c.RestartBroker(1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c, "a leader of slow", LeaderElected("slow", 0))
	if _, err := produceTo(t, c, "slow", -1, "a"); err != nil {
		t.Fatalf("produce to slow after the restart: %v", err)
	}
}
