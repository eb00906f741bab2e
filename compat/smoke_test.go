package compat

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kcluster/kcluster"
)

// smokeBootstrap returns the bootstrap servers of the cluster the smoke
// tests use: the external cluster KCLUSTER_BOOTSTRAP names
// (kcluster.BootstrapEnv, the switch that also points kcluster.Start at
// it), so a user who outgrows kcluster can check a real cluster with the
// same tests; else a fresh cmd/kcluster process with 3 brokers. An
// external cluster needs at least 3 brokers (topics use RF=3).
func smokeBootstrap(t *testing.T) string {
	t.Helper()
	if ext := kcluster.ExternalBootstrap(); ext != nil {
		t.Logf("running against the external cluster %s", strings.Join(ext, ","))
		return strings.Join(ext, ",")
	}
	return strings.Join(startKclusterProcess(t, buildKcluster(t), "-brokers", "3"), ",")
}

// runSmoke runs a smoke program with KAFKA_BOOTSTRAP set and fails the test
// with its output if it exits non-zero.
func runSmoke(t *testing.T, dir, bootstrap string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KAFKA_BOOTSTRAP="+bootstrap, "KAFKAJS_NO_PARTITIONER_WARNING=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	t.Log(strings.TrimSpace(out.String()))
}

// kafkajs (npm): create a topic, idempotent produce, consume in a group,
// fetch committed offsets, delete the topic. CI installs the package with
// `npm ci` in smoke/kafkajs; the test fails, not skips, without it.
func TestKafkaJSSmoke(t *testing.T) {
	dir, err := filepath.Abs("smoke/kafkajs")
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (%v): the kafkajs smoke test needs Node.js", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs")); err != nil {
		t.Fatalf("kafkajs is not installed (%v): run `npm ci` in %s (CI does)", err, dir)
	}
	runSmoke(t, dir, smokeBootstrap(t), node, "smoke.js")
}

// kafka-python (Debian's python3-kafka, under /usr/bin/python3): create a
// topic, produce with acks=all, consume in a group with commits, read the
// offsets back, delete the topic.
func TestKafkaPythonSmoke(t *testing.T) {
	dir, err := filepath.Abs("smoke/python")
	if err != nil {
		t.Fatal(err)
	}
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import kafka").CombinedOutput(); err != nil {
		t.Fatalf("kafka-python is not importable by %s (%v: %s): apt-get install python3-kafka (CI does)", python, err, out)
	}
	runSmoke(t, dir, smokeBootstrap(t), python, "smoke.py")
}
