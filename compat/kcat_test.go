package compat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// kcatPath returns the kcat binary, failing the test (not skipping it) when
// it is missing: CI installs it, and a silent skip would hide that the
// librdkafka path went untested.
func kcatPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat not found (%v): install it with `apt-get install -y kcat` (CI does); this test does not skip without it", err)
	}
	return p
}

// buildKcluster builds cmd/kcluster from the library module (the parent
// directory) into a temporary directory and returns the binary's path. Under
// -race the binary is built with the race detector too, which also reuses
// the test build's cache.
func buildKcluster(t *testing.T) string {
	t.Helper()
	return buildKclusterRace(t, raceEnabled)
}

// buildKclusterRace is buildKcluster with the race detector on or off.
func buildKclusterRace(t *testing.T, race bool) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("library module root %s: %v", root, err)
	}
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not found: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "kcluster")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/kcluster")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gocmd, args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin
}

// lineWriter collects a process's stdout and hands over its first lines,
// one by one, as they are written.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, rest, ok := strings.Cut(w.buf.String(), "\n")
		if !ok {
			break
		}
		select {
		case w.lines <- line:
		default: // nobody asked for that many lines
		}
		w.buf.Reset()
		w.buf.WriteString(rest)
	}
	return len(p), nil
}

// startKclusterProcess runs the cmd/kcluster binary with args, returns the
// bootstrap addresses from its first stdout line, and on cleanup stops it
// with SIGTERM and checks that it exits cleanly.
func startKclusterProcess(t *testing.T, bin string, args ...string) []string {
	t.Helper()
	addrs, _ := startKclusterProcessLines(t, bin, args...)
	return addrs
}

// startKclusterProcessLines is startKclusterProcess that also hands over
// the lines cmd/kcluster prints after the first (its extra listeners).
func startKclusterProcessLines(t *testing.T, bin string, args ...string) ([]string, <-chan string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	dieWithTest(cmd)
	stdout := &lineWriter{lines: make(chan string, 16)}
	stderr := &boundedOutput{max: 16 << 20} // its first lines are what a failure shows
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("SIGTERM to kcluster: %v", err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("kcluster exited after SIGTERM with %v, want a clean exit", err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("kcluster did not exit within 15s of SIGTERM (killed)")
		}
		if t.Failed() && stderr.String() != "" {
			t.Logf("kcluster stderr:\n%s", firstLines(stderr.String(), 50))
		}
	})
	select {
	case line := <-stdout.lines:
		addrs := strings.Split(strings.TrimSpace(line), ",")
		for _, a := range addrs {
			if !strings.Contains(a, ":") {
				t.Fatalf("kcluster's first line %q is not comma-separated host:port addresses", line)
			}
		}
		return addrs, stdout.lines
	case err := <-exited:
		exited <- err // for the cleanup
		t.Fatalf("kcluster exited before printing its addresses: %v", err)
	case <-time.After(testTimeout):
		t.Fatalf("kcluster printed no address line within %v", testTimeout)
	}
	return nil, nil
}

// kcatTimeout bounds one kcat run; each takes well under a second against a
// healthy cluster, but librdkafka retries protocol errors forever.
const kcatTimeout = 10 * time.Second

// runKcat runs kcat with args and stdin, failing the test if it exits non-zero
// or reports an error on stderr; it returns stdout.
func runKcat(ctx context.Context, t *testing.T, kcat string, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, kcatTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v (timeout %v)\nstderr:\n%s", strings.Join(args, " "), err, kcatTimeout, firstLines(stderr.String(), 20))
	}
	if s := stderr.String(); strings.Contains(s, "ERROR") || strings.Contains(strings.ToLower(s), "failed") {
		t.Fatalf("kcat %s succeeded but reported errors:\n%s", strings.Join(args, " "), firstLines(s, 20))
	}
	return stdout.String()
}

// firstLines returns the first n lines of s and how many more there were,
// so a client retrying an error in a loop does not flood the test log.
func firstLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) <= n {
		return s
	}
	return strings.Join(lines[:n], "") + fmt.Sprintf("... (%d more lines)\n", len(lines)-n)
}

// kcatMetadata is the part of `kcat -L -J` output the test checks.
type kcatMetadata struct {
	Brokers []struct {
		ID   int32  `json:"id"`
		Name string `json:"name"`
	} `json:"brokers"`
	Topics []struct {
		Topic      string `json:"topic"`
		Err        string `json:"error"`
		Partitions []struct {
			Partition int32  `json:"partition"`
			Leader    int32  `json:"leader"`
			Err       string `json:"error"`
			Replicas  []struct {
				ID int32 `json:"id"`
			} `json:"replicas"`
			ISRs []struct {
				ID int32 `json:"id"`
			} `json:"isrs"`
		} `json:"partitions"`
	} `json:"topics"`
}

// TestKcat runs cmd/kcluster as a process with 3 brokers and drives it with
// kcat (librdkafka): metadata listing, producing with acks=all to one
// partition, consuming it from the beginning.
func TestKcat(t *testing.T) {
	const (
		topic = "kcat"
		lines = 100
	)
	kcat := kcatPath(t)
	bin := buildKcluster(t)
	addrs := startKclusterProcess(t, bin, "-brokers", "3")
	if len(addrs) != 3 {
		t.Fatalf("kcluster -brokers 3 printed %d addresses %v, want 3", len(addrs), addrs)
	}
	bootstrap := strings.Join(addrs, ",")
	ctx := testContext(t)

	var md kcatMetadata
	out := runKcat(ctx, t, kcat, "", "-b", bootstrap, "-L", "-J")
	if err := json.Unmarshal([]byte(out), &md); err != nil {
		t.Fatalf("kcat -L -J output is not the expected JSON: %v\n%s", err, out)
	}
	var ids []int32
	for _, b := range md.Brokers {
		ids = append(ids, b.ID)
		if !slices.Contains(addrs, b.Name) {
			t.Errorf("kcat lists broker %d at %q, not one of the printed addresses %v", b.ID, b.Name, addrs)
		}
	}
	slices.Sort(ids)
	if fmt.Sprint(ids) != "[1 2 3]" {
		t.Fatalf("kcat -L lists brokers %v, want [1 2 3]; output:\n%s", ids, out)
	}

	cl := newFranzClient(t, addrs)
	createTopicKadm(ctx, t, kadm.NewClient(cl), topic, 3, 3)

	out = runKcat(ctx, t, kcat, "", "-b", bootstrap, "-L", "-J", "-t", topic)
	md = kcatMetadata{}
	if err := json.Unmarshal([]byte(out), &md); err != nil {
		t.Fatalf("kcat -L -J -t output is not the expected JSON: %v\n%s", err, out)
	}
	if len(md.Topics) != 1 || md.Topics[0].Topic != topic || md.Topics[0].Err != "" || len(md.Topics[0].Partitions) != 3 {
		t.Fatalf("kcat -L -t %s: want the topic with 3 partitions and no error; output:\n%s", topic, out)
	}
	for _, p := range md.Topics[0].Partitions {
		if p.Err != "" || len(p.Replicas) != 3 || len(p.ISRs) != 3 || p.Leader < 1 || p.Leader > 3 {
			t.Errorf("kcat -L -t %s partition %d: leader %d, %d replicas, %d isrs, error %q; want 3, 3, none",
				topic, p.Partition, p.Leader, len(p.Replicas), len(p.ISRs), p.Err)
		}
	}

	var in strings.Builder
	var want []string
	for i := 0; i < lines; i++ {
		v := value(topic, i)
		want = append(want, v)
		in.WriteString(v + "\n")
	}
	runKcat(ctx, t, kcat, in.String(), "-P", "-b", bootstrap, "-t", topic, "-p", "0", "-X", "request.required.acks=-1")

	out = runKcat(ctx, t, kcat, "", "-C", "-b", bootstrap, "-t", topic, "-p", "0", "-o", "beginning", "-e", "-f", `%s\n`)
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if !slices.Equal(got, want) {
		t.Fatalf("kcat -C read %d lines, want the %d produced in order\ngot:  %q\nwant: %q", len(got), len(want), got, want)
	}

	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListEndOffsets: %v", err)
	}
	for p := int32(0); p < 3; p++ {
		wantEnd := int64(0)
		if p == 0 {
			wantEnd = lines
		}
		if e, ok := ends.Lookup(topic, p); !ok || e.Err != nil || e.Offset != wantEnd {
			t.Errorf("end offset of partition %d after kcat -P -p 0: %+v (found %v), want %d", p, e, ok, wantEnd)
		}
	}
}
