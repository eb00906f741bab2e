package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster"
)

// The levers: brokers, controllers, the network, storage, interception.

// brokerLever serves POST /api/brokers/{id}/{kill,stop,restart,powercut}:
// it answers with the broker's state after the lever.
func (s *server) brokerLever(lever func(*kcluster.Cluster, int32) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathInt32(r, "id", "broker")
		if err == nil {
			err = lever(s.c, id)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		b, err := s.broker(id)
		answer(w, b, err)
	}
}

// controllerLever serves POST /api/controllers/{id}/{kill,restart}.
func (s *server) controllerLever(lever func(*kcluster.Cluster, int32) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathInt32(r, "id", "controller")
		if err == nil {
			err = lever(s.c, id)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		for _, ctl := range s.controllers() {
			if ctl.ID == id {
				writeJSON(w, http.StatusOK, ctl)
				return
			}
		}
		writeError(w, notFound("no controller %d", id))
	}
}

// fault is an undoable fault made through the API.
type fault struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // cut, isolate, partition, slow, lossy, faildisk, faillogdir, intercept
	// Spec is what made it: the request's body, or the broker of a
	// failed disk.
	Spec any `json:"spec"`
	// Hits counts the requests an intercept acted on.
	Hits    *atomic.Int64 `json:"-"`
	Created time.Time     `json:"created"`
	undo    func()
}

// MarshalJSON adds hits to an intercept.
func (f *fault) MarshalJSON() ([]byte, error) {
	type plain fault
	v := struct {
		*plain
		Hits *int64 `json:"hits,omitempty"`
	}{plain: (*plain)(f)}
	if f.Hits != nil {
		n := f.Hits.Load()
		v.Hits = &n
	}
	return json.Marshal(v)
}

// network reports whether Heal undoes the fault.
func (f *fault) network() bool {
	switch f.Kind {
	case "cut", "isolate", "partition", "slow", "lossy":
		return true
	}
	return false
}

// addFault records an undoable fault and answers with it (201).
func (s *server) addFault(w http.ResponseWriter, kind string, spec any, undo func(), hits *atomic.Int64) {
	s.faults.Lock()
	s.faults.next++
	f := &fault{ID: strconv.Itoa(s.faults.next), Kind: kind, Spec: spec, Hits: hits, Created: time.Now(), undo: undo}
	s.faults.m[f.ID] = f
	s.faults.Unlock()
	writeJSON(w, http.StatusCreated, f)
}

// getFaults serves GET /api/faults: the faults in place, oldest first.
func (s *server) getFaults(w http.ResponseWriter, r *http.Request) {
	s.faults.Lock()
	out := make([]*fault, 0, len(s.faults.m))
	for _, f := range s.faults.m {
		out = append(out, f)
	}
	s.faults.Unlock()
	slices.SortFunc(out, func(a, b *fault) int {
		x, _ := strconv.Atoi(a.ID)
		y, _ := strconv.Atoi(b.ID)
		return x - y
	})
	writeJSON(w, http.StatusOK, out)
}

// deleteFault serves DELETE /api/faults/{id}: it undoes the fault.
func (s *server) deleteFault(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.faults.Lock()
	f := s.faults.m[id]
	delete(s.faults.m, id)
	s.faults.Unlock()
	if f == nil {
		writeError(w, notFound("no fault %q", id))
		return
	}
	f.undo()
	writeJSON(w, http.StatusOK, f)
}

// heal serves POST /api/network/heal: Cluster.Heal, which undoes every
// cut, isolation, partition, slow and lossy link (made here or in Go).
func (s *server) heal(w http.ResponseWriter, r *http.Request) {
	s.c.Heal()
	s.faults.Lock()
	var healed []*fault
	for id, f := range s.faults.m {
		if f.network() {
			healed = append(healed, f)
			delete(s.faults.m, id)
		}
	}
	s.faults.Unlock()
	writeJSON(w, http.StatusOK, map[string]int{"healed": len(healed)})
}

// node is a node of a link: a broker or controller id, "client" (every
// Kafka client) or "controller" (the active controller when the lever
// acts).
type node struct {
	raw json.RawMessage
}

func (n *node) UnmarshalJSON(b []byte) error {
	n.raw = slices.Clone(b)
	return nil
}

func (n node) MarshalJSON() ([]byte, error) {
	if n.raw == nil {
		return []byte("null"), nil
	}
	return n.raw, nil
}

// resolve returns the node's id, or an error (400 for what is not a node
// reference, 404 for a node the cluster does not have).
func (s *server) resolve(n node) (int32, error) {
	raw := bytes.TrimSpace(n.raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, badRequest("a node is required: a broker or controller id, \"client\" or \"controller\"")
	}
	var name string
	if json.Unmarshal(raw, &name) == nil {
		switch name {
		case "client":
			return kcluster.Client, nil
		case "controller":
			id := s.c.Controller()
			if id < 0 {
				return 0, &httpError{http.StatusConflict, errors.New("no active controller")}
			}
			return id, nil
		}
		return 0, badRequest("node %q: want a node id, \"client\" or \"controller\"", name)
	}
	var id int32
	if err := json.Unmarshal(raw, &id); err != nil {
		return 0, badRequest("node %s: want a node id, \"client\" or \"controller\"", raw)
	}
	for _, b := range s.c.Brokers() {
		if b.ID == id {
			return id, nil
		}
	}
	if slices.Contains(s.c.ControllerIDs(), id) {
		return id, nil
	}
	return 0, notFound("no node %d", id)
}

// link resolves the two ends of a link.
func (s *server) link(a, b node) (int32, int32, error) {
	x, err := s.resolve(a)
	if err != nil {
		return 0, 0, err
	}
	y, err := s.resolve(b)
	if err != nil {
		return 0, 0, err
	}
	if x == y {
		return 0, 0, badRequest("a link needs two different nodes, got %d twice", x)
	}
	return x, y, nil
}

type linkSpec struct {
	A node `json:"a"`
	B node `json:"b"`
}

// cut serves POST /api/network/cut {"a": 1, "b": 2}.
func (s *server) cut(w http.ResponseWriter, r *http.Request) {
	var spec linkSpec
	if err := decode(r, &spec, false); err != nil {
		writeError(w, err)
		return
	}
	a, b, err := s.link(spec.A, spec.B)
	if err != nil {
		writeError(w, err)
		return
	}
	s.addFault(w, "cut", map[string]int32{"a": a, "b": b}, s.c.Cut(a, b), nil)
}

// isolate serves POST /api/network/isolate {"node": 3}.
func (s *server) isolate(w http.ResponseWriter, r *http.Request) {
	var spec struct {
		Node node `json:"node"`
	}
	if err := decode(r, &spec, false); err != nil {
		writeError(w, err)
		return
	}
	id, err := s.resolve(spec.Node)
	if err == nil && id == kcluster.Client {
		err = badRequest("isolate a broker or a controller, not the clients")
	}
	if err != nil {
		writeError(w, err)
		return
	}
	s.addFault(w, "isolate", map[string]int32{"node": id}, s.c.Isolate(id), nil)
}

// partition serves POST /api/network/partition {"groups": [[1], [2, 3]]}.
func (s *server) partition(w http.ResponseWriter, r *http.Request) {
	var spec struct {
		Groups [][]node `json:"groups"`
	}
	if err := decode(r, &spec, false); err != nil {
		writeError(w, err)
		return
	}
	if len(spec.Groups) < 2 {
		writeError(w, badRequest("a partition needs at least two groups"))
		return
	}
	groups := make([][]int32, len(spec.Groups))
	seen := map[int32]bool{}
	for i, g := range spec.Groups {
		if len(g) == 0 {
			writeError(w, badRequest("group %d is empty", i))
			return
		}
		for _, n := range g {
			id, err := s.resolve(n)
			if err != nil {
				writeError(w, err)
				return
			}
			if seen[id] {
				writeError(w, badRequest("node %d is in two groups", id))
				return
			}
			seen[id] = true
			groups[i] = append(groups[i], id)
		}
	}
	s.addFault(w, "partition", map[string][][]int32{"groups": groups}, s.c.Partition(groups...), nil)
}

// slow serves POST /api/network/slow {"a": 1, "b": 2, "delayMs": 20}.
func (s *server) slow(w http.ResponseWriter, r *http.Request) {
	var spec struct {
		linkSpec
		DelayMs float64 `json:"delayMs"`
	}
	if err := decode(r, &spec, false); err != nil {
		writeError(w, err)
		return
	}
	a, b, err := s.link(spec.A, spec.B)
	if err == nil && (!(spec.DelayMs > 0) || spec.DelayMs > 600_000) {
		err = badRequest("delayMs must be above 0 and at most 600000, got %v", spec.DelayMs)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	d := time.Duration(spec.DelayMs * float64(time.Millisecond))
	s.addFault(w, "slow", map[string]any{"a": a, "b": b, "delayMs": spec.DelayMs}, s.c.SlowLink(a, b, d), nil)
}

// lossy serves POST /api/network/lossy {"a": 1, "b": "client",
// "probability": 0.1}.
func (s *server) lossy(w http.ResponseWriter, r *http.Request) {
	var spec struct {
		linkSpec
		Probability float64 `json:"probability"`
	}
	if err := decode(r, &spec, false); err != nil {
		writeError(w, err)
		return
	}
	a, b, err := s.link(spec.A, spec.B)
	if err == nil && (!(spec.Probability > 0) || spec.Probability > 1) {
		err = badRequest("probability must be above 0 and at most 1, got %v", spec.Probability)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	s.addFault(w, "lossy", map[string]any{"a": a, "b": b, "probability": spec.Probability}, s.c.Drop(a, b, spec.Probability), nil)
}

// failDisk serves POST /api/brokers/{id}/faildisk: the fault's undo
// repairs the disk.
func (s *server) failDisk(w http.ResponseWriter, r *http.Request) {
	id, err := pathInt32(r, "id", "broker")
	if err != nil {
		writeError(w, err)
		return
	}
	repair, err := s.c.FailDisk(id)
	if err != nil {
		writeError(w, err)
		return
	}
	s.addFault(w, "faildisk", map[string]int32{"broker": id}, repair, nil)
}

// failLogDir serves POST /api/brokers/{id}/logdirs/{dir}/fail: one log
// dir of the broker fails (LogDirs); the fault's undo repairs it.
func (s *server) failLogDir(w http.ResponseWriter, r *http.Request) {
	id, err := pathInt32(r, "id", "broker")
	if err != nil {
		writeError(w, err)
		return
	}
	dir, err := pathInt32(r, "dir", "log dir")
	if err != nil {
		writeError(w, err)
		return
	}
	repair, err := s.c.FailLogDir(id, int(dir))
	if err != nil {
		writeError(w, err)
		return
	}
	s.addFault(w, "faillogdir", map[string]int32{"broker": id, "dir": dir}, repair, nil)
}

// interceptSpec is the body of POST /api/intercepts.
type interceptSpec struct {
	// Broker is the broker whose requests are intercepted; 0 for every
	// broker.
	Broker int32 `json:"broker"`
	// API is the request's API: its Kafka name ("Produce") or key (0);
	// omitted or -1 for every API.
	API json.RawMessage `json:"api,omitempty"`
	// Error is the error code to answer with: Kafka's name
	// ("NOT_LEADER_OR_FOLLOWER") or its code (6).
	Error   json.RawMessage `json:"error,omitempty"`
	DelayMs float64         `json:"delayMs,omitempty"`
	Drop    bool            `json:"drop,omitempty"`
	Close   bool            `json:"close,omitempty"`
	// Once removes the intercept after the first request it acts on.
	Once bool `json:"once,omitempty"`
}

// intercept serves POST /api/intercepts: Cluster.Intercept with an Action
// that answers every matching request with an error code, delays it,
// drops it or closes its connection.
func (s *server) intercept(w http.ResponseWriter, r *http.Request) {
	var spec interceptSpec
	if err := decode(r, &spec, false); err != nil {
		writeError(w, err)
		return
	}
	key, err := apiKey(spec.API)
	if err != nil {
		writeError(w, err)
		return
	}
	code, err := errorCode(spec.Error)
	if err != nil {
		writeError(w, err)
		return
	}
	if spec.Broker != 0 {
		if _, err := s.broker(spec.Broker); err != nil {
			writeError(w, err)
			return
		}
	}
	if spec.DelayMs < 0 || spec.DelayMs > 600_000 || math.IsNaN(spec.DelayMs) {
		writeError(w, badRequest("delayMs must be 0 to 600000, got %v", spec.DelayMs))
		return
	}
	acts := 0
	for _, b := range []bool{code != 0, spec.Drop, spec.Close} {
		if b {
			acts++
		}
	}
	if acts > 1 {
		writeError(w, badRequest("choose one of error, drop and close"))
		return
	}
	if acts == 0 && spec.DelayMs == 0 {
		writeError(w, badRequest("an intercept needs error, delayMs, drop or close"))
		return
	}
	action := kcluster.Action{ErrorCode: code, Drop: spec.Drop, Close: spec.Close,
		Delay: time.Duration(spec.DelayMs * float64(time.Millisecond))}
	hits := new(atomic.Int64)
	hook := func(kcluster.Intercepted) kcluster.Action {
		hits.Add(1)
		return action
	}
	var remove func()
	if spec.Once {
		remove = s.c.InterceptOnce(spec.Broker, key, hook)
	} else {
		remove = s.c.Intercept(spec.Broker, key, hook)
	}
	out := map[string]any{"broker": spec.Broker, "apiKey": key, "once": spec.Once}
	if key >= 0 {
		out["api"] = kmsg.NameForKey(key)
	}
	if code != 0 {
		out["errorCode"] = code
		out["error"] = kerr.TypedErrorForCode(code).Message
	}
	if spec.DelayMs > 0 {
		out["delayMs"] = spec.DelayMs
	}
	if spec.Drop {
		out["drop"] = true
	}
	if spec.Close {
		out["close"] = true
	}
	s.addFault(w, "intercept", out, remove, hits)
}

// apiKey parses an API by Kafka's name or key; none is -1 (every API).
func apiKey(raw json.RawMessage) (int16, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return -1, nil
	}
	var name string
	if json.Unmarshal(raw, &name) == nil {
		for k := int16(0); k <= kmsg.MaxKey; k++ {
			if strings.EqualFold(kmsg.NameForKey(k), name) {
				return k, nil
			}
		}
		return 0, badRequest("unknown API %q", name)
	}
	var k int16
	if err := json.Unmarshal(raw, &k); err != nil {
		return 0, badRequest("api %s: want a Kafka API name or key", raw)
	}
	if k == -1 {
		return -1, nil
	}
	if k < 0 || k > kmsg.MaxKey || kmsg.NameForKey(k) == "Unknown" {
		return 0, badRequest("unknown API key %d", k)
	}
	return k, nil
}

// errorCode parses an error by Kafka's name or code; none is 0.
func errorCode(raw json.RawMessage) (int16, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var name string
	if json.Unmarshal(raw, &name) == nil {
		// NOT_LEADER_FOR_PARTITION is kerr's name for Kafka's
		// NOT_LEADER_OR_FOLLOWER (code 6).
		if name == "NOT_LEADER_OR_FOLLOWER" {
			return kerr.NotLeaderForPartition.Code, nil
		}
		for code := int16(-1); code < 1000; code++ {
			if e := kerr.TypedErrorForCode(code); e != nil && e.Message == name && (code == -1 || e != kerr.UnknownServerError) {
				return code, nil
			}
		}
		return 0, badRequest("unknown Kafka error %q", name)
	}
	var code int16
	if err := json.Unmarshal(raw, &code); err != nil {
		return 0, badRequest("error %s: want a Kafka error name or code", raw)
	}
	if code == 0 || (code != -1 && kerr.TypedErrorForCode(code) == kerr.UnknownServerError) {
		return 0, badRequest("unknown Kafka error code %d", code)
	}
	return code, nil
}

// cleanLogs serves POST /api/cleanlogs: Cluster.CleanLogs.
func (s *server) cleanLogs(w http.ResponseWriter, r *http.Request) {
	if err := s.c.CleanLogs(); err != nil {
		writeError(w, fmt.Errorf("cleaning logs: %w", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"cleaned": true})
}
