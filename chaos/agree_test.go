package chaos

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
	"github.com/kcluster/kcluster/internal/invariants"
)

// A check that cannot fail checks nothing: a follower whose log holds a
// different record below the high watermark (here, one record rewritten
// on its disk while it was stopped, with a valid CRC, so the broker takes
// it as its own) must be found by the agreement check, and it is found
// only by reading through that follower as leader.
func TestReplicaAgreementFindsADivergedReplica(t *testing.T) {
	dir := t.TempDir()
	// The invariants build finds the divergence too, at the follower's
	// first fetch past the rewritten record: there it must, and must not
	// fail this test.
	tb := &expectViolation{T: t}
	t.Cleanup(func() {
		if invariants.Enabled && !strings.Contains(tb.got, "differs from the leader's") {
			t.Errorf("the invariants build did not find the rewritten record; Start's cleanup said %q", tb.got)
		}
	})
	c := kcluster.Start(tb, kcluster.Brokers(3), kcluster.Dir(dir))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r := &run{c: c, start: time.Now(), cfg: Config{Topic: "agree", Partitions: 1, Logf: t.Logf}}
	r.cfg.defaults()
	if err := r.createTopic(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := r.client(kgo.DefaultProduceTopic("agree"), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, v := range []string{"v0", "v1", "v2"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	r.waitReplicated(ctx, "the produce")
	r.checkReplicasAgree(ctx)
	if len(r.mu.report.Violations) != 0 {
		t.Fatalf("replicas that agree were reported: %v", r.mu.report.Violations)
	}

	st, _ := c.PartitionState("agree", 0)
	follower := st.Replicas[0]
	if follower == st.Leader {
		follower = st.Replicas[1]
	}
	if err := c.StopBroker(follower); err != nil {
		t.Fatal(err)
	}
	rewriteRecord(t, filepath.Join(dir, "broker-"+itoa(follower)), "agree-0", "v1", "x1")
	if err := c.RestartBroker(follower); err != nil {
		t.Fatal(err)
	}
	r.waitReplicated(ctx, "the restart")
	r.checkReplicasAgree(ctx)
	if len(r.mu.report.Violations) != 1 || !strings.Contains(r.mu.report.Violations[0], `"x1"`) {
		t.Fatalf("broker %d serves x1 where the others hold v1; the check reported %q", follower, r.mu.report.Violations)
	}
	t.Logf("found, as it should: %s", r.mu.report.Violations[0])
}

// expectViolation is a kcluster.TB that takes the invariant violations
// Start's cleanup reports instead of failing the test with them.
type expectViolation struct {
	*testing.T
	got string
}

func (e *expectViolation) Fatalf(format string, args ...any) {
	if msg := fmt.Sprintf(format, args...); strings.Contains(msg, "invariant violations") {
		e.got = msg
		return
	}
	e.T.Fatalf(format, args...)
}

func itoa(id int32) string { return string(rune('0' + id)) }

// rewriteRecord replaces the record value from with to (same length) in
// the uncompressed batch holding it, in the segment files of the log named
// log* under dir, and fixes the batch's CRC-32C.
func rewriteRecord(t *testing.T, dir, log, from, to string) {
	t.Helper()
	done := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || done || d.IsDir() || !strings.HasSuffix(path, ".log") || !strings.Contains(path, log) {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for pos := 0; pos+61 <= len(b); {
			size := 12 + int(binary.BigEndian.Uint32(b[pos+8:]))
			batch := b[pos : pos+size]
			if i := strings.Index(string(batch[61:]), from); i >= 0 {
				copy(batch[61+i:], to)
				binary.BigEndian.PutUint32(batch[17:], crc32.Checksum(batch[21:], crc32.MakeTable(crc32.Castagnoli)))
				done = true
				return os.WriteFile(path, b, 0o644)
			}
			pos += size
		}
		return nil
	})
	if err != nil || !done {
		t.Fatalf("rewriting %s in %s under %s: found %v, %v", from, log, dir, done, err)
	}
}
