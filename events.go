package kcluster

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/kcluster/kcluster/metadata"
)

// EventKind names what happened.
type EventKind string

// The kinds of events the cluster records.
const (
	BrokerUp       EventKind = "broker up"       // started or restarted (listening)
	BrokerDown     EventKind = "broker down"     // killed or stopped
	BrokerFenced   EventKind = "broker fenced"   // by the controller: session expired or controlled shutdown
	BrokerUnfenced EventKind = "broker unfenced" // its heartbeat was accepted
	LeaderChanged  EventKind = "leader changed"  // a partition got a new leader (-1: offline)
	ISRChanged     EventKind = "ISR changed"     // a partition's committed ISR changed
	// ELRChanged: a partition's eligible leader replicas (KIP-966) or
	// last known ELR changed.
	ELRChanged   EventKind = "ELR changed"
	TopicCreated EventKind = "topic created"
	TopicDeleted EventKind = "topic deleted"
	// ReplicasChanged: a partition's replicas changed (a reassignment
	// started, completed or was cancelled, or partitions were added).
	ReplicasChanged EventKind = "replicas changed"
	// ConfigChanged: a topic config (Topic) or a broker config (Broker,
	// -1 for the cluster default) was set or deleted; Config is
	// "key=value" or "key" when deleted.
	ConfigChanged EventKind = "config changed"
	// ControllerChanged: the active controller changed (Controller -1:
	// none, while the quorum elects).
	ControllerChanged EventKind = "controller changed"
	ControllerUp      EventKind = "controller up"   // started or restarted
	ControllerDown    EventKind = "controller down" // killed
	// SharePartitionLoaded: a partition's leader (Broker) loaded a share
	// group's (Group) share-partition state, on its first share fetch in
	// its leader epoch.
	SharePartitionLoaded EventKind = "share-partition loaded"
)

// Event is one thing that happened in the cluster, with the time it
// happened (for metadata events, when the controller committed it).
type Event struct {
	Time         time.Time
	Kind         EventKind
	Broker       int32 // broker events
	Topic        string
	Partition    int32
	Leader       int32   // LeaderChanged
	LeaderEpoch  int32   // LeaderChanged
	ISR          []int32 // ISRChanged
	ELR          []int32 // ELRChanged: the ELR after the change
	LastKnownELR []int32 // ELRChanged: the last known ELR after the change
	Replicas     []int32 // ReplicasChanged: the replicas after the change
	Config       string  // ConfigChanged
	Controller   int32   // controller events: the node id
	Group        string  // SharePartitionLoaded
	// LogDir and DirectoryID are the dir of LogDirOffline and
	// LogDirOnline: its path and its directory.id.
	LogDir      string
	DirectoryID string
}

// String renders the event on one line.
func (e Event) String() string {
	ts := e.Time.Format("15:04:05.000")
	switch e.Kind {
	case BrokerUp, BrokerDown, BrokerFenced, BrokerUnfenced, LogDirFailed:
		return fmt.Sprintf("%s %s %d", ts, e.Kind, e.Broker)
	case LogDirOffline, LogDirOnline:
		return fmt.Sprintf("%s %s %d %s (%s)", ts, e.Kind, e.Broker, e.LogDir, e.DirectoryID)
	case LeaderChanged:
		return fmt.Sprintf("%s %s/%d leader %d epoch %d", ts, e.Topic, e.Partition, e.Leader, e.LeaderEpoch)
	case ControllerChanged, ControllerUp, ControllerDown:
		return fmt.Sprintf("%s %s %d", ts, e.Kind, e.Controller)
	case ISRChanged:
		return fmt.Sprintf("%s %s/%d ISR %v", ts, e.Topic, e.Partition, e.ISR)
	case ELRChanged:
		return fmt.Sprintf("%s %s/%d ELR %v last known %v", ts, e.Topic, e.Partition, e.ELR, e.LastKnownELR)
	case SharePartitionLoaded:
		return fmt.Sprintf("%s %s %s/%d group %s broker %d", ts, e.Kind, e.Topic, e.Partition, e.Group, e.Broker)
	case ReplicasChanged:
		return fmt.Sprintf("%s %s/%d replicas %v", ts, e.Topic, e.Partition, e.Replicas)
	case ConfigChanged:
		if e.Topic == "" {
			return fmt.Sprintf("%s %s broker %d %s", ts, e.Kind, e.Broker, e.Config)
		}
		return fmt.Sprintf("%s %s %s %s", ts, e.Kind, e.Topic, e.Config)
	}
	return fmt.Sprintf("%s %s %s", ts, e.Kind, e.Topic)
}

// eventLog keeps every event, in order.
type eventLog struct {
	mu     sync.Mutex
	events []Event
	names  map[metadata.TopicID]string // for TopicDeleted events
	// applied is the last metadata offset turned into events: every
	// controller of a quorum applies every record, and each record makes
	// its events once.
	applied int64
	// controller is the active controller last recorded.
	controller int32
}

// record appends an event, stamping it under the lock so the log is in
// time order.
func (c *Cluster) record(e Event) {
	c.evlog.mu.Lock()
	e.Time = time.Now()
	c.evlog.events = append(c.evlog.events, e)
	c.evlog.mu.Unlock()
}

// Events returns every event so far, oldest first: broker up/down, fencing,
// leader, ISR and ELR changes, topic creation and deletion. A test or an
// experiment prints them as a timeline.
func (c *Cluster) Events() []Event {
	c.mustEmbed("Events")
	c.evlog.mu.Lock()
	defer c.evlog.mu.Unlock()
	return slices.Clone(c.evlog.events)
}

// onMetadata turns committed metadata records into events and wakes
// WaitFor. It runs with a controller's lock held.
func (c *Cluster) onMetadata(es []metadata.Entry, st *metadata.State) {
	c.evlog.mu.Lock()
	for len(es) > 0 && es[0].Offset <= c.evlog.applied {
		es = es[1:]
	}
	if len(es) > 0 {
		c.evlog.applied = es[len(es)-1].Offset
	}
	c.evlog.mu.Unlock()
	for _, e := range es {
		switch r := e.Record.(type) {
		case *metadata.FenceBroker:
			k := BrokerUnfenced
			if r.Fenced {
				k = BrokerFenced
			}
			c.record(Event{Kind: k, Broker: r.ID})
		case *metadata.CreateTopic:
			c.evlog.mu.Lock()
			if c.evlog.names == nil {
				c.evlog.names = make(map[metadata.TopicID]string)
			}
			c.evlog.names[r.ID] = r.Name
			c.evlog.mu.Unlock()
			c.record(Event{Kind: TopicCreated, Topic: r.Name})
		case *metadata.RemoveTopic:
			c.evlog.mu.Lock()
			name := c.evlog.names[r.ID]
			delete(c.evlog.names, r.ID)
			c.evlog.mu.Unlock()
			c.record(Event{Kind: TopicDeleted, Topic: name})
		case *metadata.PartitionChange:
			p := st.Partition(r.TopicID, r.Partition)
			if p == nil {
				continue
			}
			if r.Leader != nil {
				c.record(Event{Kind: LeaderChanged, Topic: p.Topic, Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch})
			}
			if r.ISR != nil {
				c.record(Event{Kind: ISRChanged, Topic: p.Topic, Partition: p.Partition, ISR: slices.Clone(p.ISR)})
			}
			if r.ELR != nil || r.LastKnownELR != nil {
				c.record(Event{Kind: ELRChanged, Topic: p.Topic, Partition: p.Partition, ELR: slices.Clone(p.ELR), LastKnownELR: slices.Clone(p.LastKnownELR)})
			}
			if r.Replicas != nil {
				c.record(Event{Kind: ReplicasChanged, Topic: p.Topic, Partition: p.Partition, Replicas: slices.Clone(p.Replicas)})
			}
		case *metadata.ConfigChange:
			cfg := r.Key
			if r.Value != nil {
				cfg += "=" + *r.Value
			}
			ev := Event{Kind: ConfigChanged, Config: cfg}
			if r.ResourceType == metadata.ResourceTopic {
				ev.Topic = r.Name
			} else if id, err := strconv.Atoi(r.Name); err == nil {
				ev.Broker = int32(id)
			} else {
				ev.Broker = -1
			}
			c.record(ev)
		}
	}
	c.notifyEvent()
}
