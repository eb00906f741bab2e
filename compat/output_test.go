package compat

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// boundedOutput collects a child process's output up to max bytes. The
// first write past that calls over (once), which may stop the process, and
// the rest is dropped: a child that floods its output fails its test
// instead of growing the test process until the machine runs out of memory.
type boundedOutput struct {
	mu       sync.Mutex
	b        bytes.Buffer
	max      int
	over     func()
	exceeded bool
}

func (o *boundedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.exceeded {
		return len(p), nil
	}
	if o.b.Len()+len(p) > o.max {
		o.exceeded = true
		if o.over != nil {
			o.over()
		}
		return len(p), nil
	}
	return o.b.Write(p)
}

func (o *boundedOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// Exceeded reports whether the output passed max.
func (o *boundedOutput) Exceeded() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.exceeded
}

var (
	longHex     = regexp.MustCompile(`[0-9a-f]{16,}`)
	testLogLine = regexp.MustCompile(`^\w+_test\.go:\d+: `)
)

// distinctLines returns the first n distinct lines of out, in the order
// they first appear, each with how often it appears. Lines differing only
// in long hex strings (the suite's random topic, group and transactional
// ids) count as one. Test-runner lines (=== RUN, --- PASS) and the tests'
// own t.Log lines (failureOutput shows those of failed tests) are left
// out, leaving what goroutines printed on their own.
// A flood of one repeated line then shows as that line once, next to the
// lines that came before it, which usually say what started it.
func distinctLines(out string, n int) string {
	counts := map[string]int{}
	var order []string
	for _, line := range strings.Split(out, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "=== ") || strings.HasPrefix(trimmed, "--- PASS") || strings.HasPrefix(trimmed, "--- SKIP") || testLogLine.MatchString(trimmed) {
			continue
		}
		key := longHex.ReplaceAllString(line, "…")
		if counts[key] == 0 {
			order = append(order, key)
		}
		counts[key]++
	}
	var b strings.Builder
	for i, key := range order {
		if i == n {
			fmt.Fprintf(&b, "(%d more distinct lines)\n", len(order)-n)
			break
		}
		if c := counts[key]; c > 1 {
			fmt.Fprintf(&b, "%s  [×%d]\n", key, c)
		} else {
			b.WriteString(key + "\n")
		}
	}
	return b.String()
}
