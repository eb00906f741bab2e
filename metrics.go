package kcluster

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka's broker meters that only the request path can count, as its
// BrokerTopicStats, RequestMetrics and ReplicaManager's ISR meters do:
// bytes and messages in and out per topic, requests per API and version
// with their total time, ISR shrinks and expands. Each is incremented at
// one place (broker.handle, handleProduce, fetchOnce, alterPartitions) with
// atomics; BrokerMetrics reads them. The gauges Kafka derives from state
// (under-replicated partitions, offline partitions, the active controller)
// come from PartitionState, Brokers and Controller instead.
//
// The meters are kept by broker id for the cluster's lifetime: a restarted
// broker goes on counting where it stopped (a Kafka broker's JVM starts
// from zero; Prometheus' rate() treats either the same).

// meters holds every broker's meters, created on first use.
type meters struct {
	m sync.Map // broker id -> *brokerMeters
}

type brokerMeters struct {
	isrShrinks, isrExpands atomic.Int64
	topics                 sync.Map // topic name -> *topicMeters
	requests               sync.Map // request name -> *requestMeter
}

type topicMeters struct {
	bytesIn, messagesIn, bytesOut          atomic.Int64
	replicationBytesOut, produceRequests   atomic.Int64
	fetchRequests, failedProduce, failedFe atomic.Int64
}

// latencyBounds are the upper bounds of the request-time buckets: 0.1 ms
// doubling to about 105 s, and one more for anything longer.
var latencyBounds = func() []time.Duration {
	out := make([]time.Duration, 21)
	d := 100 * time.Microsecond
	for i := range out {
		out[i] = d
		d *= 2
	}
	return out
}()

type requestMeter struct {
	versions [32]atomic.Int64 // requests by version (Kafka's RequestsPerSec)
	count    atomic.Int64
	nanos    atomic.Int64
	buckets  [22]atomic.Int64 // by latencyBounds, the last for longer
}

func (m *requestMeter) observe(d time.Duration) {
	m.count.Add(1)
	m.nanos.Add(int64(d))
	i, _ := slices.BinarySearch(latencyBounds, d)
	m.buckets[i].Add(1)
}

func (c *Cluster) brokerMeters(id int32) *brokerMeters {
	if bm, ok := c.stats.m.Load(id); ok {
		return bm.(*brokerMeters)
	}
	bm, _ := c.stats.m.LoadOrStore(id, &brokerMeters{})
	return bm.(*brokerMeters)
}

func (bm *brokerMeters) topic(name string) *topicMeters {
	if t, ok := bm.topics.Load(name); ok {
		return t.(*topicMeters)
	}
	t, _ := bm.topics.LoadOrStore(name, &topicMeters{})
	return t.(*topicMeters)
}

func (bm *brokerMeters) request(name string) *requestMeter {
	if m, ok := bm.requests.Load(name); ok {
		return m.(*requestMeter)
	}
	m, _ := bm.requests.LoadOrStore(name, &requestMeter{})
	return m.(*requestMeter)
}

// markRequest counts a request broker id has served and the time it took
// (Kafka's RequestsPerSec and TotalTimeMs): by its API's name, and for
// Fetch also as FetchConsumer or FetchFollower, as Kafka's RequestChannel
// does.
func (c *Cluster) markRequest(id int32, req kmsg.Request, start time.Time) {
	d := time.Since(start)
	bm := c.brokerMeters(id)
	m := bm.request(kmsg.NameForKey(req.Key()))
	if v := req.GetVersion(); v >= 0 && int(v) < len(m.versions) {
		m.versions[v].Add(1)
	}
	m.observe(d)
	if f, ok := req.(*kmsg.FetchRequest); ok {
		name := "FetchConsumer"
		if f.ReplicaID >= 0 || (f.Version >= 15 && f.ReplicaState.ID >= 0) {
			name = "FetchFollower"
		}
		bm.request(name).observe(d)
	}
}

// markProduce counts an append of a produce request to topic on its
// leader id (BytesInPerSec, MessagesInPerSec, TotalProduceRequestsPerSec,
// FailedProduceRequestsPerSec).
func (c *Cluster) markProduce(id int32, topic string, bytes int, messages int64, err error) {
	t := c.brokerMeters(id).topic(topic)
	t.produceRequests.Add(1)
	if err != nil {
		t.failedProduce.Add(1)
		return
	}
	t.bytesIn.Add(int64(bytes))
	t.messagesIn.Add(messages)
}

// markFetch counts the fetch response broker id answers: per topic,
// BytesOutPerSec for consumers and ReplicationBytesOutPerSec for followers
// (as Kafka's updateBytesOut), and the partitions consumers fetched
// (TotalFetchRequestsPerSec, FailedFetchRequestsPerSec).
func (c *Cluster) markFetch(id, follower int32, resp *kmsg.FetchResponse) {
	bm := c.brokerMeters(id)
	for _, rt := range resp.Topics {
		var t *topicMeters
		for _, p := range rt.Partitions {
			if p.ErrorCode == kerr.UnknownTopicOrPartition.Code || p.ErrorCode == kerr.UnknownTopicID.Code {
				continue // no meters for names no topic has
			}
			if t == nil {
				t = bm.topic(rt.Topic)
			}
			n := int64(len(p.RecordBatches))
			if follower >= 0 {
				t.replicationBytesOut.Add(n)
				continue
			}
			t.fetchRequests.Add(1)
			if p.ErrorCode != 0 {
				t.failedFe.Add(1)
			}
			t.bytesOut.Add(n)
		}
	}
}

// isrDeltas tells, for each proposal, whether it removes members of the
// partition's current ISR (a shrink) and whether it adds any (an
// expand), before it is sent.
func isrDeltas(props []isrProposal) [][2]bool {
	out := make([][2]bool, len(props))
	for i, pr := range props {
		pr.r.mu.Lock()
		cur := slices.Clone(pr.r.mu.isr)
		pr.r.mu.Unlock()
		for _, id := range cur {
			if !slices.Contains(pr.isr, id) {
				out[i][0] = true
			}
		}
		for _, id := range pr.isr {
			if !slices.Contains(cur, id) {
				out[i][1] = true
			}
		}
	}
	return out
}

// markISR counts an ISR change broker id's AlterPartition committed
// (IsrShrinksPerSec, IsrExpandsPerSec; Kafka marks them when the
// controller accepts the leader's proposal).
func (c *Cluster) markISR(id int32, delta [2]bool) {
	bm := c.brokerMeters(id)
	if delta[0] {
		bm.isrShrinks.Add(1)
	}
	if delta[1] {
		bm.isrExpands.Add(1)
	}
	if delta[0] || delta[1] {
		// The change itself was an event already, but its answer
		// reaches the leader after the metadata does: wake WaitFor
		// again for conditions on these counters.
		c.notifyEvent()
	}
}

// BrokerMetrics is what one broker has counted since the cluster started,
// under Kafka's metric names: the meters of kafka.server's
// BrokerTopicMetrics and ReplicaManager and kafka.network's
// RequestMetrics, as totals (Kafka's JMX Count attributes).
type BrokerMetrics struct {
	Broker int32
	// IsrShrinks and IsrExpands count the ISR changes this broker, as
	// leader, had committed (ReplicaManager IsrShrinksPerSec,
	// IsrExpandsPerSec).
	IsrShrinks, IsrExpands int64
	// Topics has BrokerTopicMetrics by topic, for every topic the broker
	// served a produce or fetch of.
	Topics map[string]TopicMetrics
	// Requests has RequestMetrics by Kafka's request name ("Produce",
	// "Fetch", "Metadata", ...; fetches also as "FetchConsumer" or
	// "FetchFollower"), for every API the broker served.
	Requests map[string]RequestMetrics
}

// TopicMetrics is one topic's BrokerTopicMetrics on one broker.
type TopicMetrics struct {
	BytesIn    int64 // record batch bytes appended by produce requests (leader)
	MessagesIn int64 // records appended by produce requests (leader)
	BytesOut   int64 // record batch bytes sent to consumers
	// ReplicationBytesOut is the record batch bytes sent to followers.
	ReplicationBytesOut int64
	// TotalProduceRequests and TotalFetchRequests count partitions
	// produced to and fetched by consumers, as Kafka's meters of those
	// names; the Failed ones those answered with an error.
	TotalProduceRequests, FailedProduceRequests int64
	TotalFetchRequests, FailedFetchRequests     int64
}

// RequestMetrics is one API's requests on one broker.
type RequestMetrics struct {
	// Versions counts the requests by version (RequestsPerSec's version
	// tag); Count is their sum. For FetchConsumer and FetchFollower
	// Versions is empty.
	Versions map[int16]int64
	Count    int64
	// TotalTime is the sum of the requests' total times (TotalTimeMs:
	// from decoding to the response, waits included).
	TotalTime time.Duration
	// Buckets counts the requests by total time: Buckets[i] those at or
	// under Bounds[i] (and over the one before); the last, past the
	// last bound, those over it.
	Bounds  []time.Duration
	Buckets []int64
}

// BrokerMetrics returns every broker's meters (brokers that have counted
// nothing yet too), in id order. Metrics served by package control read
// them.
func (c *Cluster) BrokerMetrics() []BrokerMetrics {
	c.mustEmbed("BrokerMetrics")
	out := make([]BrokerMetrics, len(c.ports))
	for i := range out {
		id := int32(i + 1)
		bm := c.brokerMeters(id)
		m := BrokerMetrics{Broker: id, IsrShrinks: bm.isrShrinks.Load(), IsrExpands: bm.isrExpands.Load(),
			Topics: map[string]TopicMetrics{}, Requests: map[string]RequestMetrics{}}
		bm.topics.Range(func(k, v any) bool {
			t := v.(*topicMeters)
			m.Topics[k.(string)] = TopicMetrics{BytesIn: t.bytesIn.Load(), MessagesIn: t.messagesIn.Load(), BytesOut: t.bytesOut.Load(),
				ReplicationBytesOut: t.replicationBytesOut.Load(), TotalProduceRequests: t.produceRequests.Load(),
				FailedProduceRequests: t.failedProduce.Load(), TotalFetchRequests: t.fetchRequests.Load(), FailedFetchRequests: t.failedFe.Load()}
			return true
		})
		bm.requests.Range(func(k, v any) bool {
			r := v.(*requestMeter)
			rm := RequestMetrics{Versions: map[int16]int64{}, Count: r.count.Load(), TotalTime: time.Duration(r.nanos.Load()),
				Bounds: slices.Clone(latencyBounds), Buckets: make([]int64, len(r.buckets))}
			for v := range r.versions {
				if n := r.versions[v].Load(); n > 0 {
					rm.Versions[int16(v)] = n
				}
			}
			for i := range r.buckets {
				rm.Buckets[i] = r.buckets[i].Load()
			}
			m.Requests[k.(string)] = rm
			return true
		})
		out[i] = m
	}
	return out
}

// EventsSince returns the events after the first n, oldest first: what a
// reader that has seen n events has not. Events()[n:] without copying the
// ones before.
func (c *Cluster) EventsSince(n int) []Event {
	c.mustEmbed("EventsSince")
	c.evlog.mu.Lock()
	defer c.evlog.mu.Unlock()
	if n < 0 {
		n = 0
	}
	if n >= len(c.evlog.events) {
		return nil
	}
	return slices.Clone(c.evlog.events[n:])
}
