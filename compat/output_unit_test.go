package compat

import (
	"strings"
	"testing"
)

func TestDistinctLines(t *testing.T) {
	out := strings.Join([]string{
		"=== RUN   TestTxnEtl",
		"    txn_test.go:12: deleting topic 0123456789abcdef0123",
		"    testConsumer sendErr group=aaaaaaaaaaaaaaaaaaaa: BeginTransaction unexpected err: fatal",
		"    testConsumer sendErr group=aaaaaaaaaaaaaaaaaaaa: unexpected transactional produce err: not in a transaction",
		"    testConsumer sendErr group=bbbbbbbbbbbbbbbbbbbb: unexpected transactional produce err: not in a transaction",
		"    testConsumer sendErr group=aaaaaaaaaaaaaaaaaaaa: unexpected transactional produce err: not in a transaction",
		"--- PASS: TestOther (0.1s)",
	}, "\n")
	got := distinctLines(out, 150)
	want := "    testConsumer sendErr group=…: BeginTransaction unexpected err: fatal\n" +
		"    testConsumer sendErr group=…: unexpected transactional produce err: not in a transaction  [×3]\n"
	if got != want {
		t.Fatalf("distinctLines:\n%s\nwant:\n%s", got, want)
	}
	if got := distinctLines(out, 1); !strings.HasSuffix(got, "(1 more distinct lines)\n") {
		t.Fatalf("distinctLines with n=1 does not say how many it left out:\n%s", got)
	}
}

func TestParseGoTestStillRunning(t *testing.T) {
	out := "=== RUN   TestA\n=== RUN   TestB\n=== RUN   TestB/sub\n--- PASS: TestA (0.00s)\n    --- FAIL: TestB/sub (1.00s)\n"
	res := parseGoTest(out)
	if got := strings.Join(res["RUN"], ","); got != "TestB" {
		t.Fatalf("still running: %q, want TestB", got)
	}
	if got := strings.Join(res["FAIL"], ","); got != "TestB/sub" {
		t.Fatalf("failed: %q, want TestB/sub", got)
	}
}
