package control_test

import (
	"context"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster"
	"github.com/kcluster/kcluster/control"
)

// The pinned shapes: GET /api/brokers and GET
// /api/topics/{topic}/partitions/{partition}.
func TestPinnedShapes(t *testing.T) {
	c, ts := start(t)
	var brokers []map[string]any
	must(t, ts, 200, "GET", "/api/brokers", nil, &brokers)
	if len(brokers) != 3 {
		t.Fatalf("brokers: %v", brokers)
	}
	for i, b := range brokers {
		if b["id"] != float64(i+1) || b["state"] != "running" || b["addr"] != c.Addrs()[i] {
			t.Errorf("broker %d: %v", i+1, b)
		}
	}
	cl := client(t, c)
	createTopic(t, c, cl, "orders", 1, 3)
	var p map[string]any
	must(t, ts, 200, "GET", "/api/topics/orders/partitions/0", nil, &p)
	st, err := c.PartitionState("orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	if p["leader"] != float64(st.Leader) || p["leaderEpoch"] != float64(st.LeaderEpoch) || p["highWatermark"] != float64(0) {
		t.Errorf("partition: %v, want leader %d epoch %d hw 0", p, st.Leader, st.LeaderEpoch)
	}
	want := map[string]any{"1": float64(0), "2": float64(0), "3": float64(0)}
	if !maps.Equal(p["logEndOffsets"].(map[string]any), want) {
		t.Errorf("logEndOffsets %v, want %v", p["logEndOffsets"], want)
	}
	for _, k := range []string{"replicas", "isr"} {
		var got []int32
		for _, v := range p[k].([]any) {
			got = append(got, int32(v.(float64)))
		}
		slices.Sort(got)
		if !slices.Equal(got, []int32{1, 2, 3}) {
			t.Errorf("%s %v, want [1 2 3]", k, got)
		}
	}
	for _, k := range []string{"lastStableOffset", "logStartOffset", "highWatermarks", "addingReplicas", "removingReplicas"} {
		if _, ok := p[k]; !ok {
			t.Errorf("no %s in %v", k, p)
		}
	}
	// The same partition in the topic and in the topic list.
	var topic struct {
		Name           string
		PartitionCount int
		Partitions     []map[string]any
	}
	must(t, ts, 200, "GET", "/api/topics/orders", nil, &topic)
	if topic.PartitionCount != 1 || topic.Partitions[0]["leader"] != p["leader"] {
		t.Errorf("topic: %+v", topic)
	}
	var topics []map[string]any
	must(t, ts, 200, "GET", "/api/topics", nil, &topics)
	if !slices.ContainsFunc(topics, func(m map[string]any) bool {
		return m["name"] == "orders" && m["partitionCount"] == float64(1) && m["replicationFactor"] == float64(3)
	}) {
		t.Errorf("topics: %v", topics)
	}
	must(t, ts, 404, "GET", "/api/topics/nope/partitions/0", nil, nil)
	must(t, ts, 404, "GET", "/api/topics/orders/partitions/7", nil, nil)
	must(t, ts, 404, "GET", "/api/topics/orders/partitions/x", nil, nil)
	must(t, ts, 404, "GET", "/api/topics/nope", nil, nil)
	var cfgs map[string]struct{ Value, Source string }
	must(t, ts, 200, "GET", "/api/topics/orders/configs", nil, &cfgs)
	if cfgs["cleanup.policy"].Value != "delete" || cfgs["cleanup.policy"].Source == "" {
		t.Errorf("configs: cleanup.policy %+v", cfgs["cleanup.policy"])
	}
	var cluster map[string]any
	must(t, ts, 200, "GET", "/api/cluster", nil, &cluster)
	if cluster["clusterId"] != c.ClusterID() || cluster["bootstrapServers"] != strings.Join(c.Addrs(), ",") || cluster["controller"] != float64(c.Controller()) {
		t.Errorf("cluster: %v", cluster)
	}
}

// Killing the leader through the API: the broker goes down, a wait on
// leaderElected answers when a new leader is elected, the ISR shrinks,
// and a restart brings the broker back.
func TestBrokerLevers(t *testing.T) {
	c, ts := start(t)
	cl := client(t, c)
	createTopic(t, c, cl, "t", 1, 3)
	st, _ := c.PartitionState("t", 0)
	old := st.Leader
	path := "/api/brokers/" + itoa(old)

	must(t, ts, 404, "POST", "/api/brokers/9/kill", nil, nil)
	must(t, ts, 404, "POST", "/api/brokers/0/stop", nil, nil)
	must(t, ts, 404, "POST", "/api/brokers/x/kill", nil, nil)
	must(t, ts, 404, "GET", "/api/brokers/9", nil, nil)
	must(t, ts, 409, "POST", path+"/restart", nil, nil)

	var b control.Broker
	must(t, ts, 200, "POST", path+"/kill", nil, &b)
	if b.ID != old || b.State != "down" || b.Running {
		t.Fatalf("after kill: %+v", b)
	}
	must(t, ts, 409, "POST", path+"/kill", nil, nil)
	must(t, ts, 409, "POST", path+"/powercut", nil, nil)

	var res map[string]any
	must(t, ts, 200, "POST", "/api/wait", map[string]any{"condition": "leaderElected", "topic": "t", "partition": 0, "not": []int32{old}, "timeoutMs": 30000}, &res)
	if res["held"] != true {
		t.Fatalf("wait: %v", res)
	}
	must(t, ts, 200, "POST", "/api/wait", map[string]any{"condition": "isrSize", "topic": "t", "size": 2}, nil)
	var p control.Partition
	must(t, ts, 200, "GET", "/api/topics/t/partitions/0", nil, &p)
	if p.Leader == old || p.Leader < 0 || len(p.ISR) != 2 || slices.Contains(p.ISR, old) || p.LeaderEpoch <= st.LeaderEpoch {
		t.Fatalf("after the leader's kill: %+v", p)
	}
	if _, ok := p.LogEndOffsets[itoa(old)]; ok {
		t.Errorf("a dead replica has a log end offset: %v", p.LogEndOffsets)
	}
	must(t, ts, 200, "POST", "/api/wait", map[string]any{"condition": "brokerState", "broker": old, "state": "down"}, nil)

	must(t, ts, 200, "POST", path+"/restart", nil, &b)
	if b.State != "running" {
		t.Fatalf("after restart: %+v", b)
	}
	must(t, ts, 200, "POST", "/api/wait", map[string]any{"condition": "fullyReplicated", "topic": "t"}, nil)

	// A controlled shutdown and a power cut of a follower.
	st, _ = c.PartitionState("t", 0)
	f := st.ISR[0]
	if f == st.Leader {
		f = st.ISR[1]
	}
	must(t, ts, 200, "POST", "/api/brokers/"+itoa(f)+"/stop", nil, &b)
	if b.State != "down" {
		t.Fatalf("after stop: %+v", b)
	}
	must(t, ts, 200, "POST", "/api/brokers/"+itoa(f)+"/restart", nil, nil)
	must(t, ts, 200, "POST", "/api/wait", map[string]any{"condition": "fullyReplicated", "topic": "t"}, nil)
	must(t, ts, 200, "POST", "/api/brokers/"+itoa(f)+"/powercut", nil, &b)
	if b.State != "down" {
		t.Fatalf("after powercut: %+v", b)
	}
	must(t, ts, 200, "POST", "/api/brokers/"+itoa(f)+"/restart", nil, nil)
	must(t, ts, 200, "POST", "/api/wait", map[string]any{"condition": "fullyReplicated", "topic": "t"}, nil)

	must(t, ts, 200, "POST", "/api/cleanlogs", nil, nil)
	// A failed disk is a fault; its DELETE repairs it (the broker may
	// halt meanwhile, at a high-watermark checkpoint).
	must(t, ts, 404, "POST", "/api/brokers/9/faildisk", nil, nil)
	var disk map[string]any
	must(t, ts, 201, "POST", "/api/brokers/"+itoa(f)+"/faildisk", nil, &disk)
	if disk["kind"] != "faildisk" || disk["spec"].(map[string]any)["broker"] != float64(f) {
		t.Fatalf("faildisk: %v", disk)
	}
	must(t, ts, 200, "DELETE", "/api/faults/"+disk["id"].(string), nil, nil)
	must(t, ts, 404, "POST", "/api/brokers/"+itoa(f)+"/logdirs/5/fail", nil, nil)
	var ld map[string]any
	must(t, ts, 201, "POST", "/api/brokers/"+itoa(f)+"/logdirs/0/fail", nil, &ld)
	if ld["kind"] != "faillogdir" || ld["spec"].(map[string]any)["dir"] != float64(0) {
		t.Fatalf("faillogdir: %v", ld)
	}
	must(t, ts, 200, "DELETE", "/api/faults/"+ld["id"].(string), nil, nil)

	// A wait that cannot hold times out with 408.
	must(t, ts, 408, "POST", "/api/wait", map[string]any{"condition": "isrSize", "topic": "t", "size": 5, "timeoutMs": 50}, &res)
	if res["held"] != false {
		t.Errorf("timed-out wait: %v", res)
	}
}

func TestControllerLevers(t *testing.T) {
	c, ts := start(t, kcluster.Controllers(3))
	var ctls []control.Controller
	must(t, ts, 200, "GET", "/api/controllers", nil, &ctls)
	active := c.Controller()
	if len(ctls) != 3 || !slices.ContainsFunc(ctls, func(x control.Controller) bool { return x.ID == active && x.Active && x.State == "running" }) {
		t.Fatalf("controllers: %+v (active %d)", ctls, active)
	}
	must(t, ts, 404, "POST", "/api/controllers/1/kill", nil, nil)
	var ctl control.Controller
	must(t, ts, 200, "POST", "/api/controllers/"+itoa(active)+"/kill", nil, &ctl)
	if ctl.State != "down" || ctl.Active {
		t.Fatalf("after kill: %+v", ctl)
	}
	must(t, ts, 409, "POST", "/api/controllers/"+itoa(active)+"/kill", nil, nil)
	must(t, ts, 200, "POST", "/api/wait", map[string]any{"condition": "controllerElected", "not": []int32{active}}, nil)
	must(t, ts, 200, "POST", "/api/controllers/"+itoa(active)+"/restart", nil, &ctl)
	if ctl.State != "running" {
		t.Fatalf("after restart: %+v", ctl)
	}
}

// waitLeaderMeters waits until broker id's meters satisfy ok.
func waitLeaderMeters(t *testing.T, c *kcluster.Cluster, id int32, ok func(kcluster.BrokerMetrics) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitFor(ctx, func(c *kcluster.Cluster) bool {
		for _, m := range c.BrokerMetrics() {
			if m.Broker == id {
				return ok(m)
			}
		}
		return false
	}); err != nil {
		t.Fatalf("waiting for broker %d's meters: %v", id, err)
	}
}

// Network faults: a cut shrinks the ISR (and the metrics show it), its
// DELETE heals it; the other link levers make and undo faults; bad nodes
// are refused.
func TestNetworkLevers(t *testing.T) {
	c, ts := start(t)
	cl := client(t, c)
	createTopic(t, c, cl, "t", 1, 3)
	st, _ := c.PartitionState("t", 0)
	leader := st.Leader
	follower := st.Replicas[0]
	if follower == leader {
		follower = st.Replicas[1]
	}
	before, _ := metric(scrape(t, ts), "kafka_server_replicamanager_isrshrinks_total", "broker", itoa(leader))

	var f map[string]any
	must(t, ts, 201, "POST", "/api/network/cut", map[string]any{"a": leader, "b": follower}, &f)
	id := f["id"].(string)
	if f["kind"] != "cut" {
		t.Fatalf("fault: %v", f)
	}
	// A follower at the leader's log end stays in sync: give it
	// something to miss.
	p1 := client(t, c, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err := p1.ProduceSync(context.Background(), &kgo.Record{Topic: "t", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	must(t, ts, 200, "POST", "/api/wait", map[string]any{"condition": "isrSize", "topic": "t", "size": 2}, nil)
	// The leader counts the shrink when the controller's answer to its
	// AlterPartition arrives, which can be after the metadata shows it.
	waitLeaderMeters(t, c, leader, func(m kcluster.BrokerMetrics) bool { return m.IsrShrinks >= int64(before)+1 })

	text := scrape(t, ts)
	if v, _ := metric(text, "kafka_server_replicamanager_isrshrinks_total", "broker", itoa(leader)); v != before+1 {
		t.Errorf("isrshrinks_total on the leader: %v, want %v", v, before+1)
	}
	if v, ok := metric(text, "kafka_server_replicamanager_underreplicatedpartitions", "broker", itoa(leader)); !ok || v != 1 {
		t.Errorf("underreplicatedpartitions on the leader: %v %v, want 1", v, ok)
	}
	if v, ok := metric(text, "kafka_cluster_partition_underreplicated", "broker", itoa(leader), "partition", "0", "topic", "t"); !ok || v != 1 {
		t.Errorf("kafka_cluster_partition_underreplicated: %v %v, want 1", v, ok)
	}

	var faults []map[string]any
	must(t, ts, 200, "GET", "/api/faults", nil, &faults)
	if len(faults) != 1 || faults[0]["id"] != id {
		t.Fatalf("faults: %v", faults)
	}
	must(t, ts, 200, "DELETE", "/api/faults/"+id, nil, nil)
	must(t, ts, 404, "DELETE", "/api/faults/"+id, nil, nil)
	must(t, ts, 200, "POST", "/api/wait", map[string]any{"condition": "fullyReplicated", "topic": "t"}, nil)
	waitLeaderMeters(t, c, leader, func(m kcluster.BrokerMetrics) bool { return m.IsrExpands >= 1 })
	if v, _ := metric(scrape(t, ts), "kafka_server_replicamanager_isrexpands_total", "broker", itoa(leader)); v < 1 {
		t.Errorf("isrexpands_total on the leader: %v, want at least 1", v)
	}

	// The other levers make faults that heal undoes.
	must(t, ts, 201, "POST", "/api/network/slow", map[string]any{"a": follower, "b": "client", "delayMs": 5}, nil)
	must(t, ts, 201, "POST", "/api/network/lossy", map[string]any{"a": follower, "b": "controller", "probability": 0.01}, nil)
	must(t, ts, 201, "POST", "/api/network/isolate", map[string]any{"node": follower}, nil)
	must(t, ts, 201, "POST", "/api/network/partition", map[string]any{"groups": [][]any{{leader}, {follower}}}, nil)
	must(t, ts, 200, "GET", "/api/faults", nil, &faults)
	if len(faults) != 4 {
		t.Fatalf("faults: %v", faults)
	}
	must(t, ts, 200, "POST", "/api/network/heal", nil, nil)
	must(t, ts, 200, "GET", "/api/faults", nil, &faults)
	if len(faults) != 0 {
		t.Fatalf("faults after heal: %v", faults)
	}
	must(t, ts, 200, "POST", "/api/wait", map[string]any{"condition": "fullyReplicated", "topic": "t"}, nil)

	// Bad input: refused, and nothing changes.
	for _, bad := range []struct {
		path   string
		body   any
		status int
	}{
		{"/api/network/cut", map[string]any{"a": 1, "b": 99}, 404},
		{"/api/network/cut", map[string]any{"a": 1, "b": 1}, 400},
		{"/api/network/cut", map[string]any{"a": 1}, 400},
		{"/api/network/cut", map[string]any{"a": 1, "b": "nobody"}, 400},
		{"/api/network/cut", map[string]any{"a": 1, "b": 2, "c": 3}, 400},
		{"/api/network/cut", `{"a": 1, "b": 2`, 400},
		{"/api/network/cut", `{"a": 1, "b": 2} {}`, 400},
		{"/api/network/cut", nil, 400},
		{"/api/network/isolate", map[string]any{"node": "client"}, 400},
		{"/api/network/partition", map[string]any{"groups": [][]any{{1, 2}}}, 400},
		{"/api/network/partition", map[string]any{"groups": [][]any{{1, 2}, {2, 3}}}, 400},
		{"/api/network/partition", map[string]any{"groups": [][]any{{1}, {}}}, 400},
		{"/api/network/slow", map[string]any{"a": 1, "b": 2, "delayMs": -1}, 400},
		{"/api/network/slow", map[string]any{"a": 1, "b": 2}, 400},
		{"/api/network/lossy", map[string]any{"a": 1, "b": 2, "probability": 1.5}, 400},
		{"/api/intercepts", map[string]any{"api": "Nope", "error": 6}, 400},
		{"/api/intercepts", map[string]any{"api": "Produce", "error": "NOPE"}, 400},
		{"/api/intercepts", map[string]any{"api": "Produce", "error": 12345}, 400},
		{"/api/intercepts", map[string]any{"api": "Produce"}, 400},
		{"/api/intercepts", map[string]any{"api": "Produce", "drop": true, "close": true}, 400},
		{"/api/intercepts", map[string]any{"broker": 9, "api": "Produce", "drop": true}, 404},
		{"/api/wait", map[string]any{"condition": "nope"}, 400},
		{"/api/wait", map[string]any{"condition": "isrSize", "topic": "t"}, 400},
		{"/api/wait", map[string]any{"condition": "leaderElected"}, 400},
		{"/api/wait", map[string]any{"condition": "fullyReplicated", "topic": "t", "timeoutMs": -5}, 400},
		{"/api/wait", map[string]any{"condition": "brokerState", "broker": 9, "state": "down"}, 404},
		{"/api/wait", map[string]any{"condition": "brokerState", "broker": 1, "state": "sleepy"}, 400},
	} {
		if got := call(t, ts, "POST", bad.path, bad.body, nil); got != bad.status {
			t.Errorf("POST %s %v: %d, want %d", bad.path, bad.body, got, bad.status)
		}
	}
	must(t, ts, 400, "GET", "/api/events?since=-1", nil, nil)
	must(t, ts, 200, "GET", "/api/faults", nil, &faults)
	if len(faults) != 0 {
		t.Fatalf("faults after bad input: %v", faults)
	}
	for _, b := range c.Brokers() {
		if !b.Running || b.Fenced {
			t.Errorf("broker %d after bad input: %+v", b.ID, b)
		}
	}
	if err := c.WaitFor(context.Background(), kcluster.FullyReplicated("t", 0)); err != nil {
		t.Fatal(err)
	}
}

// An intercept answers matching requests with the error code, counts
// them, and goes with its DELETE.
func TestIntercept(t *testing.T) {
	c, ts := start(t)
	cl := client(t, c)
	createTopic(t, c, cl, "t", 1, 3)
	var f map[string]any
	must(t, ts, 201, "POST", "/api/intercepts", map[string]any{"api": "DescribeConfigs", "error": "CLUSTER_AUTHORIZATION_FAILED"}, &f)
	spec := f["spec"].(map[string]any)
	if spec["apiKey"] != float64(32) || spec["errorCode"] != float64(31) || f["hits"] != float64(0) {
		t.Fatalf("intercept: %v", f)
	}
	describe := func() int16 {
		req := kmsg.NewPtrDescribeConfigsRequest()
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType, r.ResourceName = kmsg.ConfigResourceTypeTopic, "t"
		req.Resources = append(req.Resources, r)
		resp, err := req.RequestWith(context.Background(), cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Resources[0].ErrorCode
	}
	if code := describe(); code != 31 {
		t.Fatalf("intercepted DescribeConfigs: error code %d, want 31", code)
	}
	var faults []map[string]any
	must(t, ts, 200, "GET", "/api/faults", nil, &faults)
	if len(faults) != 1 || faults[0]["hits"] != float64(1) {
		t.Fatalf("faults: %v", faults)
	}
	must(t, ts, 200, "DELETE", "/api/faults/"+f["id"].(string), nil, nil)
	if code := describe(); code != 0 {
		t.Fatalf("DescribeConfigs after the intercept's removal: error code %d", code)
	}
}

// The event stream sends what happens, and ends when its request does;
// GET /api/events has the same events.
func TestEventStream(t *testing.T) {
	_, ts := start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/events/stream", nil)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	must(t, ts, 200, "POST", "/api/brokers/2/kill", nil, nil)
	dec := newSSE(resp)
	var seen []control.Event
	for {
		e, err := dec.next()
		if err != nil {
			t.Fatalf("stream: %v after %v", err, seen)
		}
		seen = append(seen, e)
		if e.Kind == "broker down" && e.Broker != nil && *e.Broker == 2 {
			break
		}
	}
	for i, e := range seen {
		if e.Seq != i+1 {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	var all []control.Event
	must(t, ts, 200, "GET", "/api/events", nil, &all)
	if len(all) < len(seen) || all[len(seen)-1].Text != seen[len(seen)-1].Text {
		t.Fatalf("GET /api/events: %v, stream: %v", all, seen)
	}
	var rest []control.Event
	must(t, ts, 200, "GET", "/api/events?since="+itoa(len(seen)), nil, &rest)
	if len(rest) != len(all)-len(seen) {
		t.Fatalf("since %d: %d events of %d", len(seen), len(rest), len(all))
	}
	// Resuming with Last-Event-ID starts after it.
	req2, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/events/stream", nil)
	req2.Header.Set("Last-Event-ID", itoa(len(seen)-1))
	resp2, err := ts.Client().Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	e, err := newSSE(resp2).next()
	if err != nil || e.Seq != len(seen) || e.Text != seen[len(seen)-1].Text {
		t.Fatalf("resumed stream: %+v %v", e, err)
	}
	cancel() // the streams end with their requests (goleak checks)
}

// A stream open when the cluster closes ends.
func TestEventStreamEndsOnClose(t *testing.T) {
	c, err := kcluster.New()
	if err != nil {
		t.Fatal(err)
	}
	h := control.Handler(c)
	rec := newRecorder()
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(rec, mustRequest(t, "GET", "/api/events/stream"))
		close(done)
	}()
	<-rec.wrote
	c.Close()
	<-done
	if !strings.Contains(rec.body(), "broker up") {
		t.Errorf("stream before close: %q", rec.body())
	}
}

// Every route is in the OpenAPI document, and every path and method there
// is a route.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	_, ts := start(t, kcluster.Brokers(1))
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	must(t, ts, 200, "GET", "/api/openapi.json", nil, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	described := map[string]bool{}
	for path, ops := range doc.Paths {
		for m := range ops {
			if m == "parameters" || m == "summary" || m == "description" {
				continue
			}
			described[strings.ToUpper(m)+" "+path] = true
		}
	}
	src, err := os.ReadFile("control.go")
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]bool{}
	for _, m := range regexp.MustCompile(`\{"((?:GET|POST|DELETE|PUT|PATCH) /[^"]*)"`).FindAllStringSubmatch(string(src), -1) {
		registered[m[1]] = true
	}
	if len(registered) < 30 {
		t.Fatalf("found only %d routes in control.go", len(registered))
	}
	for r := range registered {
		if !described[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for d := range described {
		if !registered[d] {
			t.Errorf("openapi.json describes %s, which is not a route", d)
		}
	}
}

// Groups and transactions: a consumer group shows with its members,
// offsets and lag, in the API and in the metrics.
func TestGroupGauges(t *testing.T) {
	c, ts := start(t)
	cl := client(t, c)
	createTopic(t, c, cl, "t", 1, 3)
	for i := range 5 {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "t", Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cons := client(t, c, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("t"), kgo.DisableAutoCommit())
	n := 0
	for n < 2 {
		fs := cons.PollRecords(context.Background(), 2-n)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		n += fs.NumRecords()
	}
	if err := cons.CommitUncommittedOffsets(context.Background()); err != nil {
		t.Fatal(err)
	}
	must(t, ts, 200, "POST", "/api/wait", map[string]any{"condition": "groupCommitted", "group": "g", "topic": "t", "offset": 2}, nil)
	var g control.Group
	must(t, ts, 200, "GET", "/api/groups/g", nil, &g)
	if g.GroupID != "g" || len(g.Members) != 1 || g.Offsets["t"]["0"] != 2 || g.Lag["t"]["0"] != 3 {
		t.Fatalf("group: %+v", g)
	}
	var groups []string
	must(t, ts, 200, "GET", "/api/groups", nil, &groups)
	if !slices.Contains(groups, "g") {
		t.Errorf("groups: %v", groups)
	}
	must(t, ts, 404, "GET", "/api/groups/nope", nil, nil)
	must(t, ts, 404, "GET", "/api/transactions/nope", nil, nil)
	var txns []string
	must(t, ts, 200, "GET", "/api/transactions", nil, &txns)
	text := scrape(t, ts)
	if v, ok := metric(text, "kafka_consumergroup_lag", "consumergroup", "g", "partition", "0", "topic", "t"); !ok || v != 3 {
		t.Errorf("kafka_consumergroup_lag: %v %v, want 3", v, ok)
	}
	if v, ok := metric(text, "kafka_consumergroup_current_offset", "consumergroup", "g", "partition", "0", "topic", "t"); !ok || v != 2 {
		t.Errorf("kafka_consumergroup_current_offset: %v %v, want 2", v, ok)
	}
}

// Metrics: bytes and messages in grow with a produce, request counts per
// API grow, the controller gauges add up.
func TestMetrics(t *testing.T) {
	c, ts := start(t)
	cl := client(t, c)
	createTopic(t, c, cl, "m", 1, 3)
	st, _ := c.PartitionState("m", 0)
	l := itoa(st.Leader)
	text := scrape(t, ts)
	bytesIn, _ := metric(text, "kafka_server_brokertopicmetrics_bytesin_total", "broker", l, "topic", "m")
	msgsIn, _ := metric(text, "kafka_server_brokertopicmetrics_messagesin_total", "broker", l, "topic", "m")
	reqs, _ := metric(text, "kafka_network_requestmetrics_totaltimems_count", "broker", l, "request", "Produce")
	for i := range 3 {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "m", Value: []byte("value-" + itoa(int32(i)))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	text = scrape(t, ts)
	if v, _ := metric(text, "kafka_server_brokertopicmetrics_bytesin_total", "broker", l, "topic", "m"); v <= bytesIn {
		t.Errorf("bytesin_total %v, was %v", v, bytesIn)
	}
	if v, _ := metric(text, "kafka_server_brokertopicmetrics_messagesin_total", "broker", l, "topic", "m"); v != msgsIn+3 {
		t.Errorf("messagesin_total %v, want %v", v, msgsIn+3)
	}
	if v, _ := metric(text, "kafka_network_requestmetrics_totaltimems_count", "broker", l, "request", "Produce"); v < reqs+3 {
		t.Errorf("Produce totaltimems_count %v, want at least %v", v, reqs+3)
	}
	var produced float64
	for v := range 20 {
		n, _ := metric(text, "kafka_network_requestmetrics_requests_total", "broker", l, "request", "Produce", "version", itoa(int32(v)))
		produced += n
	}
	if produced < 3 {
		t.Errorf("requests_total for Produce: %v", produced)
	}
	if _, ok := metric(text, "kafka_network_requestmetrics_totaltimems", "broker", l, "request", "Produce", "quantile", "0.99"); !ok {
		t.Errorf("no 0.99 quantile of Produce's total time")
	}
	if v, _ := metric(text, "kafka_network_requestmetrics_totaltimems_count", "broker", l, "request", "FetchFollower"); v < 1 {
		t.Errorf("FetchFollower totaltimems_count %v", v)
	}
	if v, ok := metric(text, "kafka_controller_kafkacontroller_activecontrollercount", "controller", itoa(c.Controller())); !ok || v != 1 {
		t.Errorf("activecontrollercount: %v %v", v, ok)
	}
	if v, ok := metric(text, "kafka_controller_kafkacontroller_offlinepartitionscount", "controller", itoa(c.Controller())); !ok || v != 0 {
		t.Errorf("offlinepartitionscount: %v %v", v, ok)
	}
	if v, ok := metric(text, "kafka_topic_partition_current_offset", "partition", "0", "topic", "m"); !ok || v != 3 {
		t.Errorf("kafka_topic_partition_current_offset %v %v, want 3", v, ok)
	}
	// A consumer's fetch counts bytes out.
	cons := client(t, c, kgo.ConsumeTopics("m"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for n := 0; n < 3; {
		fs := cons.PollFetches(context.Background())
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		n += fs.NumRecords()
	}
	if v, _ := metric(scrape(t, ts), "kafka_server_brokertopicmetrics_bytesout_total", "broker", l, "topic", "m"); v <= 0 {
		t.Errorf("bytesout_total %v", v)
	}
	// Offline: every replica's broker killed, the controller fences
	// them and the partition has no leader.
	for _, id := range st.Replicas {
		must(t, ts, 200, "POST", "/api/brokers/"+itoa(id)+"/kill", nil, nil)
	}
	if err := c.WaitFor(context.Background(), func(c *kcluster.Cluster) bool {
		p, err := c.PartitionState("m", 0)
		return err == nil && p.Leader < 0
	}); err != nil {
		t.Fatal(err)
	}
	text = scrape(t, ts)
	if v, _ := metric(text, "kafka_controller_kafkacontroller_offlinepartitionscount", "controller", itoa(c.Controller())); v < 1 {
		t.Errorf("offlinepartitionscount %v after every replica was killed", v)
	}
	if v, ok := metric(text, "kafka_brokers"); !ok || v != 0 {
		t.Errorf("kafka_brokers %v %v, want 0", v, ok)
	}
}
