package kcluster

// The authorizer, as Kafka's StandardAuthorizer, and the per-API checks
// Kafka's request handlers make, in one table checked by broker.handle
// before dispatch. It is on when the broker config authorizer.class.name
// is StandardAuthorizer; off, nothing is checked.
//
// A request is allowed for a principal from a host when the principal is a
// super user (super.users, or InternalPrincipal); else when no DENY ACL
// matches and an ALLOW ACL does; else, when no ACL at all exists for the
// resource, when allow.everyone.if.no.acl.found is true. An ACL matches a
// resource when its type is the resource's and its pattern is LITERAL with
// the resource's name or "*", or PREFIXED with a prefix of the name; it
// matches the principal when its principal is that one or User:*, the
// host when its host is that one or "*", and the operation when its
// operation is it or ALL, or, for ALLOW ACLs, implies it (READ, WRITE,
// DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies
// DESCRIBE_CONFIGS).
//
// Each rule below does what Kafka's handler does for its API: a whole
// request refused with its authorization error (TOPIC_, GROUP_,
// CLUSTER_ or TRANSACTIONAL_ID_AUTHORIZATION_FAILED), or the request
// split, the refused topics (groups, resources) answered with the error
// and the rest handled. Metadata filters inside its handler.

import (
	"reflect"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

// authCtx is one request's authorization: the broker and the session.
type authCtx struct {
	b *broker
	s *session
}

// ok reports whether the session's principal may do op on the resource.
func (a authCtx) ok(op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	if a.s == nil {
		return true // the broker's own requests
	}
	if a.b.cfg.security.isSuper(a.s.principal) {
		return true
	}
	a.b.mu.RLock()
	defer a.b.mu.RUnlock()
	return authorizeLocked(a.b.mu.state, &a.b.cfg.security, a.s.principal, a.s.host, op, rt, name)
}

func (a authCtx) cluster(op kmsg.ACLOperation) bool {
	return a.ok(op, kmsg.ACLResourceTypeCluster, clusterResourceName)
}

// authorizeLocked decides one access by the ACLs in st.
func authorizeLocked(st *metadata.State, cfg *securityConfig, principal, host string, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	any, allow := false, false
	for _, acl := range st.ACLs {
		if acl.ResourceType != int8(rt) {
			continue
		}
		switch acl.PatternType {
		case metadata.PatternLiteral:
			if acl.ResourceName != name && acl.ResourceName != metadata.WildcardResource {
				continue
			}
		case metadata.PatternPrefixed:
			if !strings.HasPrefix(name, acl.ResourceName) {
				continue
			}
		default:
			continue
		}
		any = true
		if acl.Principal != principal && acl.Principal != metadata.WildcardPrincipal {
			continue
		}
		if acl.Host != host && acl.Host != metadata.WildcardHost {
			continue
		}
		aop := kmsg.ACLOperation(acl.Operation)
		switch kmsg.ACLPermissionType(acl.Permission) {
		case kmsg.ACLPermissionTypeDeny:
			if aop == op || aop == kmsg.ACLOperationAll {
				return false // deny wins
			}
		case kmsg.ACLPermissionTypeAllow:
			if aop == op || aop == kmsg.ACLOperationAll || implies(aop, op) {
				allow = true
			}
		}
	}
	if allow {
		return true
	}
	return !any && cfg.allowIfNoACL
}

// implies reports whether an ALLOW of have also allows want.
func implies(have, want kmsg.ACLOperation) bool {
	switch want {
	case kmsg.ACLOperationDescribe:
		return have == kmsg.ACLOperationRead || have == kmsg.ACLOperationWrite ||
			have == kmsg.ACLOperationDelete || have == kmsg.ACLOperationAlter
	case kmsg.ACLOperationDescribeConfigs:
		return have == kmsg.ACLOperationAlterConfigs
	}
	return false
}

// anyTopicAllowed reports whether the principal may do op on some topic
// (Kafka's authorizeByResourceType, used by idempotent InitProducerId):
// an ALLOW ACL for it on a topic pattern that no DENY on the same pattern
// or on every topic cancels.
func (a authCtx) anyTopicAllowed(op kmsg.ACLOperation) bool {
	if a.s == nil || a.b.cfg.security.isSuper(a.s.principal) {
		return true
	}
	a.b.mu.RLock()
	defer a.b.mu.RUnlock()
	st := a.b.mu.state
	matches := func(acl *metadata.ACL, perm kmsg.ACLPermissionType) bool {
		aop := kmsg.ACLOperation(acl.Operation)
		return acl.ResourceType == int8(kmsg.ACLResourceTypeTopic) && kmsg.ACLPermissionType(acl.Permission) == perm &&
			(acl.Principal == a.s.principal || acl.Principal == metadata.WildcardPrincipal) &&
			(acl.Host == a.s.host || acl.Host == metadata.WildcardHost) &&
			(aop == op || aop == kmsg.ACLOperationAll)
	}
	for _, allow := range st.ACLs {
		if !matches(allow, kmsg.ACLPermissionTypeAllow) {
			continue
		}
		denied := false
		for _, deny := range st.ACLs {
			if matches(deny, kmsg.ACLPermissionTypeDeny) && deny.PatternType == allow.PatternType && deny.ResourceName == allow.ResourceName ||
				matches(deny, kmsg.ACLPermissionTypeDeny) && deny.PatternType == metadata.PatternLiteral && deny.ResourceName == metadata.WildcardResource {
				denied = true
				break
			}
		}
		if !denied {
			return true
		}
	}
	return len(st.ACLs) == 0 && a.b.cfg.security.allowIfNoACL
}

// authzRule authorizes one request: it refuses all of it (returning a
// response without calling next), or narrows it, calls next and adds
// the refused parts to the response.
type authzRule func(a authCtx, req kmsg.Request, next func() (kmsg.Response, error)) (kmsg.Response, error)

// authzRules holds a rule for every API key the broker serves (a test
// checks that none is missing); nil means no check, as Kafka makes none.
var authzRules = map[int16]authzRule{}

func rule[Req kmsg.Request](fn func(a authCtx, req Req, next func() (kmsg.Response, error)) (kmsg.Response, error)) authzRule {
	return func(a authCtx, req kmsg.Request, next func() (kmsg.Response, error)) (kmsg.Response, error) {
		return fn(a, req.(Req), next)
	}
}

func (b *broker) authorizeAndHandle(h handler, r *request) (kmsg.Response, error) {
	next := func() (kmsg.Response, error) { return h.fn(b, r) }
	rl, ok := authzRules[r.hdr.Key]
	if !ok {
		// A served API without a rule: only super users, so nothing is
		// left unguarded.
		rl = gate(kmsg.ACLOperationClusterAction, kmsg.ACLResourceTypeCluster, nil, kerr.ClusterAuthorizationFailed)
	}
	if rl == nil {
		return next()
	}
	return rl(authCtx{b, r.sess}, r.kreq, next)
}

// setTopError sets a response's top-level ErrorCode (every response of
// the APIs that use gate has one).
func setTopError(resp kmsg.Response, code int16) {
	if f := reflect.ValueOf(resp).Elem().FieldByName("ErrorCode"); f.IsValid() && f.CanSet() {
		f.SetInt(int64(code))
	}
}

// gate refuses the whole request, with the response's top-level error,
// unless op on the resource named by name (the cluster when nil) is
// allowed.
func gate(op kmsg.ACLOperation, rt kmsg.ACLResourceType, name func(kmsg.Request) string, err *kerr.Error) authzRule {
	return func(a authCtx, req kmsg.Request, next func() (kmsg.Response, error)) (kmsg.Response, error) {
		n := clusterResourceName
		if name != nil {
			n = name(req)
		}
		if a.ok(op, rt, n) {
			return next()
		}
		resp := req.ResponseKind()
		setTopError(resp, err.Code)
		return resp, nil
	}
}

// split keeps the elements whose name is allowed and returns the others.
func split[T, K any](xs []T, name func(T) K, allowed func(K) bool) (keep, denied []T) {
	for _, x := range xs {
		if allowed(name(x)) {
			keep = append(keep, x)
		} else {
			denied = append(denied, x)
		}
	}
	return keep, denied
}

func (a authCtx) topic(op kmsg.ACLOperation) func(string) bool {
	return func(name string) bool { return a.ok(op, kmsg.ACLResourceTypeTopic, name) }
}

// topicName resolves a topic id to its name ("" when unknown).
func (a authCtx) topicName(id [16]byte) string {
	a.b.mu.RLock()
	defer a.b.mu.RUnlock()
	if t := a.b.mu.state.TopicsByID[id]; t != nil {
		return t.Name
	}
	return ""
}

var (
	errTopicAuthz   = kerr.TopicAuthorizationFailed.Code
	errGroupAuthz   = kerr.GroupAuthorizationFailed.Code
	errClusterAuthz = kerr.ClusterAuthorizationFailed.Code
	errTxnAuthz     = kerr.TransactionalIDAuthorizationFailed.Code
)

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func groupOf[Req interface{ kmsg.Request }](get func(Req) string) func(kmsg.Request) string {
	return func(r kmsg.Request) string { return get(r.(Req)) }
}

func init() {
	// No check, as Kafka.
	for _, k := range []int16{apiVersionsKey, saslHandshakeKey, saslAuthenticateKey, 3 /* Metadata: in its handler */, 60 /* DescribeCluster */} {
		authzRules[k] = nil
	}

	clusterGate := func(op kmsg.ACLOperation) authzRule {
		return gate(op, kmsg.ACLResourceTypeCluster, nil, kerr.ClusterAuthorizationFailed)
	}
	authzRules[29] = clusterGate(kmsg.ACLOperationDescribe)        // DescribeAcls
	authzRules[35] = clusterGate(kmsg.ACLOperationDescribe)        // DescribeLogDirs
	authzRules[43] = clusterGate(kmsg.ACLOperationAlter)           // ElectLeaders
	authzRules[45] = clusterGate(kmsg.ACLOperationAlter)           // AlterPartitionReassignments
	authzRules[46] = clusterGate(kmsg.ACLOperationDescribe)        // ListPartitionReassignments
	authzRules[48] = clusterGate(kmsg.ACLOperationDescribeConfigs) // DescribeClientQuotas
	authzRules[50] = clusterGate(kmsg.ACLOperationDescribe)        // DescribeUserScramCredentials
	authzRules[55] = clusterGate(kmsg.ACLOperationDescribe)        // DescribeQuorum
	authzRules[57] = clusterGate(kmsg.ACLOperationAlter)           // UpdateFeatures
	authzRules[74] = clusterGate(kmsg.ACLOperationDescribeConfigs) // ListConfigResources

	groupGate := func(get func(kmsg.Request) string) authzRule {
		return gate(kmsg.ACLOperationRead, kmsg.ACLResourceTypeGroup, get, kerr.GroupAuthorizationFailed)
	}
	authzRules[11] = groupGate(groupOf(func(r *kmsg.JoinGroupRequest) string { return r.Group }))
	authzRules[12] = groupGate(groupOf(func(r *kmsg.HeartbeatRequest) string { return r.Group }))
	authzRules[13] = groupGate(groupOf(func(r *kmsg.LeaveGroupRequest) string { return r.Group }))
	authzRules[14] = groupGate(groupOf(func(r *kmsg.SyncGroupRequest) string { return r.Group }))
	authzRules[68] = groupGate(groupOf(func(r *kmsg.ConsumerGroupHeartbeatRequest) string { return r.Group }))
	// Share groups: READ on the group (Kafka checks the topics' READ
	// or DESCRIBE as well; kcluster checks the group only).
	authzRules[76] = groupGate(groupOf(func(r *kmsg.ShareGroupHeartbeatRequest) string { return r.GroupID }))
	authzRules[77] = rule(authorizeShareGroupDescribe)
	authzRules[78] = groupGate(groupOf(func(r *kmsg.ShareFetchRequest) string { return derefString(r.GroupID) }))
	authzRules[79] = groupGate(groupOf(func(r *kmsg.ShareAcknowledgeRequest) string { return derefString(r.GroupID) }))
	authzRules[90] = rule(authorizeDescribeShareGroupOffsets)
	authzRules[91] = groupGate(groupOf(func(r *kmsg.AlterShareGroupOffsetsRequest) string { return r.GroupID }))
	authzRules[92] = gate(kmsg.ACLOperationDelete, kmsg.ACLResourceTypeGroup, groupOf(func(r *kmsg.DeleteShareGroupOffsetsRequest) string { return r.GroupID }), kerr.GroupAuthorizationFailed)

	txnGate := func(get func(kmsg.Request) string) authzRule {
		return gate(kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTransactionalId, get, kerr.TransactionalIDAuthorizationFailed)
	}
	authzRules[26] = txnGate(groupOf(func(r *kmsg.EndTxnRequest) string { return r.TransactionalID })) // EndTxn

	authzRules[0] = rule(authorizeProduce)
	authzRules[1] = rule(authorizeFetch)
	authzRules[2] = rule(authorizeListOffsets)
	authzRules[8] = rule(authorizeOffsetCommit)
	authzRules[9] = rule(authorizeOffsetFetch)
	authzRules[10] = rule(authorizeFindCoordinator)
	authzRules[15] = rule(authorizeDescribeGroups)
	authzRules[16] = rule(authorizeListGroups)
	authzRules[19] = rule(authorizeCreateTopics)
	authzRules[20] = rule(authorizeDeleteTopics)
	authzRules[21] = rule(authorizeDeleteRecords)
	authzRules[22] = rule(authorizeInitProducerID)
	authzRules[23] = rule(authorizeOffsetForLeaderEpoch)
	authzRules[24] = rule(authorizeAddPartitionsToTxn)
	authzRules[25] = rule(authorizeAddOffsetsToTxn)
	authzRules[27] = rule(authorizeWriteTxnMarkers)
	authzRules[28] = rule(authorizeTxnOffsetCommit)
	authzRules[30] = rule(authorizeCreateACLs)
	authzRules[31] = rule(authorizeDeleteACLs)
	authzRules[32] = rule(authorizeDescribeConfigs)
	authzRules[33] = rule(authorizeAlterConfigs)
	authzRules[34] = rule(authorizeAlterReplicaLogDirs)
	authzRules[37] = rule(authorizeCreatePartitions)
	authzRules[42] = rule(authorizeDeleteGroups)
	authzRules[44] = rule(authorizeIncrementalAlterConfigs)
	authzRules[47] = rule(authorizeOffsetDelete)
	authzRules[49] = rule(authorizeAlterClientQuotas)
	authzRules[51] = rule(authorizeAlterUserSCRAM)
	authzRules[61] = rule(authorizeDescribeProducers)
	authzRules[65] = rule(authorizeDescribeTransactions)
	authzRules[66] = rule(authorizeListTransactions)
	authzRules[69] = rule(authorizeConsumerGroupDescribe)
	authzRules[75] = rule(authorizeDescribeTopicPartitions)
}
