package kcluster

// CreateAcls v0-v3, DescribeAcls v0-v3 and DeleteAcls v0-v3 (KIP-140
// admin ACLs, KIP-290 prefixed patterns, KIP-482 flexible versions).
// ACLs are metadata records (metadata/acls.go): creations and deletions
// are forwarded to the controller, which writes AccessControlEntry and
// RemoveAccessControlEntry records; every broker replays them and its
// authorizer (authz.go) reads them. Any broker describes from its own
// metadata. Without an authorizer (authorizer.class.name unset) the three
// answer SECURITY_DISABLED, as Kafka.

import (
	"context"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func init() {
	reg(0, 3, (*broker).handleDescribeACLs)
	reg(0, 3, (*broker).forwardCreateACLs)
	reg(0, 3, (*broker).forwardDeleteACLs)
	regCtrl(0, 3, (*controllerNode).handleCreateACLs)
	regCtrl(0, 3, (*controllerNode).handleDeleteACLs)
}

// clusterResourceName is the one name of the CLUSTER resource.
const clusterResourceName = "kafka-cluster"

var errSecurityDisabled = fmt.Errorf("%w: no authorizer is configured on the broker", kerr.SecurityDisabled)

func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

// patternOrLiteral is the pattern type of a v0 request, which has none.
func patternOrLiteral(p kmsg.ACLResourcePatternType) int8 {
	if p == 0 {
		return metadata.PatternLiteral
	}
	return int8(p)
}

// validateACL checks a new ACL by Kafka's rules.
func validateACL(a metadata.ACL) error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", kerr.InvalidRequest, what) }
	switch {
	case a.ResourceType < int8(kmsg.ACLResourceTypeTopic) || a.ResourceType > int8(kmsg.ACLResourceTypeUser):
		return bad("invalid resource type")
	case a.PatternType != metadata.PatternLiteral && a.PatternType != metadata.PatternPrefixed:
		return bad("invalid pattern type: only LITERAL and PREFIXED ACLs can be created")
	case a.Operation < int8(kmsg.ACLOperationAll) || a.Operation > int8(kmsg.ACLOperationDescribeTokens):
		return bad("invalid operation")
	case a.Permission != int8(kmsg.ACLPermissionTypeAllow) && a.Permission != int8(kmsg.ACLPermissionTypeDeny):
		return bad("invalid permission type")
	case a.ResourceName == "":
		return bad("resource name should not be empty")
	case a.ResourceType == int8(kmsg.ACLResourceTypeCluster) && a.ResourceName != clusterResourceName:
		return bad("the only valid name for the CLUSTER resource is " + clusterResourceName)
	case a.Host == "":
		return bad("host should not be empty")
	}
	typ, name, ok := strings.Cut(a.Principal, ":")
	if !ok || typ == "" || name == "" {
		return bad(fmt.Sprintf("invalid principal %q: want Type:name", a.Principal))
	}
	return nil
}

// validateACLFilter checks a DescribeAcls or DeleteAcls filter.
func validateACLFilter(f metadata.ACLFilter) error {
	if f.ResourceType == 0 || f.PatternType == 0 || f.Operation == 0 || f.Permission == 0 ||
		f.ResourceType > int8(kmsg.ACLResourceTypeUser) || f.PatternType > metadata.PatternPrefixed ||
		f.Operation > int8(kmsg.ACLOperationDescribeTokens) || f.Permission > int8(kmsg.ACLPermissionTypeAllow) {
		return fmt.Errorf("%w: invalid ACL filter", kerr.InvalidRequest)
	}
	return nil
}

func (b *broker) handleDescribeACLs(req *kmsg.DescribeACLsRequest, r *request) (*kmsg.DescribeACLsResponse, error) {
	b.readYourWrites()
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	if !b.cfg.security.authorizer {
		resp.ErrorCode, resp.ErrorMessage = kerr.SecurityDisabled.Code, errMessage(errSecurityDisabled)
		return resp, nil
	}
	f := metadata.ACLFilter{ResourceType: int8(req.ResourceType), ResourceName: req.ResourceName,
		PatternType: patternOrLiteral(req.ResourcePatternType), Principal: req.Principal, Host: req.Host,
		Operation: int8(req.Operation), Permission: int8(req.PermissionType)}
	if err := validateACLFilter(f); err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), errMessage(err)
		return resp, nil
	}
	b.mu.RLock()
	acls := b.mu.state.ACLList()
	b.mu.RUnlock()
	type resKey struct {
		typ     int8
		name    string
		pattern int8
	}
	idx := map[resKey]int{}
	for _, a := range acls {
		if !f.Matches(a) {
			continue
		}
		k := resKey{a.ResourceType, a.ResourceName, a.PatternType}
		i, ok := idx[k]
		if !ok {
			res := kmsg.NewDescribeACLsResponseResource()
			res.ResourceType, res.ResourceName = kmsg.ACLResourceType(k.typ), k.name
			res.ResourcePatternType = kmsg.ACLResourcePatternType(k.pattern)
			resp.Resources = append(resp.Resources, res)
			i = len(resp.Resources) - 1
			idx[k] = i
		}
		ra := kmsg.NewDescribeACLsResponseResourceACL()
		ra.Principal, ra.Host = a.Principal, a.Host
		ra.Operation, ra.PermissionType = kmsg.ACLOperation(a.Operation), kmsg.ACLPermissionType(a.Permission)
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, ra)
	}
	return resp, nil
}

func aclOfCreation(c kmsg.CreateACLsRequestCreation) metadata.ACL {
	return metadata.ACL{ResourceType: int8(c.ResourceType), ResourceName: c.ResourceName,
		PatternType: patternOrLiteral(c.ResourcePatternType), Principal: c.Principal, Host: c.Host,
		Operation: int8(c.Operation), Permission: int8(c.PermissionType)}
}

func aclFilterOf(f kmsg.DeleteACLsRequestFilter) metadata.ACLFilter {
	return metadata.ACLFilter{ResourceType: int8(f.ResourceType), ResourceName: f.ResourceName,
		PatternType: patternOrLiteral(f.ResourcePatternType), Principal: f.Principal, Host: f.Host,
		Operation: int8(f.Operation), Permission: int8(f.PermissionType)}
}

func (b *broker) forwardCreateACLs(req *kmsg.CreateACLsRequest, r *request) (*kmsg.CreateACLsResponse, error) {
	fail := func(err error) *kmsg.CreateACLsResponse {
		resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
		for range req.Creations {
			res := kmsg.NewCreateACLsResponseResult()
			res.ErrorCode, res.ErrorMessage = errCode(err), errMessage(err)
			resp.Results = append(resp.Results, res)
		}
		return resp
	}
	if !b.cfg.security.authorizer {
		return fail(errSecurityDisabled), nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, requestTimeout(0))
	defer cancel()
	kresp, err := b.ac.request(ctx, req)
	if err != nil {
		return fail(kerr.NotController), nil
	}
	resp := kresp.(*kmsg.CreateACLsResponse)
	// Answer once this broker enforces what was created.
	b.waitState(ctx, func(st *metadata.State) bool {
		for i, c := range req.Creations {
			if i >= len(resp.Results) || resp.Results[i].ErrorCode != 0 {
				continue
			}
			want, found := aclOfCreation(c), false
			for _, a := range st.ACLs {
				if *a == want {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	})
	return resp, nil
}

func (n *controllerNode) handleCreateACLs(req *kmsg.CreateACLsRequest) (*kmsg.CreateACLsResponse, error) {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	var valid []metadata.ACL
	var at []int
	for i, c := range req.Creations {
		res := kmsg.NewCreateACLsResponseResult()
		a := aclOfCreation(c)
		if err := validateACL(a); err != nil {
			res.ErrorCode, res.ErrorMessage = errCode(err), errMessage(err)
		} else {
			valid = append(valid, a)
			at = append(at, i)
		}
		resp.Results = append(resp.Results, res)
	}
	if len(valid) > 0 {
		if err := n.ctrl.CreateACLs(n.ctx, valid); err != nil {
			for _, i := range at {
				resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = errCode(err), errMessage(err)
			}
		}
	}
	return resp, nil
}

func (b *broker) forwardDeleteACLs(req *kmsg.DeleteACLsRequest, r *request) (*kmsg.DeleteACLsResponse, error) {
	fail := func(err error) *kmsg.DeleteACLsResponse {
		resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
		for range req.Filters {
			res := kmsg.NewDeleteACLsResponseResult()
			res.ErrorCode, res.ErrorMessage = errCode(err), errMessage(err)
			resp.Results = append(resp.Results, res)
		}
		return resp
	}
	if !b.cfg.security.authorizer {
		return fail(errSecurityDisabled), nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, requestTimeout(0))
	defer cancel()
	kresp, err := b.ac.request(ctx, req)
	if err != nil {
		return fail(kerr.NotController), nil
	}
	resp := kresp.(*kmsg.DeleteACLsResponse)
	b.waitState(ctx, func(st *metadata.State) bool {
		for i := range req.Filters {
			if i >= len(resp.Results) || resp.Results[i].ErrorCode != 0 {
				continue
			}
			for _, m := range resp.Results[i].MatchingACLs {
				gone := metadata.ACL{ResourceType: int8(m.ResourceType), ResourceName: m.ResourceName,
					PatternType: int8(m.ResourcePatternType), Principal: m.Principal, Host: m.Host,
					Operation: int8(m.Operation), Permission: int8(m.PermissionType)}
				for _, a := range st.ACLs {
					if *a == gone {
						return false
					}
				}
			}
		}
		return true
	})
	return resp, nil
}

func (n *controllerNode) handleDeleteACLs(req *kmsg.DeleteACLsRequest) (*kmsg.DeleteACLsResponse, error) {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	var filters []metadata.ACLFilter
	var at []int
	for i, f := range req.Filters {
		res := kmsg.NewDeleteACLsResponseResult()
		mf := aclFilterOf(f)
		if err := validateACLFilter(mf); err != nil {
			res.ErrorCode, res.ErrorMessage = errCode(err), errMessage(err)
		} else {
			filters = append(filters, mf)
			at = append(at, i)
		}
		resp.Results = append(resp.Results, res)
	}
	if len(filters) == 0 {
		return resp, nil
	}
	matched, err := n.ctrl.DeleteACLs(n.ctx, filters)
	for j, i := range at {
		if err != nil {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = errCode(err), errMessage(err)
			continue
		}
		for _, a := range matched[j] {
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType, m.ResourceName = kmsg.ACLResourceType(a.ResourceType), a.ResourceName
			m.ResourcePatternType = kmsg.ACLResourcePatternType(a.PatternType)
			m.Principal, m.Host = a.Principal, a.Host
			m.Operation, m.PermissionType = kmsg.ACLOperation(a.Operation), kmsg.ACLPermissionType(a.Permission)
			resp.Results[i].MatchingACLs = append(resp.Results[i].MatchingACLs, m)
		}
	}
	return resp, nil
}
