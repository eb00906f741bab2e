package control

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kcluster/kcluster"
)

// Kafka's metrics in Prometheus' text format, under the names Prometheus'
// JMX exporter gives Kafka's MBeans with its example Kafka rules
// (lowercased: kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions
// is kafka_server_replicamanager_underreplicatedpartitions; a meter's
// Count, kafka.server:type=BrokerTopicMetrics,name=BytesInPerSec,topic=t,
// is kafka_server_brokertopicmetrics_bytesin_total{topic="t"}; a
// histogram, kafka.network:type=RequestMetrics,name=TotalTimeMs,request=r,
// is kafka_network_requestmetrics_totaltimems{request="r",quantile="0.99"}
// with _count). A JMX exporter runs in each broker's JVM and Prometheus
// tells them apart by instance; here one endpoint serves every node, so
// broker metrics carry a broker label and controller metrics a controller
// label. Consumer lag, which Kafka's brokers do not export, is named as
// the most used exporter (kafka_exporter) names it: kafka_consumergroup_lag.
//
// Everything is read from the cluster on each scrape (a collector, not
// metrics updated in the background), through a registry of the
// handler's own.

// collector is a prometheus.Collector over a cluster.
type collector struct{ c *kcluster.Cluster }

func (s *server) metrics() http.HandlerFunc {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{s.c})
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError})
	return h.ServeHTTP
}

type metricDef struct {
	name, help string
	typ        prometheus.ValueType
	labels     []string
}

func (m metricDef) desc() *prometheus.Desc {
	return prometheus.NewDesc(m.name, m.help, m.labels, nil)
}

var (
	gauge   = prometheus.GaugeValue
	counter = prometheus.CounterValue
)

// The metrics served, by family.
var (
	// kafka.server:type=ReplicaManager, per broker.
	mURP          = metricDef{"kafka_server_replicamanager_underreplicatedpartitions", "Partitions this broker leads whose ISR is smaller than their replicas (ReplicaManager UnderReplicatedPartitions).", gauge, []string{"broker"}}
	mUnderMinISR  = metricDef{"kafka_server_replicamanager_underminisrpartitioncount", "Partitions this broker leads whose ISR is smaller than min.insync.replicas.", gauge, []string{"broker"}}
	mAtMinISR     = metricDef{"kafka_server_replicamanager_atminisrpartitioncount", "Partitions this broker leads whose ISR is exactly min.insync.replicas.", gauge, []string{"broker"}}
	mPartCount    = metricDef{"kafka_server_replicamanager_partitioncount", "Replicas on this broker.", gauge, []string{"broker"}}
	mLeaderCount  = metricDef{"kafka_server_replicamanager_leadercount", "Partitions this broker leads.", gauge, []string{"broker"}}
	mIsrShrinks   = metricDef{"kafka_server_replicamanager_isrshrinks_total", "ISR shrinks this broker, as leader, had committed (IsrShrinksPerSec Count).", counter, []string{"broker"}}
	mIsrExpands   = metricDef{"kafka_server_replicamanager_isrexpands_total", "ISR expansions this broker, as leader, had committed (IsrExpandsPerSec Count).", counter, []string{"broker"}}
	mBrokerUp     = metricDef{"kafka_server_kafkaserver_brokerstate", "The broker's state as Kafka numbers it: 3 running, 1 up but fenced (starting), 0 not running.", gauge, []string{"broker"}}
	mBytesIn      = metricDef{"kafka_server_brokertopicmetrics_bytesin_total", "Record batch bytes appended by produce requests on the leader (BytesInPerSec Count).", counter, []string{"broker", "topic"}}
	mMessagesIn   = metricDef{"kafka_server_brokertopicmetrics_messagesin_total", "Records appended by produce requests on the leader (MessagesInPerSec Count).", counter, []string{"broker", "topic"}}
	mBytesOut     = metricDef{"kafka_server_brokertopicmetrics_bytesout_total", "Record batch bytes sent to consumers (BytesOutPerSec Count).", counter, []string{"broker", "topic"}}
	mReplBytesOut = metricDef{"kafka_server_brokertopicmetrics_replicationbytesout_total", "Record batch bytes sent to followers (ReplicationBytesOutPerSec Count).", counter, []string{"broker", "topic"}}
	mProduceReqs  = metricDef{"kafka_server_brokertopicmetrics_totalproducerequests_total", "Partitions produced to (TotalProduceRequestsPerSec Count).", counter, []string{"broker", "topic"}}
	mFailedProd   = metricDef{"kafka_server_brokertopicmetrics_failedproducerequests_total", "Partitions produced to with an error (FailedProduceRequestsPerSec Count).", counter, []string{"broker", "topic"}}
	mFetchReqs    = metricDef{"kafka_server_brokertopicmetrics_totalfetchrequests_total", "Partitions fetched by consumers (TotalFetchRequestsPerSec Count).", counter, []string{"broker", "topic"}}
	mFailedFetch  = metricDef{"kafka_server_brokertopicmetrics_failedfetchrequests_total", "Partitions fetched by consumers with an error (FailedFetchRequestsPerSec Count).", counter, []string{"broker", "topic"}}

	// kafka.network:type=RequestMetrics.
	mRequests  = metricDef{"kafka_network_requestmetrics_requests_total", "Requests served, by API and version (RequestsPerSec Count).", counter, []string{"broker", "request", "version"}}
	mTotalTime = metricDef{"kafka_network_requestmetrics_totaltimems", "Requests' total time in ms, by API (TotalTimeMs; quantiles estimated from buckets since the cluster started).", gauge, []string{"broker", "request"}}

	// kafka.controller:type=KafkaController, per controller node: the
	// active controller reports the cluster's counts, the others 0.
	mActive       = metricDef{"kafka_controller_kafkacontroller_activecontrollercount", "1 on the active controller, 0 on the others.", gauge, []string{"controller"}}
	mOffline      = metricDef{"kafka_controller_kafkacontroller_offlinepartitionscount", "Partitions without a leader.", gauge, []string{"controller"}}
	mGlobalParts  = metricDef{"kafka_controller_kafkacontroller_globalpartitioncount", "Partitions in the cluster.", gauge, []string{"controller"}}
	mGlobalTopics = metricDef{"kafka_controller_kafkacontroller_globaltopiccount", "Topics in the cluster.", gauge, []string{"controller"}}
	mActiveBroker = metricDef{"kafka_controller_kafkacontroller_activebrokercount", "Registered, unfenced brokers.", gauge, []string{"controller"}}
	mFencedBroker = metricDef{"kafka_controller_kafkacontroller_fencedbrokercount", "Fenced brokers.", gauge, []string{"controller"}}
	mImbalance    = metricDef{"kafka_controller_kafkacontroller_preferredreplicaimbalancecount", "Partitions whose leader is not their preferred (first) replica.", gauge, []string{"controller"}}

	// kafka.cluster:type=Partition (on the leader) and kafka.log:type=Log
	// (on every replica).
	mPartURP     = metricDef{"kafka_cluster_partition_underreplicated", "1 when the partition's ISR is smaller than its replicas (on its leader).", gauge, []string{"broker", "topic", "partition"}}
	mPartISR     = metricDef{"kafka_cluster_partition_insyncreplicascount", "The partition's ISR size (on its leader).", gauge, []string{"broker", "topic", "partition"}}
	mPartRepl    = metricDef{"kafka_cluster_partition_replicascount", "The partition's replica count (on its leader).", gauge, []string{"broker", "topic", "partition"}}
	mLSOLag      = metricDef{"kafka_cluster_partition_laststableoffsetlag", "High watermark minus last stable offset (on its leader).", gauge, []string{"broker", "topic", "partition"}}
	mLogEnd      = metricDef{"kafka_log_log_logendoffset", "The replica's log end offset.", gauge, []string{"broker", "topic", "partition"}}
	mLogStart    = metricDef{"kafka_log_log_logstartoffset", "The replica's log start offset.", gauge, []string{"broker", "topic", "partition"}}
	mLogSize     = metricDef{"kafka_log_log_size", "The replica's log size in bytes.", gauge, []string{"broker", "topic", "partition"}}
	mOfflineDirs = metricDef{"kafka_log_logmanager_offlinelogdirectorycount", "The broker's offline log dirs (kafka.log:type=LogManager,name=OfflineLogDirectoryCount).", gauge, []string{"broker"}}
	mPartOffset  = metricDef{"kafka_topic_partition_current_offset", "The partition's high watermark (kafka_exporter's name).", gauge, []string{"topic", "partition"}}
	mPartOldest  = metricDef{"kafka_topic_partition_oldest_offset", "The partition's log start offset (kafka_exporter's name).", gauge, []string{"topic", "partition"}}
	mPartLeader  = metricDef{"kafka_topic_partition_leader", "The partition's leader, -1 when offline (kafka_exporter's name).", gauge, []string{"topic", "partition"}}
	mTopicParts  = metricDef{"kafka_topic_partitions", "The topic's partition count (kafka_exporter's name).", gauge, []string{"topic"}}
	mBrokers     = metricDef{"kafka_brokers", "Running brokers (kafka_exporter's name).", gauge, nil}
	mGroupLag    = metricDef{"kafka_consumergroup_lag", "The group's lag: high watermark minus committed offset (kafka_exporter's name).", gauge, []string{"consumergroup", "topic", "partition"}}
	mGroupLagSum = metricDef{"kafka_consumergroup_lag_sum", "The group's lag summed over a topic's partitions (kafka_exporter's name).", gauge, []string{"consumergroup", "topic"}}
	mGroupOffset = metricDef{"kafka_consumergroup_current_offset", "The group's committed offset (kafka_exporter's name).", gauge, []string{"consumergroup", "topic", "partition"}}
	mGroupMember = metricDef{"kafka_consumergroup_members", "The group's members (kafka_exporter's name).", gauge, []string{"consumergroup"}}
)

var allMetrics = []metricDef{mURP, mUnderMinISR, mAtMinISR, mPartCount, mLeaderCount, mIsrShrinks, mIsrExpands, mBrokerUp,
	mBytesIn, mMessagesIn, mBytesOut, mReplBytesOut, mProduceReqs, mFailedProd, mFetchReqs, mFailedFetch,
	mRequests, mActive, mOffline, mGlobalParts, mGlobalTopics, mActiveBroker, mFencedBroker, mImbalance,
	mPartURP, mPartISR, mPartRepl, mLSOLag, mLogEnd, mLogStart, mLogSize, mOfflineDirs, mPartOffset, mPartOldest, mPartLeader,
	mTopicParts, mBrokers, mGroupLag, mGroupLagSum, mGroupOffset, mGroupMember}

// quantiles are the percentiles Kafka's histograms report.
var quantiles = []float64{0.5, 0.75, 0.95, 0.98, 0.99, 0.999}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range allMetrics {
		ch <- m.desc()
	}
	ch <- mTotalTime.desc()
}

func itoa[T ~int32 | ~int16 | ~int](v T) string { return strconv.Itoa(int(v)) }

func (k collector) Collect(ch chan<- prometheus.Metric) {
	c := k.c
	emit := func(m metricDef, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(m.desc(), m.typ, v, labels...)
	}
	brokers := c.Brokers()
	running := 0
	unfenced, fenced := 0, 0
	for _, b := range brokers {
		state := 0.0
		if b.Running {
			running++
			state = 3
			if b.Fenced {
				state = 1
			}
		}
		if b.Fenced {
			fenced++
		} else {
			unfenced++
		}
		emit(mBrokerUp, state, itoa(b.ID))
		if ds, err := c.LogDirStates(b.ID); err == nil {
			n := 0
			for _, d := range ds {
				if d.Offline {
					n++
				}
			}
			emit(mOfflineDirs, float64(n), itoa(b.ID))
		}
	}
	emit(mBrokers, float64(running))

	// Partitions: per leader and per replica.
	type perBroker struct{ urp, underMin, atMin, parts, leaders int }
	pb := map[int32]*perBroker{}
	for _, b := range brokers {
		pb[b.ID] = &perBroker{}
	}
	var offline, globalParts, imbalance int
	topics := c.Topics()
	for _, t := range topics {
		minISR := 1
		if cfgs, err := c.TopicConfigs(t); err == nil {
			if n, err := strconv.Atoi(cfgs["min.insync.replicas"].Value); err == nil {
				minISR = n
			}
		}
		n := 0
		for p := int32(0); ; p++ {
			st, err := c.PartitionState(t, p)
			if err != nil {
				break
			}
			n++
			globalParts++
			tp, pp := t, itoa(p)
			if st.Leader < 0 {
				offline++
			} else if len(st.Replicas) > 0 && st.Replicas[0] != st.Leader {
				imbalance++
			}
			for id, leo := range st.LogEndOffsets {
				if x := pb[id]; x != nil {
					x.parts++
				}
				emit(mLogEnd, float64(leo), itoa(id), tp, pp)
				emit(mLogStart, float64(st.LogStartOffsets[id]), itoa(id), tp, pp)
				emit(mLogSize, float64(st.LogSizes[id]), itoa(id), tp, pp)
			}
			emit(mPartLeader, float64(st.Leader), tp, pp)
			if st.HighWatermark >= 0 {
				emit(mPartOffset, float64(st.HighWatermark), tp, pp)
				emit(mPartOldest, float64(st.LogStartOffset), tp, pp)
			}
			x := pb[st.Leader]
			if x == nil || st.HighWatermark < 0 {
				continue // no running leader reports it
			}
			x.leaders++
			l := itoa(st.Leader)
			urp := 0.0
			if len(st.ISR) < len(st.Replicas) {
				urp = 1
				x.urp++
			}
			if len(st.ISR) < minISR {
				x.underMin++
			} else if len(st.ISR) == minISR {
				x.atMin++
			}
			emit(mPartURP, urp, l, tp, pp)
			emit(mPartISR, float64(len(st.ISR)), l, tp, pp)
			emit(mPartRepl, float64(len(st.Replicas)), l, tp, pp)
			emit(mLSOLag, float64(st.HighWatermark-st.LastStableOffset), l, tp, pp)
		}
		emit(mTopicParts, float64(n), t)
	}
	for _, b := range brokers {
		if !b.Running {
			continue
		}
		x, id := pb[b.ID], itoa(b.ID)
		emit(mURP, float64(x.urp), id)
		emit(mUnderMinISR, float64(x.underMin), id)
		emit(mAtMinISR, float64(x.atMin), id)
		emit(mPartCount, float64(x.parts), id)
		emit(mLeaderCount, float64(x.leaders), id)
	}

	// Controllers: the active one reports the cluster's counts.
	active := c.Controller()
	for _, id := range c.ControllerIDs() {
		v := func(n int) float64 {
			if id == active {
				return float64(n)
			}
			return 0
		}
		l := itoa(id)
		emit(mActive, v(1), l)
		emit(mOffline, v(offline), l)
		emit(mGlobalParts, v(globalParts), l)
		emit(mGlobalTopics, v(len(topics)), l)
		emit(mActiveBroker, v(unfenced), l)
		emit(mFencedBroker, v(fenced), l)
		emit(mImbalance, v(imbalance), l)
	}

	// The meters the brokers count.
	for _, m := range c.BrokerMetrics() {
		id := itoa(m.Broker)
		emit(mIsrShrinks, float64(m.IsrShrinks), id)
		emit(mIsrExpands, float64(m.IsrExpands), id)
		for t, tm := range m.Topics {
			emit(mBytesIn, float64(tm.BytesIn), id, t)
			emit(mMessagesIn, float64(tm.MessagesIn), id, t)
			emit(mBytesOut, float64(tm.BytesOut), id, t)
			emit(mReplBytesOut, float64(tm.ReplicationBytesOut), id, t)
			emit(mProduceReqs, float64(tm.TotalProduceRequests), id, t)
			emit(mFailedProd, float64(tm.FailedProduceRequests), id, t)
			emit(mFetchReqs, float64(tm.TotalFetchRequests), id, t)
			emit(mFailedFetch, float64(tm.FailedFetchRequests), id, t)
		}
		for name, rm := range m.Requests {
			for v, n := range rm.Versions {
				emit(mRequests, float64(n), id, name, itoa(v))
			}
			qs := make(map[float64]float64, len(quantiles))
			for _, q := range quantiles {
				qs[q] = quantileMs(rm, q)
			}
			ch <- prometheus.MustNewConstSummary(mTotalTime.desc(), uint64(rm.Count),
				float64(rm.TotalTime.Microseconds())/1000, qs, id, name)
		}
	}

	// Groups, as kafka_exporter reports them.
	for _, g := range c.Groups() {
		st, err := c.Group(g)
		if err != nil {
			continue
		}
		emit(mGroupMember, float64(len(st.Members)), g)
		for t, ps := range st.Offsets {
			for p, off := range ps {
				emit(mGroupOffset, float64(off), g, t, itoa(p))
			}
		}
		for t, ps := range st.Lag {
			sum := int64(0)
			for p, lag := range ps {
				emit(mGroupLag, float64(lag), g, t, itoa(p))
				sum += lag
			}
			emit(mGroupLagSum, float64(sum), g, t)
		}
	}
}

// quantileMs estimates quantile q of a request's total time in ms from
// its buckets: linear within the bucket the quantile falls in (the last,
// unbounded one reports its lower bound).
func quantileMs(rm kcluster.RequestMetrics, q float64) float64 {
	if rm.Count == 0 || len(rm.Buckets) == 0 {
		return 0
	}
	rank := q * float64(rm.Count)
	var seen float64
	for i, n := range rm.Buckets {
		if n == 0 {
			continue
		}
		if seen+float64(n) >= rank {
			var lo, hi float64
			if i > 0 {
				lo = float64(rm.Bounds[i-1].Microseconds()) / 1000
			}
			if i >= len(rm.Bounds) {
				return lo
			}
			hi = float64(rm.Bounds[i].Microseconds()) / 1000
			return lo + (hi-lo)*(rank-seen)/float64(n)
		}
		seen += float64(n)
	}
	return float64(slices.Max(rm.Bounds).Microseconds()) / 1000
}
