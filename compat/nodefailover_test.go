package compat

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// examples/node-failover: the kafkajs producer and consumer against a
// cmd/kcluster process with -http, killing the partition leader through
// the control API midway. The script fails when an acknowledged record is
// not consumed; the test checks its result line too. CI installs kafkajs
// there with `npm ci`; the test fails, not skips, without it.
func TestNodeFailoverExample(t *testing.T) {
	dir, err := filepath.Abs("../examples/node-failover")
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (%v): the example needs Node.js", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs")); err != nil {
		t.Fatalf("kafkajs is not installed (%v): run `npm ci` in %s (CI does)", err, dir)
	}
	addrs, lines := startKclusterProcessLines(t, buildKcluster(t), "-brokers", "3", "-http", "127.0.0.1:0")
	var url string
	select {
	case line := <-lines:
		var ok bool
		if url, ok = strings.CutPrefix(line, "http: "); !ok || !strings.HasPrefix(url, "http://127.0.0.1:") {
			t.Fatalf("kcluster's line after the bootstrap line is %q, want \"http: http://127.0.0.1:PORT\"", line)
		}
	case <-time.After(testTimeout):
		t.Fatal("kcluster printed no http: line")
	}
	out := runNode(t, dir, node, "failover.js", "KAFKA_BOOTSTRAP="+strings.Join(addrs, ","), "KCLUSTER_HTTP="+url)
	var res struct {
		Acked, Received, Lost int
		KilledLeader          int32
		NewLeader             int32
		LongestAckGapMs       int64
	}
	i := strings.LastIndex(out, "RESULT ")
	if i < 0 {
		t.Fatalf("no RESULT line:\n%s", out)
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out[i+len("RESULT "):])), &res); err != nil {
		t.Fatalf("RESULT line: %v\n%s", err, out)
	}
	if res.Acked != 500 || res.Lost != 0 || res.Received < res.Acked || res.NewLeader == res.KilledLeader || res.NewLeader < 1 {
		t.Fatalf("result %+v\n%s", res, out)
	}
}

// runNode runs a node script in dir with env added and fails the test with
// its output if it exits non-zero; it returns the output.
func runNode(t *testing.T, dir, node, script string, env ...string) string {
	t.Helper()
	ctx := testContext(t)
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "KAFKAJS_NO_PARTITIONER_WARNING=1"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	t.Log(strings.TrimSpace(string(out)))
	return string(out)
}
