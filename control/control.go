// Package control serves a kcluster.Cluster's levers and gauges over HTTP
// as JSON, its events as Server-Sent Events and long-polled waits, and
// Kafka's metrics in Prometheus' text format, so that programs in any
// language can run failover experiments against a cluster: cmd/kcluster
// serves it with -http, and a Go program mounts Handler on its own server.
//
// Every route is described by the OpenAPI document served at
// /api/openapi.json. Resources and fields use Kafka's vocabulary (leader,
// leaderEpoch, isr, highWatermark, logEndOffsets, ...). Errors are JSON,
// {"error": "..."}, with an HTTP status: 400 for a bad body or argument,
// 404 for an unknown broker, controller, topic, partition, group,
// transactional id or fault, 409 when a lever cannot act on the node's
// current state (killing a broker that is down), 408 when a wait times
// out, 503 once the cluster is closed. A refused request changes nothing.
//
// Levers that return an undo in Go (Cut, Isolate, Partition, SlowLink,
// Drop, FailDisk, Intercept) return a fault id here, listed by GET
// /api/faults and undone by DELETE /api/faults/{id}; POST
// /api/network/heal undoes every network fault, as Cluster.Heal.
//
// GET / is a live web console on the same routes: brokers, controllers,
// links, topics and partitions, groups, transactions and the event
// timeline, kept current by the event stream, with the levers as buttons.
package control

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/kcluster/kcluster"
)

// server is one Handler's state: the cluster and the faults it made.
type server struct {
	c   *kcluster.Cluster
	mux *http.ServeMux

	// faults are the undoable faults made through this handler, by id;
	// one lock guards the map and the id counter.
	faults struct {
		sync.Mutex
		next int
		m    map[string]*fault
	}
}

// route is one registered route: its pattern, for the OpenAPI check.
type route struct {
	pattern string
	h       http.HandlerFunc
}

// Handler returns an http.Handler serving c's control API under /api/, its
// metrics at /metrics and the live web console at / (console.go). Each Handler keeps its own faults and
// Prometheus registry; it holds no goroutine of its own, and its event
// streams end when their request does or c is closed.
func Handler(c *kcluster.Cluster) http.Handler {
	s := &server{c: c, mux: http.NewServeMux()}
	s.faults.m = map[string]*fault{}
	for _, r := range s.routes() {
		s.mux.HandleFunc(r.pattern, r.h)
	}
	s.console()
	return s.mux
}

// routes lists every route, in the order of the OpenAPI document.
func (s *server) routes() []route {
	return []route{
		{"GET /api/openapi.json", s.openAPI},
		{"GET /api/cluster", s.getCluster},
		{"GET /api/brokers", s.getBrokers},
		{"GET /api/brokers/{id}", s.getBroker},
		{"POST /api/brokers/{id}/kill", s.brokerLever(func(c *kcluster.Cluster, id int32) error { return c.KillBroker(id) })},
		{"POST /api/brokers/{id}/stop", s.brokerLever(func(c *kcluster.Cluster, id int32) error { return c.StopBroker(id) })},
		{"POST /api/brokers/{id}/restart", s.brokerLever(func(c *kcluster.Cluster, id int32) error { return c.RestartBroker(id) })},
		{"POST /api/brokers/{id}/powercut", s.brokerLever(func(c *kcluster.Cluster, id int32) error { return c.PowerCut(id) })},
		{"POST /api/brokers/{id}/faildisk", s.failDisk},
		{"POST /api/brokers/{id}/logdirs/{dir}/fail", s.failLogDir},
		{"GET /api/controllers", s.getControllers},
		{"POST /api/controllers/{id}/kill", s.controllerLever(func(c *kcluster.Cluster, id int32) error { return c.KillController(id) })},
		{"POST /api/controllers/{id}/restart", s.controllerLever(func(c *kcluster.Cluster, id int32) error { return c.RestartController(id) })},
		{"POST /api/network/cut", s.cut},
		{"POST /api/network/isolate", s.isolate},
		{"POST /api/network/partition", s.partition},
		{"POST /api/network/slow", s.slow},
		{"POST /api/network/lossy", s.lossy},
		{"POST /api/network/heal", s.heal},
		{"POST /api/intercepts", s.intercept},
		{"GET /api/faults", s.getFaults},
		{"DELETE /api/faults/{id}", s.deleteFault},
		{"POST /api/cleanlogs", s.cleanLogs},
		{"GET /api/topics", s.getTopics},
		{"GET /api/topics/{topic}", s.getTopic},
		{"GET /api/topics/{topic}/configs", s.getTopicConfigs},
		{"GET /api/topics/{topic}/partitions/{partition}", s.getPartition},
		{"GET /api/reassignments", s.getReassignments},
		{"GET /api/groups", s.getGroups},
		{"GET /api/groups/{group}", s.getGroup},
		{"GET /api/transactions", s.getTransactions},
		{"GET /api/transactions/{id}", s.getTransaction},
		{"GET /api/events", s.getEvents},
		{"GET /api/events/stream", s.streamEvents},
		{"POST /api/wait", s.wait},
		{"GET /metrics", s.metrics()},
	}
}

// httpError is an error with the HTTP status it answers with.
type httpError struct {
	status int
	err    error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Errorf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &httpError{http.StatusNotFound, fmt.Errorf(format, args...)}
}

// statusOf maps an error of the cluster's levers and gauges to its HTTP
// status.
func statusOf(err error) int {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.Is(err, kcluster.ErrUnknownBroker), errors.Is(err, kcluster.ErrUnknownController),
		errors.Is(err, kcluster.ErrUnknownPartition), errors.Is(err, kcluster.ErrUnknownGroup),
		errors.Is(err, kcluster.ErrUnknownTransaction), errors.Is(err, kcluster.ErrUnknownLogDir):
		return http.StatusNotFound
	case errors.Is(err, kcluster.ErrBrokerDown), errors.Is(err, kcluster.ErrBrokerUp),
		errors.Is(err, kcluster.ErrControllerDown), errors.Is(err, kcluster.ErrControllerUp),
		errors.Is(err, kcluster.ErrPowerCutUnsupported):
		return http.StatusConflict
	case errors.Is(err, kcluster.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeError answers err as {"error": "..."} with its status.
func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, statusOf(err), map[string]string{"error": err.Error()})
}

// answer writes v, or err if it is not nil.
func answer(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// maxBody bounds a request body: every body this API takes is small.
const maxBody = 1 << 20

// decode reads r's JSON body into v, refusing unknown fields and
// trailing data. An empty body leaves v as it is when empty is allowed.
func decode(r *http.Request, v any, empty bool) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return badRequest("reading the body: %v", err)
	}
	if len(body) > maxBody {
		return badRequest("body larger than %d bytes", maxBody)
	}
	if len(body) == 0 {
		if empty {
			return nil
		}
		return badRequest("a JSON body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("bad JSON body: %v", err)
	}
	if dec.More() {
		return badRequest("bad JSON body: data after the value")
	}
	return nil
}

// pathInt32 parses path value name as an int32; what is not one names
// nothing there is (404).
func pathInt32(r *http.Request, name, what string) (int32, error) {
	v := r.PathValue(name)
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, notFound("no %s %q", what, v)
	}
	return int32(n), nil
}

//go:embed openapi.json
var openAPIDoc []byte

// openAPI serves GET /api/openapi.json.
func (s *server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIDoc)
}
