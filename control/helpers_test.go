package control_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/kcluster/kcluster"
	"github.com/kcluster/kcluster/control"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs a cluster and the control API on it.
func start(t *testing.T, opts ...kcluster.Option) (*kcluster.Cluster, *httptest.Server) {
	t.Helper()
	c := kcluster.Start(t, opts...)
	ts := httptest.NewServer(control.Handler(c))
	// Cleanups run last-in first-out: the server closes before the
	// cluster, and its streams end with their requests.
	t.Cleanup(ts.Close)
	return c, ts
}

// call sends method path with body (nil: none) and decodes the JSON answer
// into out (nil: ignored), returning the status.
func call(t *testing.T, ts *httptest.Server, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(path, "/api/") && ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	if resp.StatusCode >= 400 {
		var e struct{ Error string }
		if err := json.Unmarshal(raw, &e); err != nil || e.Error == "" {
			t.Errorf("%s %s: %d without a JSON error: %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

// must is call expecting status want.
func must(t *testing.T, ts *httptest.Server, want int, method, path string, body any, out any) {
	t.Helper()
	if got := call(t, ts, method, path, body, out); got != want {
		t.Fatalf("%s %s: status %d, want %d", method, path, got, want)
	}
}

// client returns a franz-go client on c, closed at cleanup.
func client(t *testing.T, c *kcluster.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Addrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates topic with CreateTopics and waits for its leaders.
func createTopic(t *testing.T, c *kcluster.Cluster, cl *kgo.Client, topic string, parts int32, rf int16) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, parts, rf
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].ErrorCode; code != 0 {
		t.Fatalf("CreateTopics %s: error code %d", topic, code)
	}
	for p := range parts {
		if err := c.WaitFor(context.Background(), kcluster.FullyReplicated(topic, p)); err != nil {
			t.Fatal(err)
		}
	}
}

// scrape returns /metrics as lines.
func scrape(t *testing.T, ts *httptest.Server) string {
	t.Helper()
	resp, err := ts.Client().Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, raw)
	}
	return string(raw)
}

// metric returns the value of the series named name with exactly labels
// (name{a="x",b="y"} as Prometheus' text format writes it), and whether
// it is there.
func metric(text, name string, labels ...string) (float64, bool) {
	series := name
	if len(labels) > 0 {
		var parts []string
		for i := 0; i+1 < len(labels); i += 2 {
			parts = append(parts, labels[i]+"=\""+labels[i+1]+"\"")
		}
		series += "{" + strings.Join(parts, ",") + "}"
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func itoa[T ~int32 | ~int](v T) string { return strconv.Itoa(int(v)) }

// sse reads Server-Sent Events.
type sse struct{ sc *bufio.Scanner }

func newSSE(resp *http.Response) *sse { return &sse{bufio.NewScanner(resp.Body)} }

// next returns the next event's data, decoded.
func (s *sse) next() (control.Event, error) {
	var data string
	for s.sc.Scan() {
		line := s.sc.Text()
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			data = d
		}
		if line == "" && data != "" {
			var e control.Event
			err := json.Unmarshal([]byte(data), &e)
			return e, err
		}
	}
	if err := s.sc.Err(); err != nil {
		return control.Event{}, err
	}
	return control.Event{}, io.EOF
}

// recorder is a ResponseWriter that flushes, for a handler served without
// a server; wrote is closed at its first write.
type recorder struct {
	mu    sync.Mutex
	h     http.Header
	buf   bytes.Buffer
	wrote chan struct{}
	once  sync.Once
}

func newRecorder() *recorder { return &recorder{h: http.Header{}, wrote: make(chan struct{})} }

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(int)     {}
func (r *recorder) Flush()              {}
func (r *recorder) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.once.Do(func() { close(r.wrote) })
	return r.buf.Write(b)
}

func (r *recorder) body() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

func mustRequest(t *testing.T, method, path string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, "http://kcluster"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
