package control

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kcluster/kcluster"
)

// The gauges, as JSON in Kafka's vocabulary.

// Broker is a broker as GET /api/brokers shows it.
type Broker struct {
	ID int32 `json:"id"`
	// State is "running" (up and unfenced), "fenced" (up, but fenced by
	// the controller: starting, cut from it, or shutting down) or "down"
	// (killed, stopped or power-cut).
	State   string `json:"state"`
	Addr    string `json:"addr"`
	Running bool   `json:"running"`
	Fenced  bool   `json:"fenced"`
}

func brokerOf(b kcluster.BrokerState) Broker {
	st := "running"
	switch {
	case !b.Running:
		st = "down"
	case b.Fenced:
		st = "fenced"
	}
	return Broker{ID: b.ID, State: st, Addr: b.Addr, Running: b.Running, Fenced: b.Fenced}
}

func (s *server) brokers() []Broker {
	var out []Broker
	for _, b := range s.c.Brokers() {
		out = append(out, brokerOf(b))
	}
	return out
}

func (s *server) broker(id int32) (Broker, error) {
	for _, b := range s.c.Brokers() {
		if b.ID == id {
			return brokerOf(b), nil
		}
	}
	return Broker{}, notFound("no broker %d", id)
}

func (s *server) getBrokers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.brokers())
}

func (s *server) getBroker(w http.ResponseWriter, r *http.Request) {
	id, err := pathInt32(r, "id", "broker")
	if err != nil {
		writeError(w, err)
		return
	}
	b, err := s.broker(id)
	answer(w, b, err)
}

// Controller is a controller node as GET /api/controllers shows it.
type Controller struct {
	ID     int32  `json:"id"`
	State  string `json:"state"` // "running" or "down"
	Active bool   `json:"active"`
	// MetadataOffset is the offset of the last metadata record the
	// controller has committed; -1 while it is down.
	MetadataOffset int64 `json:"metadataOffset"`
}

func (s *server) controllers() []Controller {
	offs := s.c.MetadataOffsets()
	active := s.c.Controller()
	var out []Controller
	for _, id := range s.c.ControllerIDs() {
		ctl := Controller{ID: id, State: "down", Active: id == active, MetadataOffset: -1}
		if off, ok := offs[id]; ok {
			ctl.State, ctl.MetadataOffset = "running", off
		}
		out = append(out, ctl)
	}
	return out
}

func (s *server) getControllers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.controllers())
}

// getCluster serves GET /api/cluster: the whole picture in one answer.
func (s *server) getCluster(w http.ResponseWriter, r *http.Request) {
	offs := map[string]int64{}
	for id, off := range s.c.MetadataOffsets() {
		offs[strconv.Itoa(int(id))] = off
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"clusterId":         s.c.ClusterID(),
		"bootstrapServers":  strings.Join(s.c.Addrs(), ","),
		"brokers":           s.brokers(),
		"controller":        s.c.Controller(),
		"controllers":       s.controllers(),
		"finalizedFeatures": s.c.FinalizedFeatures(),
		"metadataOffsets":   offs,
		"topics":            s.c.Topics(),
	})
}

// Partition is a partition as GET /api/topics/{topic}/partitions/{p}
// shows it: the controller's committed view and what each running
// replica holds (maps by broker id).
type Partition struct {
	Topic            string           `json:"topic"`
	Partition        int32            `json:"partition"`
	Leader           int32            `json:"leader"`
	LeaderEpoch      int32            `json:"leaderEpoch"`
	Replicas         []int32          `json:"replicas"`
	ISR              []int32          `json:"isr"`
	HighWatermark    int64            `json:"highWatermark"`
	LogStartOffset   int64            `json:"logStartOffset"`
	LastStableOffset int64            `json:"lastStableOffset"`
	LogEndOffsets    map[string]int64 `json:"logEndOffsets"`
	HighWatermarks   map[string]int64 `json:"highWatermarks"`
	LogStartOffsets  map[string]int64 `json:"logStartOffsets"`
	LogSizes         map[string]int64 `json:"logSizes"`
	AddingReplicas   []int32          `json:"addingReplicas"`
	RemovingReplicas []int32          `json:"removingReplicas"`
}

func byBroker(m map[int32]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for id, v := range m {
		out[strconv.Itoa(int(id))] = v
	}
	return out
}

func ids(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return s
}

func partitionOf(st kcluster.PartitionState) Partition {
	return Partition{Topic: st.Topic, Partition: st.Partition, Leader: st.Leader, LeaderEpoch: st.LeaderEpoch,
		Replicas: ids(st.Replicas), ISR: ids(st.ISR), HighWatermark: st.HighWatermark, LogStartOffset: st.LogStartOffset,
		LastStableOffset: st.LastStableOffset, LogEndOffsets: byBroker(st.LogEndOffsets), HighWatermarks: byBroker(st.HighWatermarks),
		LogStartOffsets: byBroker(st.LogStartOffsets), LogSizes: byBroker(st.LogSizes),
		AddingReplicas: ids(st.AddingReplicas), RemovingReplicas: ids(st.RemovingReplicas)}
}

// partitions returns every partition of topic, in order.
func (s *server) partitions(topic string) ([]Partition, error) {
	var out []Partition
	for p := int32(0); ; p++ {
		st, err := s.c.PartitionState(topic, p)
		if err != nil {
			if p == 0 {
				return nil, notFound("no topic %q", topic)
			}
			return out, nil
		}
		out = append(out, partitionOf(st))
	}
}

// Topic is a topic as GET /api/topics lists it.
type Topic struct {
	Name              string `json:"name"`
	PartitionCount    int    `json:"partitionCount"`
	ReplicationFactor int    `json:"replicationFactor"`
}

func (s *server) getTopics(w http.ResponseWriter, r *http.Request) {
	out := []Topic{}
	for _, name := range s.c.Topics() {
		ps, err := s.partitions(name)
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, Topic{Name: name, PartitionCount: len(ps), ReplicationFactor: len(ps[0].Replicas)})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getTopic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	ps, err := s.partitions(name)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "partitionCount": len(ps), "replicationFactor": len(ps[0].Replicas), "partitions": ps})
}

// getTopicConfigs serves GET /api/topics/{topic}/configs: every config by
// Kafka's name, {"value", "source"}.
func (s *server) getTopicConfigs(w http.ResponseWriter, r *http.Request) {
	cfgs, err := s.c.TopicConfigs(r.PathValue("topic"))
	if err != nil {
		writeError(w, err)
		return
	}
	out := make(map[string]map[string]string, len(cfgs))
	for k, v := range cfgs {
		out[k] = map[string]string{"value": v.Value, "source": v.Source}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getPartition(w http.ResponseWriter, r *http.Request) {
	p, err := pathInt32(r, "partition", "partition")
	if err != nil {
		writeError(w, err)
		return
	}
	st, err := s.c.PartitionState(r.PathValue("topic"), p)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, partitionOf(st))
}

func (s *server) getReassignments(w http.ResponseWriter, r *http.Request) {
	out := []Partition{}
	for _, st := range s.c.Reassignments() {
		out = append(out, partitionOf(st))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getGroups(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, nonNil(s.c.Groups()))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Group is a group as GET /api/groups/{group} shows it.
type Group struct {
	GroupID      string   `json:"groupId"`
	Type         string   `json:"type"` // classic or consumer
	State        string   `json:"state"`
	Generation   int32    `json:"generation"` // generation id, or a consumer group's group epoch
	ProtocolType string   `json:"protocolType"`
	Protocol     string   `json:"protocol"`
	Leader       string   `json:"leader"`
	Coordinator  int32    `json:"coordinator"`
	Members      []Member `json:"members"`
	// Offsets and Lag are by topic, then partition.
	Offsets map[string]map[string]int64 `json:"offsets"`
	Lag     map[string]map[string]int64 `json:"lag"`
}

// Member is one member of a group.
type Member struct {
	MemberID        string             `json:"memberId"`
	GroupInstanceID string             `json:"groupInstanceId,omitempty"`
	ClientID        string             `json:"clientId"`
	ClientHost      string             `json:"clientHost"`
	MemberEpoch     int32              `json:"memberEpoch"`
	Assignment      map[string][]int32 `json:"assignment"`
}

func byPartition(m map[string]map[int32]int64) map[string]map[string]int64 {
	out := make(map[string]map[string]int64, len(m))
	for t, ps := range m {
		out[t] = make(map[string]int64, len(ps))
		for p, v := range ps {
			out[t][strconv.Itoa(int(p))] = v
		}
	}
	return out
}

func (s *server) getGroup(w http.ResponseWriter, r *http.Request) {
	g, err := s.c.Group(r.PathValue("group"))
	if err != nil {
		writeError(w, err)
		return
	}
	out := Group{GroupID: g.Group, Type: g.Type, State: g.State, Generation: g.Generation, ProtocolType: g.ProtocolType,
		Protocol: g.Protocol, Leader: g.Leader, Coordinator: g.Coordinator, Members: []Member{},
		Offsets: byPartition(g.Offsets), Lag: byPartition(g.Lag)}
	for _, m := range g.Members {
		a := m.Assigned
		if a == nil {
			a = map[string][]int32{}
		}
		out.Members = append(out.Members, Member{MemberID: m.ID, GroupInstanceID: m.InstanceID, ClientID: m.ClientID,
			ClientHost: m.ClientHost, MemberEpoch: m.Epoch, Assignment: a})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) getTransactions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, nonNil(s.c.Transactions()))
}

// Transaction is a transactional id as GET /api/transactions/{id} shows it.
type Transaction struct {
	TransactionalID      string             `json:"transactionalId"`
	State                string             `json:"state"`
	ProducerID           int64              `json:"producerId"`
	ProducerEpoch        int16              `json:"producerEpoch"`
	TransactionTimeoutMs int64              `json:"transactionTimeoutMs"`
	Coordinator          int32              `json:"coordinator"`
	Partitions           map[string][]int32 `json:"partitions"`
}

func (s *server) getTransaction(w http.ResponseWriter, r *http.Request) {
	t, err := s.c.Transaction(r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	ps := t.Partitions
	if ps == nil {
		ps = map[string][]int32{}
	}
	for k, v := range ps {
		ps[k] = slices.Clone(v)
	}
	writeJSON(w, http.StatusOK, Transaction{TransactionalID: t.TransactionalID, State: t.State, ProducerID: t.ProducerID,
		ProducerEpoch: t.ProducerEpoch, TransactionTimeoutMs: t.Timeout.Milliseconds(), Coordinator: t.Coordinator, Partitions: ps})
}
