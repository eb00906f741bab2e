// Package kcluster runs a real, multi-broker, Kafka-compatible cluster inside
// one Go process.
//
// Every broker listens on its own TCP port on loopback; any Kafka client
// (franz-go, sarama, kafka-go, librdkafka, kafkajs, the Java client)
// connects to it. Brokers replicate to each other over TCP: followers fetch
// from leaders with Kafka's Fetch, the high watermark is the smallest
// log-end offset in the ISR, and acks=all waits for every ISR member.
// Metadata is an event-sourced log written by the active controller and
// replayed by every broker, as in KRaft: one in-memory controller by
// default, or a Raft quorum of controller nodes with Controllers(n), whose
// standbys take over when the active one dies. Storage is segments of record batches with a
// pebble index, all through one pebble vfs.FS: in memory by default, on disk
// with Dir. Consumer groups (classic and KIP-848) are coordinated by the
// leader of the group's __consumer_offsets partition, where their metadata
// and committed offsets are stored, so they fail over with leadership;
// Group and GroupStable observe them. Transactions are coordinated the same
// way on __transaction_state (Transaction observes one); idempotent and
// transactional producers, markers, the last stable offset and
// read_committed fetches behave as Kafka's. Share groups (KIP-932) are
// coordinated by the same group coordinator, their share-partitions kept
// by the partitions' leaders, and the share-partitions' state by the share
// coordinator in __share_group_state, so it fails over too (ShareGroup
// observes them). Security is Kafka's too:
// listeners with its security protocols (Listener), TLS and mutual TLS
// (TLS, package tlstest), SASL PLAIN and SCRAM (SASLUser and
// AlterUserScramCredentials), and ACLs in the metadata log enforced by the
// StandardAuthorizer.
//
// # Usage
//
//  1. In a test, call Start(t, opts...). It returns when every broker is
//     listening and knows the whole cluster; it closes the cluster on
//     t.Cleanup. Outside tests, call New and Close yourself.
//  2. Give Addrs() to your client as its bootstrap servers.
//  3. Create topics with your client's admin API (or let
//     auto.create.topics.enable do it), choosing a replication factor up to
//     the number of brokers.
//  4. Configure brokers with Kafka's own config names through
//     BrokerConfig, e.g. BrokerConfig("min.insync.replicas", "2").
//  5. Do not rely on anything surviving Close unless you used Dir; with Dir,
//     New on the same path brings back the same cluster (id, topics,
//     leaders' epochs, data).
//  6. To experiment with controller failover, use Controllers(3) and the
//     controller levers (KillController, RestartController, Controller).
//  7. To test retention or compaction without waiting for
//     log.retention.check.interval.ms, set the topic configs (retention.ms,
//     cleanup.policy=compact, segment.ms, ...) with your admin client and
//     call CleanLogs; TopicConfigs, PartitionState (log start offsets and
//     sizes) and Reassignments show the result.
//  8. To test security, add a listener (Listener("SECURE", SASLSSL)), give
//     its addresses (ListenerAddrs("SECURE")) to the client, add users
//     (SASLUser) and a TLS config (tlstest), and turn the authorizer on with
//     BrokerConfig("authorizer.class.name", StandardAuthorizer) and
//     BrokerConfig("super.users", "User:admin"). Brokers keep replicating
//     over the default PLAINTEXT listener as InternalPrincipal.
//  9. To run the same tests against a real Kafka cluster, set
//     KCLUSTER_BOOTSTRAP (BootstrapEnv) to its bootstrap servers: Start
//     then returns a handle on it whose gauges go through the Kafka
//     protocol, and the levers skip the test (ErrExternal outside Start).
//
// The command cmd/kcluster runs the same cluster as a process for clients in
// other languages.
//
// # Where Kafka's parts are
//
// For a reader who knows Apache Kafka, by Kafka's names:
//
//   - KafkaServer/BrokerServer: broker.go (lifecycle, metadata apply),
//     server.go (SocketServer and request dispatch, shared with the
//     controller nodes), broker_lifecycle.go (BrokerLifecycleManager:
//     registration, heartbeats, controlled shutdown), controller_client.go
//     (the broker's channel to the active controller), peers.go
//     (inter-broker clients).
//   - KafkaApis: one api_*.go file per API key or family, each opening with
//     the versions it serves; api.go is the registry ApiVersions is built
//     from. Authorization (AuthHelper, StandardAuthorizer): authz*.go.
//   - Partition: partition.go (leader state, appends, high watermark, ISR
//     changes, acks=all); Replica (a follower as its leader sees it):
//     replica.go; AlterPartitionManager: isr.go.
//   - ReplicaFetcherThread: fetcher.go (OffsetForLeaderEpoch truncation,
//     follower appends).
//   - LogManager's log dirs (log.dirs, KRaft JBOD, KIP-858: placement,
//     meta.properties, a dir going offline and back, AssignmentsManager):
//     logdirs.go; the future replica and ReplicaAlterLogDirsThread
//     (AlterReplicaLogDirs): alterlogdirs.go; the controller's side
//     (directories of replicas, handleDirectoriesOffline,
//     handleAssignReplicasToDirs): metadata/directories.go.
//   - UnifiedLog, LogSegment, the indexes and the leader-epoch cache:
//     package segment; LogCleaner and retention: logcleaner.go,
//     compaction.go; ProducerStateManager: producers*.go; the transaction
//     index and last stable offset: txn_replica.go.
//   - CoordinatorRuntime: coordinator*.go (shards of an internal topic's
//     partitions: load, replay, unload, write and wait for the high
//     watermark). GroupCoordinator shards: group*.go (classic protocol in
//     group_classic*.go, KIP-848 in group_consumer.go, its assignors
//     (UniformAssignor, RangeAssignor) in group_consumer_assign.go, its records
//     (GroupCoordinatorRecordHelpers) in group_consumer_records.go and
//     internal/grouprecords).
//     Share groups (KIP-932) on the same shards: group_share.go (their
//     members and epochs), group_share_assign.go (the SimpleAssignor),
//     group_share_init.go (the initialization of their share-partitions,
//     ShareGroupStatePartitionMetadata), group_share_records.go (their
//     records in __consumer_offsets), api_sharegroup.go,
//     api_sharegroupoffsets.go.
//     TransactionCoordinator shards: txn_coordinator.go, txn_markers.go
//     (TransactionMarkerChannelManager), txn_offsets.go; a partition
//     leader's AddPartitionsToTxnManager: txn_verify.go.
//   - SharePartition: share_partition.go (in-flight records, acquisition
//     locks, acknowledgements); SharePartitionManager and
//     ShareSessionCache: share_session.go; ShareFetch and
//     ShareAcknowledge: api_sharefetch.go; the Persister
//     (DefaultStatePersister, PersisterStateManager): share_persister.go.
//     Group configs (GroupConfigManager): configs_group.go.
//   - ShareCoordinatorService and ShareCoordinatorShard, on the same
//     runtime over __share_group_state: share_coordinator.go; its state
//     RPCs (InitializeShareGroupState, ReadShareGroupState,
//     WriteShareGroupState, DeleteShareGroupState,
//     ReadShareGroupStateSummary): api_sharestate.go; its records
//     (ShareSnapshot, ShareUpdate): internal/grouprecords/sharestate.go;
//     its record pruning (ShareCoordinatorOffsetsManager): share_prune.go.
//   - QuorumController and the metadata image: package metadata (its
//     PartitionChangeBuilder, with KIP-966's eligible leader replicas:
//     metadata/partition_change.go);
//     controller nodes and Raft (KafkaRaftClient): controller_node.go,
//     quorum.go. Snapshots (KIP-630): SnapshotGenerator and the image as
//     records, metadata/snapshot*.go; the Raft snapshot and compaction,
//     metadata/raftlog_snapshot.go; FetchSnapshot, api_fetchsnapshot.go;
//     BrokerMetadataSnapshotter, metadata_snapshotter.go; the broker's
//     metadata fetches (BrokerMetadataListener), metadata_listener.go.
//   - Quotas (ClientQuotaManager): quotas.go; security (listeners, SASL,
//     TLS): security.go, api_sasl.go, api_scram.go.
//   - The meters of BrokerTopicStats, RequestMetrics and ReplicaManager's
//     ISR changes: metrics.go (BrokerMetrics); package control serves them
//     as Prometheus metrics under the JMX exporter's names, with the
//     levers and gauges over HTTP and a live web console
//     (cmd/kcluster -http).
//   - What Kafka has no part for: the levers (faults*.go, intercept.go), the
//     gauges (inspect*.go, group_inspect.go, txn_inspect.go,
//     share_inspect.go, events.go), the handle on an external cluster
//     (external*.go, the one switch between embedded and external),
//     the invariant checks (invariants.go), the in-memory network
//     (memnet.go, package network), and what keeps an idle cluster from
//     doing work: requests between nodes held while their connection
//     stands (hold.go, network.Watch), loops that sleep until a change or
//     the tick that can find work (wakeup.go), and a pebble compaction
//     scheduler without a ticker (internal/pebblesched).
package kcluster
