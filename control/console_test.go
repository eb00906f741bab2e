package control_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kcluster/kcluster"
	"github.com/kcluster/kcluster/control"
)

// get fetches path from ts and returns its status, content type and body.
func get(t *testing.T, ts *httptest.Server, path string) (int, string, string) {
	t.Helper()
	resp, err := ts.Client().Get(ts.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// The console is GET /: an HTML page whose stylesheet and JavaScript
// modules (followed through their imports) are served with their content
// types, all from the handler itself.
func TestConsoleAssets(t *testing.T) {
	_, ts := start(t, kcluster.Brokers(1))
	st, ct, page := get(t, ts, "/")
	if st != 200 || ct != "text/html; charset=utf-8" || !strings.Contains(page, "<title>kcluster console</title>") {
		t.Fatalf("GET /: %d %q\n%s", st, ct, page)
	}
	if csp := mustHeader(t, ts, "/", "Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Fatalf("GET /: Content-Security-Policy %q", csp)
	}
	for _, a := range consoleAssets(t, ts) {
		if !strings.HasPrefix(a.path, "/console/") {
			t.Errorf("asset %s is not the handler's own", a.path)
		}
		want := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}[a.path[strings.LastIndex(a.path, "."):]]
		if a.contentType != want {
			t.Errorf("GET %s: Content-Type %q, want %q", a.path, a.contentType, want)
		}
		if strings.Contains(a.body, "http://") || strings.Contains(a.body, "https://") {
			if !strings.Contains(a.body, "http://www.w3.org/") { // SVG and XHTML namespaces
				t.Errorf("%s refers to another site", a.path)
			}
		}
	}
	if st, _, _ := get(t, ts, "/console/nope.js"); st != 404 {
		t.Errorf("GET /console/nope.js: %d, want 404", st)
	}
	if st, _, _ := get(t, ts, "/nope"); st != 404 {
		t.Errorf("GET /nope: %d, want 404", st)
	}
}

func mustHeader(t *testing.T, ts *httptest.Server, path, name string) string {
	t.Helper()
	resp, err := ts.Client().Get(ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get(name)
}

type asset struct{ path, contentType, body string }

var (
	pageAsset   = regexp.MustCompile(`(?:src|href)="(console/[^"]+)"`)
	moduleAsset = regexp.MustCompile(`from '\./([^']+)'`)
)

// consoleAssets fetches the page's stylesheet and scripts and every module
// they import.
func consoleAssets(t *testing.T, ts *httptest.Server) []asset {
	t.Helper()
	_, _, page := get(t, ts, "/")
	var queue []string
	for _, m := range pageAsset.FindAllStringSubmatch(page, -1) {
		queue = append(queue, "/"+m[1])
	}
	var out []asset
	seen := map[string]bool{}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		st, ct, body := get(t, ts, p)
		if st != 200 {
			t.Fatalf("GET %s: %d", p, st)
		}
		out = append(out, asset{p, ct, body})
		for _, m := range moduleAsset.FindAllStringSubmatch(body, -1) {
			queue = append(queue, "/console/"+m[1])
		}
	}
	if len(out) < 4 {
		t.Fatalf("the console has only %d assets: %v", len(out), seen)
	}
	return out
}

// apiCall finds an API path literal in the console's JavaScript, with the
// method of send('METHOD', ...) before it (GET otherwise).
var apiCall = regexp.MustCompile("(?:send\\('([A-Z]+)',\\s*)?['`](/api/[^'`]*)['`]")

// Every API route the console's JavaScript calls is a route of the
// OpenAPI document, with that method.
func TestConsoleCallsOnlyRoutes(t *testing.T) {
	_, ts := start(t, kcluster.Brokers(1))
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	must(t, ts, 200, "GET", "/api/openapi.json", nil, &doc)
	match := func(method, path string) bool {
		for p, ops := range doc.Paths {
			if _, ok := ops[strings.ToLower(method)]; ok && samePath(p, path) {
				return true
			}
		}
		return false
	}
	var calls []string
	for _, a := range consoleAssets(t, ts) {
		for _, m := range apiCall.FindAllStringSubmatch(a.body, -1) {
			method := m[1]
			if method == "" {
				method = "GET"
			}
			calls = append(calls, method+" "+m[2])
			if !match(method, m[2]) {
				t.Errorf("%s calls %s %s, which the OpenAPI document does not describe", a.path, method, m[2])
			}
		}
	}
	slices.Sort(calls)
	calls = slices.Compact(calls)
	// The page reads the gauges, the stream, and pulls levers: a sanity
	// check that the scan found them.
	for _, want := range []string{"GET /api/cluster", "GET /api/events/stream", "POST /api/brokers/${id}/kill", "POST /api/network/cut", "DELETE /api/faults/${faultId}"} {
		if !slices.Contains(calls, want) {
			t.Errorf("the console's calls %q lack %s", calls, want)
		}
	}
}

// samePath reports whether a path the JavaScript builds (${...} for a
// value) fits an OpenAPI path ({name} for a parameter).
func samePath(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		param := strings.HasPrefix(ps[i], "{") && strings.HasSuffix(ps[i], "}")
		value := strings.HasPrefix(xs[i], "${") && strings.HasSuffix(xs[i], "}")
		if param != value || (!param && ps[i] != xs[i]) {
			return false
		}
	}
	return true
}

// The console's routes are the handler's own and do not shadow the API:
// an unknown API path is still a 404 in JSON, not the page.
func TestConsoleLeavesAPIAlone(t *testing.T) {
	c := kcluster.Start(t, kcluster.Brokers(1))
	ts := httptest.NewServer(control.Handler(c))
	defer ts.Close()
	resp, err := http.Post(ts.URL+"/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /: %d, want 405", resp.StatusCode)
	}
	if st, ct, _ := get(t, ts, "/api/nope"); st != 404 || strings.HasPrefix(ct, "text/html") {
		t.Fatalf("GET /api/nope: %d %q", st, ct)
	}
}
