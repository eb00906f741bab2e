package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/kcluster/kcluster"
)

// Events: the timeline as JSON, as a Server-Sent Events stream, and waits
// on conditions.

// Event is a cluster event as JSON: seq (1 for the first event), time,
// kind (Kafka's words: "leader changed", "ISR changed", "broker fenced",
// ...) and the fields of its kind.
type Event struct {
	Seq         int       `json:"seq"`
	Time        time.Time `json:"time"`
	Kind        string    `json:"kind"`
	Broker      *int32    `json:"broker,omitempty"`
	Topic       string    `json:"topic,omitempty"`
	Partition   *int32    `json:"partition,omitempty"`
	Leader      *int32    `json:"leader,omitempty"`
	LeaderEpoch *int32    `json:"leaderEpoch,omitempty"`
	ISR         []int32   `json:"isr,omitempty"`
	Replicas    []int32   `json:"replicas,omitempty"`
	Config      string    `json:"config,omitempty"`
	Controller  *int32    `json:"controller,omitempty"`
	// LogDir and DirectoryID are a log dir's path and id (log dir
	// offline, log dir online).
	LogDir      string `json:"logDir,omitempty"`
	DirectoryID string `json:"directoryId,omitempty"`
	// Text is the event on one line, as Event.String renders it.
	Text string `json:"text"`
}

func ptr[T any](v T) *T { return &v }

// eventOf renders event seq with the fields its kind has.
func eventOf(seq int, e kcluster.Event) Event {
	out := Event{Seq: seq, Time: e.Time, Kind: string(e.Kind), Text: e.String()}
	part := func() { out.Topic, out.Partition = e.Topic, ptr(e.Partition) }
	switch e.Kind {
	case kcluster.BrokerUp, kcluster.BrokerDown, kcluster.BrokerFenced, kcluster.BrokerUnfenced, kcluster.LogDirFailed:
		out.Broker = ptr(e.Broker)
	case kcluster.LeaderChanged:
		part()
		out.Leader, out.LeaderEpoch = ptr(e.Leader), ptr(e.LeaderEpoch)
	case kcluster.ISRChanged:
		part()
		out.ISR = ids(e.ISR)
	case kcluster.ReplicasChanged:
		part()
		out.Replicas = ids(e.Replicas)
	case kcluster.TopicCreated, kcluster.TopicDeleted:
		out.Topic = e.Topic
	case kcluster.ConfigChanged:
		out.Config = e.Config
		if e.Topic != "" {
			out.Topic = e.Topic
		} else {
			out.Broker = ptr(e.Broker)
		}
	case kcluster.ControllerChanged, kcluster.ControllerUp, kcluster.ControllerDown:
		out.Controller = ptr(e.Controller)
	case kcluster.LogDirOffline, kcluster.LogDirOnline:
		out.Broker = ptr(e.Broker)
		out.LogDir, out.DirectoryID = e.LogDir, e.DirectoryID
	default:
		// A kind this package does not know yet: every field set.
		if e.Broker != 0 {
			out.Broker = ptr(e.Broker)
		}
		if e.Topic != "" {
			part()
		}
		out.ISR, out.Replicas, out.Config = slices.Clone(e.ISR), slices.Clone(e.Replicas), e.Config
		if e.Controller != 0 {
			out.Controller = ptr(e.Controller)
		}
	}
	return out
}

// since reads where a reader of events stands: the Last-Event-ID header
// of a reconnecting EventSource, or ?since=n (events already seen).
func since(r *http.Request) (int, error) {
	v := r.Header.Get("Last-Event-ID")
	if q := r.URL.Query().Get("since"); q != "" {
		v = q
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, badRequest("since %q: want the number of events already seen", v)
	}
	return n, nil
}

// getEvents serves GET /api/events?since=n: the events after the first n.
func (s *server) getEvents(w http.ResponseWriter, r *http.Request) {
	n, err := since(r)
	if err != nil {
		writeError(w, err)
		return
	}
	out := []Event{}
	for i, e := range s.c.EventsSince(n) {
		out = append(out, eventOf(n+i+1, e))
	}
	writeJSON(w, http.StatusOK, out)
}

// keepAlive is how long an idle event stream waits before a comment line,
// which keeps proxies and browsers from timing it out.
const keepAlive = 15 * time.Second

// streamEvents serves GET /api/events/stream: Server-Sent Events, one
// per cluster event ("id: seq", "data: {event}"), from the first (or
// after ?since=n, or the Last-Event-ID a reconnecting EventSource sends),
// until the client goes or the cluster closes.
func (s *server) streamEvents(w http.ResponseWriter, r *http.Request) {
	n, err := since(r)
	if err != nil {
		writeError(w, err)
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, ": kcluster events\n\n"); err != nil {
		return
	}
	rc.Flush()
	ctx := r.Context()
	for {
		for _, e := range s.c.EventsSince(n) {
			n++
			b, _ := json.Marshal(eventOf(n, e))
			if _, err := fmt.Fprintf(w, "id: %d\ndata: %s\n\n", n, b); err != nil {
				return
			}
		}
		if rc.Flush() != nil {
			return
		}
		wctx, cancel := context.WithTimeout(ctx, keepAlive)
		seen := n
		err := s.c.WaitFor(wctx, func(c *kcluster.Cluster) bool { return len(c.EventsSince(seen)) > 0 })
		cancel()
		switch {
		case err == nil:
		case ctx.Err() != nil, errors.Is(err, kcluster.ErrClosed):
			return
		default: // idle
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		}
	}
}

// waitSpec is the body of POST /api/wait: a condition by name, its
// arguments, and how long to wait.
type waitSpec struct {
	Condition string  `json:"condition"`
	Topic     string  `json:"topic,omitempty"`
	Partition int32   `json:"partition,omitempty"`
	Not       []int32 `json:"not,omitempty"`
	Size      *int    `json:"size,omitempty"`
	Offset    *int64  `json:"offset,omitempty"`
	Group     string  `json:"group,omitempty"`
	Members   *int    `json:"members,omitempty"`
	ID        string  `json:"transactionalId,omitempty"`
	Broker    int32   `json:"broker,omitempty"`
	State     string  `json:"state,omitempty"`
	TimeoutMs *int64  `json:"timeoutMs,omitempty"`
}

// defaultWait and maxWait bound a wait.
const (
	defaultWait = 30 * time.Second
	maxWait     = 10 * time.Minute
)

// condition builds the Condition a wait names, checking its arguments.
func (s *server) condition(w waitSpec) (kcluster.Condition, error) {
	needTopic := func() error {
		if w.Topic == "" {
			return badRequest("condition %s needs topic (and partition, default 0)", w.Condition)
		}
		if w.Partition < 0 {
			return badRequest("partition %d is negative", w.Partition)
		}
		return nil
	}
	switch w.Condition {
	case "leaderElected":
		if err := needTopic(); err != nil {
			return nil, err
		}
		return kcluster.LeaderElected(w.Topic, w.Partition, w.Not...), nil
	case "isrSize":
		if err := needTopic(); err != nil {
			return nil, err
		}
		if w.Size == nil || *w.Size < 0 {
			return nil, badRequest("condition isrSize needs size >= 0")
		}
		return kcluster.ISRSize(w.Topic, w.Partition, *w.Size), nil
	case "fullyReplicated":
		if err := needTopic(); err != nil {
			return nil, err
		}
		return kcluster.FullyReplicated(w.Topic, w.Partition), nil
	case "partitionStable":
		if err := needTopic(); err != nil {
			return nil, err
		}
		return kcluster.PartitionStable(w.Topic, w.Partition), nil
	case "highWatermarkAtLeast":
		if err := needTopic(); err != nil {
			return nil, err
		}
		if w.Offset == nil {
			return nil, badRequest("condition highWatermarkAtLeast needs offset")
		}
		return kcluster.HighWatermarkAtLeast(w.Topic, w.Partition, *w.Offset), nil
	case "groupStable":
		if w.Group == "" || w.Members == nil || *w.Members < 0 {
			return nil, badRequest("condition groupStable needs group and members")
		}
		return kcluster.GroupStable(w.Group, *w.Members), nil
	case "groupCommitted":
		if err := needTopic(); err != nil {
			return nil, err
		}
		if w.Group == "" || w.Offset == nil {
			return nil, badRequest("condition groupCommitted needs group, topic, partition and offset")
		}
		return kcluster.GroupCommitted(w.Group, w.Topic, w.Partition, *w.Offset), nil
	case "transactionSettled":
		if w.ID == "" {
			return nil, badRequest("condition transactionSettled needs transactionalId")
		}
		return kcluster.TransactionSettled(w.ID), nil
	case "brokerState":
		if _, err := s.broker(w.Broker); err != nil {
			return nil, err
		}
		switch w.State {
		case "running", "fenced", "down":
		default:
			return nil, badRequest("condition brokerState needs state running, fenced or down, got %q", w.State)
		}
		return func(c *kcluster.Cluster) bool {
			b, err := s.broker(w.Broker)
			return err == nil && b.State == w.State
		}, nil
	case "controllerElected":
		return func(c *kcluster.Cluster) bool {
			id := c.Controller()
			return id >= 0 && !slices.Contains(w.Not, id)
		}, nil
	case "":
		return nil, badRequest("a condition is required")
	}
	return nil, badRequest("unknown condition %q", w.Condition)
}

// wait serves POST /api/wait: it answers 200 once the condition holds
// (checked on every cluster event, as Cluster.WaitFor), 408 if it does
// not within timeoutMs (default 30000).
func (s *server) wait(w http.ResponseWriter, r *http.Request) {
	var spec waitSpec
	if err := decode(r, &spec, false); err != nil {
		writeError(w, err)
		return
	}
	cond, err := s.condition(spec)
	if err != nil {
		writeError(w, err)
		return
	}
	timeout := defaultWait
	if spec.TimeoutMs != nil {
		if *spec.TimeoutMs <= 0 || time.Duration(*spec.TimeoutMs)*time.Millisecond > maxWait {
			writeError(w, badRequest("timeoutMs must be above 0 and at most %d", maxWait.Milliseconds()))
			return
		}
		timeout = time.Duration(*spec.TimeoutMs) * time.Millisecond
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	err = s.c.WaitFor(ctx, cond)
	waited := time.Since(start).Milliseconds()
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]any{"condition": spec.Condition, "held": true, "waitedMs": waited})
	case errors.Is(err, kcluster.ErrClosed):
		writeError(w, err)
	case r.Context().Err() != nil:
		// The client went: nobody reads the answer.
	default:
		writeJSON(w, http.StatusRequestTimeout, map[string]any{"condition": spec.Condition, "held": false, "waitedMs": waited,
			"error": fmt.Sprintf("condition %s did not hold within %v", spec.Condition, timeout)})
	}
}
