package kcluster

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// secureCluster starts a cluster with the authorizer on, a SASL_PLAINTEXT
// listener SECURE, the super user admin and the users alice and bob (PLAIN).
func secureCluster(t *testing.T, opts ...Option) *Cluster {
	t.Helper()
	return Start(t, append([]Option{Brokers(1), Listener("SECURE", SASLPlaintext),
		SASLUser("PLAIN", "admin", "admin-secret"),
		SASLUser("PLAIN", "alice", "alice-secret"),
		SASLUser("PLAIN", "bob", "bob-secret"),
		BrokerConfig("authorizer.class.name", StandardAuthorizer),
		BrokerConfig("super.users", "User:admin"),
		BrokerConfig("auto.create.topics.enable", "false"),
	}, opts...)...)
}

func userClient(t *testing.T, c *Cluster, user string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return saslClient(t, c, plain.Auth{User: user, Pass: user + "-secret"}.AsMechanism(), opts...)
}

func tctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func createTopics(t *testing.T, cl *kgo.Client, rf int16, names ...string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10000
	for _, n := range names {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = n, 1, rf
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(tctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range resp.Topics {
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			t.Fatalf("creating %s: %v", rt.Topic, err)
		}
	}
}

type aclSpec struct {
	rt        kmsg.ACLResourceType
	name      string
	pattern   kmsg.ACLResourcePatternType
	principal string
	op        kmsg.ACLOperation
	perm      kmsg.ACLPermissionType
}

func createACLs(t *testing.T, cl *kgo.Client, acls ...aclSpec) {
	t.Helper()
	req := kmsg.NewPtrCreateACLsRequest()
	for _, a := range acls {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = a.rt, a.name, a.pattern
		c.Principal, c.Host, c.Operation, c.PermissionType = a.principal, "*", a.op, a.perm
		req.Creations = append(req.Creations, c)
	}
	resp, err := req.RequestWith(tctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			t.Fatalf("CreateAcls: %v", err)
		}
	}
}

func produceOne(t *testing.T, cl *kgo.Client, topic string) error {
	t.Helper()
	return cl.ProduceSync(tctx(t), &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
}

// metadataTopics returns the topics a Metadata request answers and their errors.
func metadataTopics(t *testing.T, cl *kgo.Client, names ...string) map[string]error {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	if names != nil {
		for _, n := range names {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(n)
			req.Topics = append(req.Topics, rt)
		}
	}
	resp, err := req.RequestWith(tctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]error{}
	for _, rt := range resp.Topics {
		out[*rt.Topic] = kerr.ErrorForCode(rt.ErrorCode)
	}
	return out
}

// fetchErr fetches partition 0 of topic from offset 0 on broker 1 and
// returns the partition's error.
func fetchErr(t *testing.T, c *Cluster, cl *kgo.Client, topic string) error {
	t.Helper()
	b := c.running()[0]
	b.mu.RLock()
	id := b.mu.state.Topics[topic].ID
	b.mu.RUnlock()
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID, req.MaxWaitMillis, req.MaxBytes = -1, 100, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic, ft.TopicID = topic, id // kgo picks the version: v13+ names topics by id
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	req.Topics = append(req.Topics, ft)
	kresp, err := cl.Broker(1).Request(tctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	resp := kresp.(*kmsg.FetchResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch of %s: %d topics", topic, len(resp.Topics))
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		return err
	}
	if len(p.RecordBatches) == 0 {
		t.Fatalf("fetch of %s: no data", topic)
	}
	return nil
}

func TestACLReadOneTopicNotAnother(t *testing.T) {
	c := secureCluster(t)
	admin := userClient(t, c, "admin")
	createTopics(t, admin, 1, "granted", "secret")
	for _, topic := range []string{"granted", "secret"} {
		if err := produceOne(t, admin, topic); err != nil {
			t.Fatalf("super user producing to %s: %v", topic, err)
		}
	}
	createACLs(t, admin, aclSpec{kmsg.ACLResourceTypeTopic, "granted", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow})

	alice := userClient(t, c, "alice")
	if err := fetchErr(t, c, alice, "granted"); err != nil {
		t.Fatalf("alice fetching granted: %v", err)
	}
	if err := fetchErr(t, c, alice, "secret"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice fetching secret: want TOPIC_AUTHORIZATION_FAILED, got %v", err)
	}
	// READ implies DESCRIBE: Metadata shows granted, hides secret.
	if got := metadataTopics(t, alice); len(got) != 1 || got["granted"] != nil {
		t.Fatalf("alice's Metadata of every topic: %v, want only granted", got)
	}
	if got := metadataTopics(t, alice, "granted", "secret"); got["granted"] != nil || !errors.Is(got["secret"], kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice's Metadata of both: %v", got)
	}
	// READ does not imply WRITE; an idempotent producer is refused
	// earlier, at InitProducerId, having no WRITE on any topic.
	if err := produceOne(t, alice, "granted"); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("alice's idempotent producer: want CLUSTER_AUTHORIZATION_FAILED, got %v", err)
	}
	if err := produceOne(t, userClient(t, c, "alice", kgo.DisableIdempotentWrite()), "granted"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice producing to granted: want TOPIC_AUTHORIZATION_FAILED, got %v", err)
	}
	// An unauthenticated client on the PLAINTEXT listener is User:ANONYMOUS.
	anon, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if got := metadataTopics(t, anon); len(got) != 0 {
		t.Fatalf("ANONYMOUS sees %v", got)
	}
	// allow.everyone.if.no.acl.found is false: a topic without ACLs is
	// closed too.
	createTopics(t, admin, 1, "no-acls")
	if err := fetchErr(t, c, alice, "no-acls"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice fetching a topic without ACLs: %v", err)
	}
}

func TestACLPrefixedAndWildcard(t *testing.T) {
	c := secureCluster(t, BrokerConfig("allow.everyone.if.no.acl.found", "true"))
	admin := userClient(t, c, "admin")
	createTopics(t, admin, 1, "logs-app", "logs-db", "metrics", "open")
	createACLs(t, admin,
		aclSpec{kmsg.ACLResourceTypeTopic, "logs-", kmsg.ACLResourcePatternTypePrefixed, "User:bob", kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow},
		aclSpec{kmsg.ACLResourceTypeTopic, "metrics", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationAll, kmsg.ACLPermissionTypeAllow},
		aclSpec{kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLResourcePatternTypeLiteral, "User:*", kmsg.ACLOperationIdempotentWrite, kmsg.ACLPermissionTypeAllow},
	)
	bob := userClient(t, c, "bob")
	for _, topic := range []string{"logs-app", "logs-db"} {
		if err := produceOne(t, bob, topic); err != nil {
			t.Fatalf("bob producing to %s (prefixed ACL logs-): %v", topic, err)
		}
	}
	if err := produceOne(t, bob, "metrics"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("bob producing to metrics: want TOPIC_AUTHORIZATION_FAILED, got %v", err)
	}
	// open has no ACL at all: allow.everyone.if.no.acl.found lets it be.
	if err := produceOne(t, bob, "open"); err != nil {
		t.Fatalf("bob producing to a topic without ACLs: %v", err)
	}
}

func TestACLDenyOverridesAllow(t *testing.T) {
	c := secureCluster(t)
	admin := userClient(t, c, "admin")
	createTopics(t, admin, 1, "payroll")
	if err := produceOne(t, admin, "payroll"); err != nil {
		t.Fatal(err)
	}
	createACLs(t, admin,
		aclSpec{kmsg.ACLResourceTypeTopic, "*", kmsg.ACLResourcePatternTypeLiteral, "User:*", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow},
		aclSpec{kmsg.ACLResourceTypeTopic, "pay", kmsg.ACLResourcePatternTypePrefixed, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeDeny},
	)
	if err := fetchErr(t, c, userClient(t, c, "bob"), "payroll"); err != nil {
		t.Fatalf("bob (User:* on *) fetching payroll: %v", err)
	}
	if err := fetchErr(t, c, userClient(t, c, "alice"), "payroll"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("alice (denied by prefix) fetching payroll: want TOPIC_AUTHORIZATION_FAILED, got %v", err)
	}
}

func TestACLAdminAPIs(t *testing.T) {
	// Without an authorizer the ACL APIs are SECURITY_DISABLED.
	plainC := Start(t, Brokers(1))
	cl, err := kgo.NewClient(kgo.SeedBrokers(plainC.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	dreq := kmsg.NewPtrDescribeACLsRequest()
	dreq.ResourceType, dreq.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	dreq.Operation, dreq.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	if resp, err := dreq.RequestWith(tctx(t), cl); err != nil || resp.ErrorCode != kerr.SecurityDisabled.Code {
		t.Fatalf("DescribeAcls without an authorizer: %v %v", err, resp)
	}

	c := secureCluster(t)
	admin := userClient(t, c, "admin")
	// Only ALTER on the cluster may create ACLs.
	req := kmsg.NewPtrCreateACLsRequest()
	cr := kmsg.NewCreateACLsRequestCreation()
	cr.ResourceType, cr.ResourceName, cr.Principal, cr.Host = kmsg.ACLResourceTypeGroup, "g", "User:alice", "*"
	cr.Operation, cr.PermissionType = kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow
	req.Creations = append(req.Creations, cr)
	if resp, err := req.RequestWith(tctx(t), userClient(t, c, "alice")); err != nil || resp.Results[0].ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("alice creating an ACL: %v %+v", err, resp)
	}
	// AlterReplicaLogDirs has no top-level error: each partition is
	// CLUSTER_AUTHORIZATION_FAILED without ALTER on the cluster.
	ard := kmsg.NewPtrAlterReplicaLogDirsRequest()
	ardDir := kmsg.NewAlterReplicaLogDirsRequestDir()
	ardDir.Dir = "/x"
	ardTopic := kmsg.NewAlterReplicaLogDirsRequestDirTopic()
	ardTopic.Topic, ardTopic.Partitions = "t", []int32{0, 1}
	ardDir.Topics = append(ardDir.Topics, ardTopic)
	ard.Dirs = append(ard.Dirs, ardDir)
	// Straight to the broker: the client would shard by the topic's
	// replicas, which alice may not describe.
	alter := func(cl *kgo.Client) (*kmsg.AlterReplicaLogDirsResponse, error) {
		resp, err := cl.Broker(1).Request(tctx(t), ard)
		if err != nil {
			return nil, err
		}
		return resp.(*kmsg.AlterReplicaLogDirsResponse), nil
	}
	if resp, err := alter(userClient(t, c, "alice")); err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 ||
		resp.Topics[0].Partitions[0].ErrorCode != kerr.ClusterAuthorizationFailed.Code || resp.Topics[0].Partitions[1].ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("alice moving a replica: %v %+v", err, resp)
	}
	if resp, err := alter(admin); err != nil || resp.Topics[0].Partitions[0].ErrorCode != kerr.LogDirNotFound.Code {
		t.Fatalf("admin moving a replica to a dir that does not exist: %v %+v", err, resp)
	}
	createACLs(t, admin,
		aclSpec{kmsg.ACLResourceTypeGroup, "g", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow},
		aclSpec{kmsg.ACLResourceTypeTopic, "t-", kmsg.ACLResourcePatternTypePrefixed, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow},
	)
	// MATCH finds the prefixed ACL that applies to t-1.
	dreq = kmsg.NewPtrDescribeACLsRequest()
	dreq.ResourceType, dreq.ResourceName, dreq.ResourcePatternType = kmsg.ACLResourceTypeTopic, kmsg.StringPtr("t-1"), kmsg.ACLResourcePatternTypeMatch
	dreq.Operation, dreq.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	dresp, err := dreq.RequestWith(tctx(t), admin)
	if err != nil || dresp.ErrorCode != 0 || len(dresp.Resources) != 1 || dresp.Resources[0].ResourceName != "t-" {
		t.Fatalf("DescribeAcls MATCH t-1: %v %+v", err, dresp)
	}
	del := kmsg.NewPtrDeleteACLsRequest()
	f := kmsg.NewDeleteACLsRequestFilter()
	f.ResourceType, f.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeAny
	f.Principal, f.Operation, f.PermissionType = kmsg.StringPtr("User:alice"), kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	del.Filters = append(del.Filters, f)
	delResp, err := del.RequestWith(tctx(t), admin)
	if err != nil || delResp.Results[0].ErrorCode != 0 || len(delResp.Results[0].MatchingACLs) != 2 {
		t.Fatalf("DeleteAcls: %v %+v", err, delResp)
	}
	dreq.ResourceType, dreq.ResourceName, dreq.ResourcePatternType = kmsg.ACLResourceTypeAny, nil, kmsg.ACLResourcePatternTypeAny
	if dresp, err := dreq.RequestWith(tctx(t), admin); err != nil || len(dresp.Resources) != 0 {
		t.Fatalf("DescribeAcls after delete: %v %+v", err, dresp)
	}
}

func TestACLGroupAuthorization(t *testing.T) {
	c := secureCluster(t)
	admin := userClient(t, c, "admin")
	createTopics(t, admin, 1, "events")
	createACLs(t, admin, aclSpec{kmsg.ACLResourceTypeTopic, "events", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow})
	alice := userClient(t, c, "alice")
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKey, req.CoordinatorKeys = "cg", []string{"cg"}
	resp, err := req.RequestWith(tctx(t), alice)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Coordinators) != 1 || resp.Coordinators[0].ErrorCode != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("FindCoordinator without group ACL: %+v", resp)
	}
	createACLs(t, admin, aclSpec{kmsg.ACLResourceTypeGroup, "cg", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationRead, kmsg.ACLPermissionTypeAllow})
	resp, err = req.RequestWith(tctx(t), alice)
	if err != nil || resp.Coordinators[0].ErrorCode != 0 {
		t.Fatalf("FindCoordinator with READ on the group: %v %+v", err, resp)
	}
}

func TestReplicationUnderAuthorizer(t *testing.T) {
	c := secureCluster(t, Brokers(3), BrokerConfig("min.insync.replicas", "3"))
	admin := userClient(t, c, "admin")
	createTopics(t, admin, 3, "replicated")
	createACLs(t, admin,
		aclSpec{kmsg.ACLResourceTypeTopic, "replicated", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationWrite, kmsg.ACLPermissionTypeAllow},
		aclSpec{kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLResourcePatternTypeLiteral, "User:alice", kmsg.ACLOperationIdempotentWrite, kmsg.ACLPermissionTypeAllow},
	)
	// ACLs reach every broker as the metadata log does: wait until the
	// partition's leader has them too.
	if err := c.WaitFor(tctx(t), func(c *Cluster) bool { return c.metadataSettled() }); err != nil {
		t.Fatal(err)
	}
	alice := userClient(t, c, "alice", kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := range 5 {
		if err := produceOne(t, alice, "replicated"); err != nil {
			t.Fatalf("acks=all produce %d with min.insync.replicas=3: %v", i, err)
		}
	}
	if err := c.WaitFor(tctx(t), HighWatermarkAtLeast("replicated", 0, 5)); err != nil {
		t.Fatal(err)
	}
	st, err := c.PartitionState("replicated", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.ISR) != 3 {
		t.Fatalf("ISR %v, want all three replicas", st.ISR)
	}
}

func TestAlterUserScramCredentials(t *testing.T) {
	c := secureCluster(t, SASLUser("SCRAM-SHA-256", "erin", "erin-secret"))
	admin := userClient(t, c, "admin")
	salt := []byte("0123456789abcdef")
	salted, err := pbkdf2.Key(sha256.New, "dave-secret", salt, 8192, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
	up.Name, up.Mechanism, up.Iterations, up.Salt, up.SaltedPassword = "dave", 1, 8192, salt, salted
	req.Upsertions = append(req.Upsertions, up)
	resp, err := req.RequestWith(tctx(t), admin)
	if err != nil || len(resp.Results) != 1 || resp.Results[0].ErrorCode != 0 {
		t.Fatalf("AlterUserScramCredentials: %v %+v", err, resp)
	}
	dave := scram.Auth{User: "dave", Pass: "dave-secret"}.AsSha256Mechanism()
	if err := pingErr(saslClient(t, c, dave)); err != nil {
		t.Fatalf("dave after his credential was added: %v", err)
	}
	dreq := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	dresp, err := dreq.RequestWith(tctx(t), admin)
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, r := range dresp.Results {
		users = append(users, r.User)
	}
	if !slices.Equal(users, []string{"dave", "erin"}) {
		t.Fatalf("described users %v, want dave and erin (SASLUser's)", users)
	}
	// Too few iterations are refused.
	up.Iterations = 100
	req.Upsertions = []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{up}
	if resp, err := req.RequestWith(tctx(t), admin); err != nil || resp.Results[0].ErrorCode != kerr.UnacceptableCredential.Code {
		t.Fatalf("100 iterations: %v %+v", err, resp)
	}
	// Deleted, dave cannot log in.
	del := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
	d.Name, d.Mechanism = "dave", 1
	del.Deletions = append(del.Deletions, d)
	if resp, err := del.RequestWith(tctx(t), admin); err != nil || resp.Results[0].ErrorCode != 0 {
		t.Fatalf("deleting dave: %v %+v", err, resp)
	}
	if err := pingErr(saslClient(t, c, dave)); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("dave after deletion: %v", err)
	}
	// A non-super user may not alter credentials.
	if resp, err := req.RequestWith(tctx(t), userClient(t, c, "alice")); err != nil || resp.Results[0].ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("alice altering credentials: %v %+v", err, resp)
	}
}

// TestAuthzRuleForEveryAPI checks that every served API has an
// authorization rule (or is deliberately unchecked).
func TestAuthzRuleForEveryAPI(t *testing.T) {
	for k := range handlers {
		if _, ok := authzRules[k]; !ok {
			t.Errorf("%s has no authorization rule", kmsg.NameForKey(k))
		}
	}
}
