package compat

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFranzGoSuite runs franz-go's own kgo integration tests — a client we
// did not write, at the version this module pins — against a 3-broker
// cmd/kcluster with replication factor 3, as franz-go's CI runs them
// against Kafka. With KGO_SEEDS set, it runs them against that cluster
// instead (an external Kafka, say), so the same suite can check a real
// cluster. Every test that runs must pass; the counts are logged.
func TestFranzGoSuite(t *testing.T) {
	seeds := os.Getenv("KGO_SEEDS")
	var scram []string
	if seeds == "" {
		// Built without the race detector even under -race: the suite is
		// the load here, and it runs in its own process. A SCRAM user
		// on a SASL listener lets the suite's SCRAM tests run too.
		addrs, lines := startKclusterProcessLines(t, buildKclusterRace(t, false), "-brokers", "3",
			"-sasl-user", "SCRAM-SHA-256:kgo:kgo-secret")
		seeds = strings.Join(addrs, ",")
		select {
		case line := <-lines:
			sasl, ok := strings.CutPrefix(line, "listener SASL: ")
			if !ok {
				t.Fatalf("kcluster's second line %q does not name the SASL listener", line)
			}
			scram = []string{"KGO_TEST_SCRAM_SEEDS=" + sasl, "KGO_TEST_SCRAM=kgo:kgo-secret"}
		case <-time.After(testTimeout):
			t.Fatal("kcluster did not print its SASL listener")
		}
	} else {
		t.Logf("running against the external cluster %s", seeds)
	}
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not found: %v", err)
	}
	run := func(args ...string) (map[string][]string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
		defer cancel()
		args = append([]string{"test", "-count=1", "-timeout=20m", "-v"}, args...)
		cmd := exec.CommandContext(ctx, gocmd, append(args, "github.com/twmb/franz-go/pkg/kgo")...)
		cmd.Env = append(append(os.Environ(), "KGO_SEEDS="+seeds, "KGO_TEST_RF=3", "KGO_TEST_RECORDS=20000", "KGO_LOG_LEVEL=none"), scram...)
		dieWithTest(cmd)
		killGroupOnCancel(cmd)
		// A whole passing run prints a few MB; a test stuck in a loop
		// that logs could print without end: stop the run at 256 MiB.
		out := &boundedOutput{max: 256 << 20, over: cancel}
		cmd.Stdout, cmd.Stderr = out, out
		err := cmd.Run()
		if out.Exceeded() {
			err = fmt.Errorf("stopped: the suite's output passed 256 MiB (a test flooding it?): %v", err)
		}
		return parseGoTest(out.String()), out.String(), err
	}
	start := time.Now()
	res, out, runErr := run()
	t.Logf("franz-go kgo suite against %s: %d passed, %d failed, %d skipped in %v",
		seeds, len(res["PASS"]), len(res["FAIL"]), len(res["SKIP"]), time.Since(start).Round(time.Second))
	for _, name := range res["SKIP"] {
		t.Logf("skipped: %s", name)
	}
	if len(res["PASS"]) == 0 {
		t.Fatalf("the suite ran no test (go test: %v)\n%s", runErr, lastLines(out, 200))
	}
	if len(res["FAIL"]) == 0 && runErr == nil {
		return
	}
	// A failed test runs once more, on its own, as gotestsum's
	// --rerun-fails does: one that passes then is reported as flaky (in
	// the log, never silently); one that fails again fails this test.
	var top []string
	for _, name := range res["FAIL"] {
		if !strings.Contains(name, "/") {
			top = append(top, regexp.QuoteMeta(name))
		}
	}
	t.Logf("failed: %s (go test: %v); still running: %s; their output:\n%s\nwhat goroutines printed, first occurrences:\n%s\nlast 40 lines:\n%s",
		strings.Join(res["FAIL"], ", "), runErr, strings.Join(res["RUN"], ", "), failureOutput(out), distinctLines(out, 150), lastLines(out, 40))
	if len(top) == 0 {
		t.Fatal("the suite failed without a failed test to rerun")
	}
	again, out2, err2 := run("-run", "^("+strings.Join(top, "|")+")$")
	if len(again["FAIL"]) > 0 || err2 != nil || len(again["PASS"]) == 0 {
		t.Fatalf("failed again on rerun: %s (go test: %v)\n%s", strings.Join(again["FAIL"], ", "), err2, lastLines(out2, 200))
	}
	t.Logf("FLAKY: %s failed in the full run and passed when rerun alone", strings.Join(res["FAIL"], ", "))
}

var (
	testResult = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+)`)
	testRun    = regexp.MustCompile(`^=== RUN\s+(\S+)`)
)

// parseGoTest collects `go test -v` results by outcome (subtests included).
// Under "RUN" are the tests that started and have no outcome yet: those
// still running when the output ends.
func parseGoTest(out string) map[string][]string {
	res := map[string][]string{}
	var started []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := testResult.FindStringSubmatch(sc.Text()); m != nil && !slices.Contains(res[m[1]], m[2]) {
			res[m[1]] = append(res[m[1]], m[2])
		} else if m := testRun.FindStringSubmatch(sc.Text()); m != nil {
			started = append(started, m[1])
		}
	}
	for _, name := range started {
		if !slices.Contains(res["PASS"], name) && !slices.Contains(res["FAIL"], name) && !slices.Contains(res["SKIP"], name) && !slices.Contains(res["RUN"], name) {
			res["RUN"] = append(res["RUN"], name)
		}
	}
	return res
}

// failureOutput returns each "--- FAIL" line of `go test -v` output with
// the lines indented under it (the failed test's own messages), without
// the suite's topic and group clean-up chatter.
func failureOutput(out string) string {
	var b strings.Builder
	in := false
	indent := 0
	for _, line := range strings.Split(out, "\n") {
		trimmed := strings.TrimLeft(line, " ")
		depth := len(line) - len(trimmed)
		switch {
		case strings.HasPrefix(trimmed, "--- FAIL"):
			in, indent = true, depth
		case in && (depth <= indent || strings.HasPrefix(trimmed, "=== ") || strings.HasPrefix(trimmed, "--- ")):
			in = false
			continue
		case !in || strings.Contains(line, "deleting topic") || strings.Contains(line, "deleting group"):
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
