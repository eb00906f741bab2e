package kcluster

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kcluster/kcluster/metadata"
)

// Option configures a cluster. Options are applied in order; a later option
// overrides an earlier one.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	brokers     int
	controllers int    // 0: the in-memory mode; n: a Raft quorum of n
	combined    bool   // controllers run on brokers 1..n
	host        string // listen host
	ports       []int
	advertised  string
	dir         string
	logDirs     int // log dirs per broker (LogDirs)
	fs          vfs.FS
	logger      *slog.Logger
	clusterID   string
	bcfg        map[string]string // broker configs as given
	broker      brokerConfig      // parsed

	// memPerBroker gives every broker a crashable memory FS of its own
	// (the default storage; see PowerCut); fs then serves only paths.
	memPerBroker bool
	// seed seeds the faults' randomness (Drop); seedSet when given.
	seed    uint64
	seedSet bool
	// memNet puts the brokers on an in-memory network (memnet.go).
	memNet bool
	// listeners are the brokers' listeners beyond the default PLAINTEXT
	// one (Listener); tls serves their SSL and SASL_SSL ones (TLS).
	listeners []listenerSpec
	tls       *tls.Config
	// users are the SASLUser credentials; scramUsers their SCRAM keys,
	// derived by validate.
	users      []saslUser
	scramUsers map[scramUserKey]scramStored
	// features are the finalized feature levels a new cluster is
	// formatted with (Feature).
	features map[string]int16
}

// brokerConfig holds the parsed broker configs the brokers use, with
// Kafka's names in comments.
type brokerConfig struct {
	numPartitions       int32            // num.partitions
	defaultRF           int16            // default.replication.factor
	autoCreate          bool             // auto.create.topics.enable
	minISR              int              // min.insync.replicas
	messageMaxBytes     int32            // message.max.bytes
	segmentBytes        int64            // log.segment.bytes
	indexIntervalBytes  int64            // log.index.interval.bytes
	requestMaxBytes     int32            // socket.request.max.bytes
	replicaLagTimeMax   time.Duration    // replica.lag.time.max.ms
	replicaFetchWaitMax time.Duration    // replica.fetch.wait.max.ms
	replicaFetchMax     int32            // replica.fetch.max.bytes
	replicaFetchBackoff time.Duration    // replica.fetch.backoff.ms
	deleteTopicEnable   bool             // delete.topic.enable
	sessionTimeout      time.Duration    // broker.session.timeout.ms
	heartbeatInterval   time.Duration    // broker.heartbeat.interval.ms
	uncleanElection     bool             // unclean.leader.election.enable
	autoRebalance       bool             // auto.leader.rebalance.enable
	imbalanceCheck      time.Duration    // leader.imbalance.check.interval.seconds
	hwCheckpoint        time.Duration    // replica.high.watermark.checkpoint.interval.ms
	txn                 txnConfig        // transaction.* (txn_coordinator.go)
	share               shareCoordConfig // share.coordinator.* (share_coordinator.go)
	electionTimeout     time.Duration    // controller.quorum.election.timeout.ms
	retentionCheck      time.Duration    // log.retention.check.interval.ms
	cleanerEnable       bool             // log.cleaner.enable
	quotaWindow         time.Duration    // quota.window.size.seconds
	quotaWindowNum      int              // quota.window.num
	group               groupConfig      // group.* and offsets.* (group_coordinator.go)
	flushMessages       int64            // log.flush.interval.messages
	snapshotMaxBytes    int64            // metadata.log.max.record.bytes.between.snapshots
	snapshotInterval    time.Duration    // metadata.log.max.snapshot.interval.ms
	security            securityConfig   // authorizer, SASL and TLS knobs (security.go)
}

func defaultConfig() config {
	return config{
		brokers:   3,
		logDirs:   1,
		host:      "127.0.0.1",
		logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		bcfg:      map[string]string{},
		clusterID: "",
		// Kafka 4.2's levels for a new cluster, but kraft.version 0,
		// because the quorum's voters are static: a cluster advertises
		// only what it serves.
		features: map[string]int16{
			metadata.FeatureMetadataVersion:    29, // 4.2-IV1
			metadata.FeatureKRaftVersion:       0,
			metadata.FeatureTransactionVersion: 2, // KIP-890 part 2
			metadata.FeatureGroupVersion:       1, // KIP-848
			metadata.FeatureELRVersion:         1, // KIP-966
			metadata.FeatureShareVersion:       1, // KIP-932
		},
	}
}

// configDef is a broker config's default and parser.
type configDef struct {
	def   string
	parse func(*brokerConfig, string) error
}

// brokerConfigDefs lists every broker config kcluster honours, with Kafka's
// default (or a test-friendly one, marked) and a parser. Components keep
// their own and add them with regBrokerConfigs.
var brokerConfigDefs = map[string]configDef{
	"num.partitions": {"1", func(b *brokerConfig, v string) error { return parseInt32(&b.numPartitions, v, 1) }},
	"default.replication.factor": {"1", func(b *brokerConfig, v string) error {
		var n int32
		err := parseInt32(&n, v, 1)
		b.defaultRF = int16(n)
		return err
	}},
	"auto.create.topics.enable": {"true", func(b *brokerConfig, v string) error { return parseBool(&b.autoCreate, v) }},
	"min.insync.replicas": {"1", func(b *brokerConfig, v string) error {
		var n int32
		err := parseInt32(&n, v, 1)
		b.minISR = int(n)
		return err
	}},
	"message.max.bytes":        {"1048588", func(b *brokerConfig, v string) error { return parseInt32(&b.messageMaxBytes, v, 0) }},
	"log.segment.bytes":        {"1073741824", func(b *brokerConfig, v string) error { return parseInt64(&b.segmentBytes, v, 14) }},
	"log.index.interval.bytes": {"4096", func(b *brokerConfig, v string) error { return parseInt64(&b.indexIntervalBytes, v, 0) }},
	"socket.request.max.bytes": {"104857600", func(b *brokerConfig, v string) error { return parseInt32(&b.requestMaxBytes, v, 1) }},
	// Test-friendly: Kafka's default is 30000.
	"replica.lag.time.max.ms": {"2000", func(b *brokerConfig, v string) error { return parseMillis(&b.replicaLagTimeMax, v) }},
	// A caught-up follower's fetch is held past it while its connection
	// stands and nothing changes (handleFetch).
	"replica.fetch.wait.max.ms": {"500", func(b *brokerConfig, v string) error { return parseMillis(&b.replicaFetchWaitMax, v) }},
	"replica.fetch.max.bytes":   {"1048576", func(b *brokerConfig, v string) error { return parseInt32(&b.replicaFetchMax, v, 0) }},
	// Test-friendly: Kafka's default is 1000.
	"replica.fetch.backoff.ms": {"50", func(b *brokerConfig, v string) error { return parseMillis(&b.replicaFetchBackoff, v) }},
	"delete.topic.enable":      {"true", func(b *brokerConfig, v string) error { return parseBool(&b.deleteTopicEnable, v) }},
	// Test-friendly: Kafka's defaults are 9000 and 2000. While a broker's
	// connection to the in-memory controller stands, its heartbeat is held
	// there and counts as one every interval (controllerNode.standHeartbeat),
	// so an idle cluster sends none; a session still expires
	// broker.session.timeout.ms after the last heartbeat the broker would
	// have sent.
	"broker.session.timeout.ms":      {"250", func(b *brokerConfig, v string) error { return parseMillis(&b.sessionTimeout, v) }},
	"broker.heartbeat.interval.ms":   {"25", func(b *brokerConfig, v string) error { return parseMillis(&b.heartbeatInterval, v) }},
	"unclean.leader.election.enable": {"false", func(b *brokerConfig, v string) error { return parseBool(&b.uncleanElection, v) }},
	"auto.leader.rebalance.enable":   {"true", func(b *brokerConfig, v string) error { return parseBool(&b.autoRebalance, v) }},
	// Test-friendly: Kafka's default is 300.
	"leader.imbalance.check.interval.seconds": {"1", func(b *brokerConfig, v string) error {
		var n int64
		err := parseInt64(&n, v, 1)
		b.imbalanceCheck = time.Duration(n) * time.Second
		return err
	}},
	// Test-friendly: Kafka's default is 300000. Retention and the log
	// cleaner both run at this interval; Cluster.CleanLogs runs them now.
	"log.retention.check.interval.ms": {"1000", func(b *brokerConfig, v string) error {
		if err := parseMillis(&b.retentionCheck, v); err != nil {
			return err
		}
		if b.retentionCheck <= 0 {
			return fmt.Errorf("must be at least 1")
		}
		return nil
	}},
	"log.cleaner.enable": {"true", func(b *brokerConfig, v string) error { return parseBool(&b.cleanerEnable, v) }},
	"quota.window.num": {"11", func(b *brokerConfig, v string) error {
		var n int32
		err := parseInt32(&n, v, 2)
		b.quotaWindowNum = int(n)
		return err
	}},
	"quota.window.size.seconds": {"1", func(b *brokerConfig, v string) error {
		var n int64
		err := parseInt64(&n, v, 1)
		b.quotaWindow = time.Duration(n) * time.Second
		return err
	}},
	// Test-friendly: Kafka's default is 5000.
	"replica.high.watermark.checkpoint.interval.ms": {"500", func(b *brokerConfig, v string) error { return parseMillis(&b.hwCheckpoint, v) }},
	// Kafka 1000. Raft ticks every tenth of it; a follower that hears no
	// leader for one to two timeouts starts an election.
	"controller.quorum.election.timeout.ms": {"100", func(b *brokerConfig, v string) error {
		if err := parseMillis(&b.electionTimeout, v); err != nil {
			return err
		}
		if b.electionTimeout < 10*time.Millisecond {
			return fmt.Errorf("must be at least 10")
		}
		return nil
	}},
	// Records appended to a log between syncs (fsync); Kafka's default
	// never syncs on append. See PowerCut.
	"log.flush.interval.messages": {"9223372036854775807", func(b *brokerConfig, v string) error { return parseInt64(&b.flushMessages, v, 1) }},
	// Security (security.go). An authorizer is on when
	// authorizer.class.name names Kafka's StandardAuthorizer (or the older
	// AclAuthorizer); the default, "", checks nothing.
	"authorizer.class.name": {"", func(b *brokerConfig, v string) error { return b.security.parseAuthorizer(v) }},
	"super.users":           {"", func(b *brokerConfig, v string) error { b.security.parseSuperUsers(v); return nil }},
	"allow.everyone.if.no.acl.found": {"false", func(b *brokerConfig, v string) error {
		return parseBool(&b.security.allowIfNoACL, v)
	}},
	"connections.max.reauth.ms": {"0", func(b *brokerConfig, v string) error { return parseMillis(&b.security.reauth, v) }},
	// Test-friendly: Kafka's default is GSSAPI, which kcluster does not
	// serve.
	"sasl.enabled.mechanisms": {"PLAIN,SCRAM-SHA-256,SCRAM-SHA-512", func(b *brokerConfig, v string) error { return b.security.parseMechanisms(v) }},
	"ssl.client.auth":         {"none", func(b *brokerConfig, v string) error { return b.security.parseClientAuth(v) }},
}

// regBrokerConfigs adds a component's configs (the coordinators') to
// brokerConfigDefs. It is called only from init functions; a config
// defined twice panics, as an API key registered twice does (reg).
func regBrokerConfigs(defs map[string]configDef) {
	for k, d := range defs {
		if _, dup := brokerConfigDefs[k]; dup {
			panic("kcluster: broker config defined twice: " + k)
		}
		brokerConfigDefs[k] = d
	}
}

func parseInt32(dst *int32, v string, min int64) error {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return err
	}
	if n < min {
		return fmt.Errorf("%d is below the minimum %d", n, min)
	}
	*dst = int32(n)
	return nil
}

func parseInt64(dst *int64, v string, min int64) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return err
	}
	if n < min {
		return fmt.Errorf("%d is below the minimum %d", n, min)
	}
	*dst = n
	return nil
}

func parseBool(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	*dst = b
	return err
}

func parseMillis(dst *time.Duration, v string) error {
	var n int64
	if err := parseInt64(&n, v, 0); err != nil {
		return err
	}
	*dst = time.Duration(n) * time.Millisecond
	return nil
}

func (c *config) validate() error {
	if c.brokers < 1 || c.brokers >= int(controllerNodeID) {
		return fmt.Errorf("kcluster: Brokers(%d): need 1 to %d brokers", c.brokers, controllerNodeID-1)
	}
	if c.logDirs < 1 || c.logDirs > 64 {
		return fmt.Errorf("kcluster: LogDirs(%d): need 1 to 64 log dirs", c.logDirs)
	}
	if c.controllers < 0 || c.controllers > 99 {
		return fmt.Errorf("kcluster: Controllers(%d): need 1 to 99 controllers", c.controllers)
	}
	if c.combined && (c.controllers < 1 || c.controllers > c.brokers) {
		return fmt.Errorf("kcluster: CombinedControllers(%d): need 1 to %d (the brokers)", c.controllers, c.brokers)
	}
	if c.dir != "" && c.controllers == 0 {
		// Metadata on disk needs a durable log: a quorum of one.
		c.controllers = 1
	}
	if len(c.ports) > 0 && len(c.ports) != c.brokers {
		return fmt.Errorf("kcluster: Ports: %d ports for %d brokers", len(c.ports), c.brokers)
	}
	if c.fs == nil {
		if c.dir != "" {
			c.fs = vfs.Default
		} else {
			c.fs = vfs.NewMem()
			c.memPerBroker = true
		}
	}
	if c.advertised == "" {
		c.advertised = c.host
	}
	if !c.seedSet {
		c.seed = rand.Uint64()
	}
	for k, d := range brokerConfigDefs {
		v, ok := c.bcfg[k]
		if !ok {
			v = d.def
		}
		if err := d.parse(&c.broker, v); err != nil {
			return fmt.Errorf("kcluster: broker config %s=%q: %v", k, v, err)
		}
	}
	for k, v := range c.bcfg {
		if _, ok := brokerConfigDefs[k]; ok {
			continue
		}
		if d, _ := topicConfigSynonym(k); d != nil {
			// A broker default of a topic config (log.retention.ms,
			// log.cleanup.policy, ...): configs.go resolves it.
			if err := validateBrokerDynamic(k, &v); err != nil {
				return fmt.Errorf("kcluster: broker config %s=%q: %v", k, v, err)
			}
			continue
		}
		{
			c.logger.Warn("broker config is not known to kcluster and is ignored", "config", k)
		}
	}
	if c.broker.heartbeatInterval <= 0 || c.broker.heartbeatInterval >= c.broker.sessionTimeout {
		return fmt.Errorf("kcluster: broker.heartbeat.interval.ms (%v) must be positive and below broker.session.timeout.ms (%v)", c.broker.heartbeatInterval, c.broker.sessionTimeout)
	}
	if c.broker.replicaFetchWaitMax >= c.broker.replicaLagTimeMax {
		// A caught-up follower parks its fetch this long; the leader
		// would drop it from the ISR as soon as new data arrives.
		return fmt.Errorf("kcluster: replica.fetch.wait.max.ms (%v) must be below replica.lag.time.max.ms (%v)", c.broker.replicaFetchWaitMax, c.broker.replicaLagTimeMax)
	}
	if err := c.validateSecurity(); err != nil {
		return err
	}
	if err := metadata.ValidateFeatureLevels(c.features); err != nil {
		return fmt.Errorf("kcluster: Feature: %v", err)
	}
	if int(c.broker.defaultRF) > c.brokers {
		return fmt.Errorf("kcluster: default.replication.factor=%d exceeds the %d brokers", c.broker.defaultRF, c.brokers)
	}
	return nil
}

// Brokers sets the number of brokers (default 3). Ids are 1..n.
func Brokers(n int) Option { return optionFunc(func(c *config) { c.brokers = n }) }

// ListenHost sets the host every broker listens on (default 127.0.0.1).
func ListenHost(host string) Option { return optionFunc(func(c *config) { c.host = host }) }

// Ports sets each broker's port, in broker id order; one per broker. The
// default, none, lets the system pick free ports.
func Ports(ports ...int) Option {
	return optionFunc(func(c *config) { c.ports = append([]int(nil), ports...) })
}

// AdvertisedHost sets the host brokers advertise in Metadata (default the
// listen host). Some clients expect "localhost".
func AdvertisedHost(host string) Option { return optionFunc(func(c *config) { c.advertised = host }) }

// Controllers runs the metadata log as a Raft quorum of n dedicated
// controller nodes (KRaft's design; ids 1000, 1001, ...), each with its own
// copy of the log in the cluster's storage. The active controller is the
// Raft leader; the others are standbys that replay every record and take
// over when it dies. The default, 0, is the in-memory mode: one controller
// node with the log in memory, the fastest to start. Controllers always run
// as separate nodes from brokers (Kafka's process.roles=controller), so
// killing a broker never takes a controller with it.
func Controllers(n int) Option {
	return optionFunc(func(c *config) { c.controllers, c.combined = n, false })
}

// CombinedControllers runs the metadata quorum's n controllers on brokers
// 1..n instead of on nodes of their own (Kafka's
// process.roles=broker,controller): controller i shares broker i's node id,
// so a cut of that node cuts both roles, and a node is one process, so
// KillBroker, StopBroker and KillController stop both roles of it, and
// RestartBroker and RestartController start both.
func CombinedControllers(n int) Option {
	return optionFunc(func(c *config) { c.controllers, c.combined = n, true })
}

// Dir stores every broker's data on disk under path (one directory per
// broker, one per controller). The default, "", keeps everything in
// memory. With Dir the metadata log is stored too (a quorum of one
// controller unless Controllers says more), so New on the same path brings
// back the same cluster: its id, topics, leaders, epochs and data.
func Dir(path string) Option { return optionFunc(func(c *config) { c.dir = path }) }

// LogDirs gives every broker n log dirs (Kafka's log.dirs, KRaft JBOD,
// KIP-858), each with its own directory id in its meta.properties
// (directory.id) and, in memory, its own crashable file system, so one
// dir can fail (FailLogDir) or lose power (PowerCut) as a disk of its
// own. The default, 1, keeps each broker's data in broker-N; with n > 1
// broker N's dirs are broker-N/dir-0 .. broker-N/dir-(n-1), and its
// metadata snapshots live in the first (Kafka's metadata.log.dir
// default), whose failure halts the broker as in Kafka. A new partition
// goes to the broker's online dir holding the fewest partitions, as
// Kafka's LogManager places it, and the broker reports the placement
// (AssignReplicasToDirs). See FailLogDir and LogDirStates.
func LogDirs(n int) Option { return optionFunc(func(c *config) { c.logDirs = n }) }

// FS stores every broker's data in fs under Dir (default: the OS file
// system when Dir is set, else a fresh vfs.NewMem()). Tests use a crashable
// memory FS to simulate power cuts.
func FS(fs vfs.FS) Option { return optionFunc(func(c *config) { c.fs = fs }) }

// BrokerConfig sets a broker config by Kafka's name, for every broker, e.g.
// BrokerConfig("min.insync.replicas", "2"). Unknown names are logged and
// ignored, as Kafka does; invalid values of known names fail New.
func BrokerConfig(key, value string) Option {
	return optionFunc(func(c *config) { c.bcfg[key] = value })
}

// Logger sets the logger (default: discard). Start sends logs to t.Logf.
func Logger(l *slog.Logger) Option { return optionFunc(func(c *config) { c.logger = l }) }

// ClusterID sets the cluster id reported by Metadata and DescribeCluster
// (default: random).
func ClusterID(id string) Option { return optionFunc(func(c *config) { c.clusterID = id }) }

// Seed seeds the randomness of the fault levers (Drop's losses), so a
// chaos run can be replayed. The default is random; the levers that use it
// log it.
func Seed(seed uint64) Option {
	return optionFunc(func(c *config) { c.seed, c.seedSet = seed, true })
}

// Listener gives every broker an additional listener named name (Kafka's
// listener name, e.g. "SECURE") with the security protocol, on a port of
// its own (picked at the first start, kept across restarts; see
// ListenerAddrs). The default listener, PLAINTEXT, is always there: it is
// the inter-broker listener, used by replication and coordinators, and
// Addrs reports it. A client is told, in Metadata, FindCoordinator and
// DescribeCluster, the addresses of the listener it connected through.
// SSL and SASL_SSL listeners need TLS.
func Listener(name string, protocol SecurityProtocol) Option {
	return optionFunc(func(c *config) { c.listeners = append(c.listeners, listenerSpec{name, protocol}) })
}

// TLS sets the server TLS configuration of every SSL and SASL_SSL listener
// (default none). Its ClientAuth and ClientCAs decide mutual TLS, unless
// the broker config ssl.client.auth (none, requested, required) says
// otherwise. A verified client certificate makes the connection's
// principal "User:" + the certificate subject's RFC 2253 form (e.g.
// "User:CN=alice,O=acme"), unless SASL authenticates it. tlstest makes a
// throwaway CA and certificates for tests.
func TLS(cfg *tls.Config) Option { return optionFunc(func(c *config) { c.tls = cfg }) }

// SASLUser adds a user that SASL listeners authenticate with mechanism
// "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512" (the default is no users, so
// no SASL client can log in). PLAIN users are the brokers' static list, as
// a Kafka JAAS file's user_<name>=<password>. SCRAM users are written into
// the metadata log when the cluster starts, as kafka-storage format
// --add-scram, so DescribeUserScramCredentials lists them and
// AlterUserScramCredentials can change them.
func SASLUser(mechanism, user, password string) Option {
	return optionFunc(func(c *config) { c.users = append(c.users, saslUser{mechanism, user, password}) })
}

// Feature sets the level a new cluster finalizes a feature at (KIP-584),
// as kafka-storage format --feature name=level: "metadata.version" (7,
// 3.3-IV3, to 29, 4.2-IV1), "kraft.version" (0 only: the quorum's voters
// are static), "transaction.version" (0-2), "group.version" (0-1) or
// "eligible.leader.replicas.version" (0-1). The levels are written into the
// metadata log when the cluster is first formatted; a cluster restarted
// from its Dir keeps the levels its log has, which UpdateFeatures changes.
// Clients read the finalized levels from ApiVersions and choose their
// protocols by them: Feature("group.version", 0) makes a cluster that
// refuses the consumer group protocol (KIP-848), as Kafka 3.x did, for
// tests of older clients.
//
// The defaults are Kafka 4.2's: metadata.version 29, transaction.version
// 2, group.version 1, eligible.leader.replicas.version 1, share.version 1
// (share groups, KIP-932, which need metadata.version 26 (4.1-IV0) or
// above, so a cluster formatted at an older metadata.version sets
// Feature("share.version", 0) too). At
// eligible.leader.replicas.version 1 (KIP-966) the controller keeps each
// partition's eligible leader replicas: a replica that leaves an ISR
// below min.insync.replicas joins the ELR, the ISR may become empty, a
// live ELR member is elected when it is, and a broker that restarts
// without a clean shutdown (killed or power cut, not stopped) leaves every
// ELR; DescribeTopicPartitions and PartitionState report them.
// Feature("eligible.leader.replicas.version", 0) keeps the last ISR
// member in the ISR whatever happens to it, as Kafka 3.x. At
// transaction.version 2 (KIP-890 part 2) Java and
// franz-go producers bump the epoch on every EndTxn and add partitions by
// Produce v12 and TxnOffsetCommit v5; Feature("transaction.version", 0)
// makes a cluster whose clients use the KIP-890 part 1 flow
// (AddPartitionsToTxn, AddOffsetsToTxn, one epoch per producer session),
// as Kafka 3.x's.
func Feature(name string, level int16) Option {
	return optionFunc(func(c *config) { c.features[name] = level })
}
