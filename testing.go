package kcluster

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// TB is the part of testing.TB that Start uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	Logf(format string, args ...any)
}

// Start starts a cluster for a test: it fails the test if New fails, closes
// the cluster on t.Cleanup, and sends the cluster's logs to t.Logf (shown
// only when the test fails or runs with -v) unless a Logger option is given.
//
// With the environment variable BootstrapEnv (KCLUSTER_BOOTSTRAP) set, Start
// starts nothing: it returns a handle on that external cluster, as Connect
// does, closed on t.Cleanup, and a lever or gauge that needs the embedded
// cluster skips the test (see ErrExternal).
func Start(t TB, opts ...Option) *Cluster {
	t.Helper()
	if addrs := ExternalBootstrap(); addrs != nil {
		return startExternal(t, addrs, opts)
	}
	all := append([]Option{Logger(slog.New(&tbHandler{t: t, level: slog.LevelInfo}))}, opts...)
	c, err := New(all...)
	if err != nil {
		t.Fatalf("kcluster.Start: %v", err)
		return nil
	}
	c.inv.Lock()
	c.inv.reported = true
	c.inv.Unlock()
	t.Cleanup(func() {
		if f, ok := t.(interface{ Failed() bool }); ok && f.Failed() {
			t.Logf("cluster state at the end of the failed test:\n%s", c)
		}
		c.Close()
		if v := c.invariantViolations(); len(v) > 0 {
			t.Helper()
			t.Fatalf("kcluster: %d invariant violations (invariants build tag):\n%s", len(v), strings.Join(v, "\n"))
		}
	})
	return c
}

// tbHandler is a slog.Handler writing to t.Logf.
type tbHandler struct {
	t     TB
	level slog.Level
	attrs []slog.Attr
	group string
}

func (h *tbHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *tbHandler) Handle(_ context.Context, r slog.Record) error {
	var sb strings.Builder
	sb.WriteString(r.Level.String())
	sb.WriteByte(' ')
	sb.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		sb.WriteByte(' ')
		if h.group != "" {
			sb.WriteString(h.group)
			sb.WriteByte('.')
		}
		fmt.Fprintf(&sb, "%s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.t.Logf("%s", sb.String())
	return nil
}

func (h *tbHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &n
}

func (h *tbHandler) WithGroup(name string) slog.Handler {
	n := *h
	if n.group != "" {
		name = n.group + "." + name
	}
	n.group = name
	return &n
}
