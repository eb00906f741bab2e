package metadata

// Access control lists, as KRaft's AccessControlEntryRecord and
// RemoveAccessControlEntryRecord: the controller writes them (CreateAcls,
// DeleteAcls) and every broker's authorizer reads them from its State.
// Numeric codes are Kafka's (kmsg.ACLResourceType, ACLResourcePatternType,
// ACLOperation, ACLPermissionType).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
)

// Kafka's ACL codes used by the metadata package.
const (
	ACLAny = 1 // resource type, pattern type, operation, permission: any

	PatternMatch    = 2
	PatternLiteral  = 3
	PatternPrefixed = 4

	// WildcardResource is the literal resource name that matches every
	// name; WildcardPrincipal matches every principal.
	WildcardResource  = "*"
	WildcardPrincipal = "User:*"
	WildcardHost      = "*"
)

// ACL is one access control entry: Permission (ALLOW or DENY) of
// Operation on resources of ResourceType named ResourceName (exactly, or
// by prefix when PatternType is PREFIXED), for Principal from Host.
type ACL struct {
	ResourceType int8
	ResourceName string
	PatternType  int8
	Principal    string
	Host         string
	Operation    int8
	Permission   int8
}

// ACLFilter selects ACLs (DescribeAcls, DeleteAcls). A nil string and the
// code ACLAny match anything; PatternType MATCH matches every ACL that
// applies to the named resource (literal, wildcard and prefixed).
type ACLFilter struct {
	ResourceType int8
	ResourceName *string
	PatternType  int8
	Principal    *string
	Host         *string
	Operation    int8
	Permission   int8
}

// Matches reports whether the filter selects a.
func (f ACLFilter) Matches(a *ACL) bool {
	if f.ResourceType != ACLAny && f.ResourceType != a.ResourceType {
		return false
	}
	switch f.PatternType {
	case ACLAny:
		if f.ResourceName != nil && *f.ResourceName != a.ResourceName {
			return false
		}
	case PatternMatch:
		if f.ResourceName != nil {
			n := *f.ResourceName
			switch a.PatternType {
			case PatternLiteral:
				if a.ResourceName != n && a.ResourceName != WildcardResource {
					return false
				}
			case PatternPrefixed:
				if !strings.HasPrefix(n, a.ResourceName) {
					return false
				}
			default:
				return false
			}
		}
	default:
		if f.PatternType != a.PatternType || (f.ResourceName != nil && *f.ResourceName != a.ResourceName) {
			return false
		}
	}
	if f.Principal != nil && *f.Principal != a.Principal {
		return false
	}
	if f.Host != nil && *f.Host != a.Host {
		return false
	}
	if f.Operation != ACLAny && f.Operation != a.Operation {
		return false
	}
	return f.Permission == ACLAny || f.Permission == a.Permission
}

// AccessControlEntry adds an ACL under a unique id.
type AccessControlEntry struct {
	ID  string
	ACL ACL
}

// RemoveAccessControlEntry removes the ACL with the id.
type RemoveAccessControlEntry struct{ ID string }

func (*AccessControlEntry) recordType() string       { return "AccessControlEntry" }
func (*RemoveAccessControlEntry) recordType() string { return "RemoveAccessControlEntry" }

func (s *State) applyACL(r *AccessControlEntry) {
	if s.ACLs == nil {
		s.ACLs = make(map[string]*ACL)
	}
	a := r.ACL
	s.ACLs[r.ID] = &a
}

// ACLList returns the state's ACLs in a stable order (by id).
func (s *State) ACLList() []*ACL {
	ids := make([]string, 0, len(s.ACLs))
	for id := range s.ACLs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]*ACL, 0, len(ids))
	for _, id := range ids {
		out = append(out, s.ACLs[id])
	}
	return out
}

func newACLID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// CreateACLs adds ACLs; one equal to an existing ACL is not added twice
// (Kafka's creation is idempotent). The caller has validated them.
func (c *Controller) CreateACLs(ctx context.Context, acls []ACL) error {
	if err := c.lockActive(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	var recs []Record
	for _, a := range acls {
		dup := false
		for _, have := range c.mu.state.ACLs {
			if *have == a {
				dup = true
				break
			}
		}
		for _, r := range recs {
			if r.(*AccessControlEntry).ACL == a {
				dup = true
			}
		}
		if !dup {
			recs = append(recs, &AccessControlEntry{ID: newACLID(), ACL: a})
		}
	}
	if len(recs) == 0 {
		return nil
	}
	return c.proposeLocked(ctx, recs...)
}

// DeleteACLs removes every ACL any filter matches and returns, per filter,
// the ACLs it matched.
func (c *Controller) DeleteACLs(ctx context.Context, filters []ACLFilter) ([][]ACL, error) {
	if err := c.lockActive(ctx); err != nil {
		return nil, err
	}
	defer c.mu.Unlock()
	out := make([][]ACL, len(filters))
	removed := map[string]bool{}
	var recs []Record
	ids := make([]string, 0, len(c.mu.state.ACLs))
	for id := range c.mu.state.ACLs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for i, f := range filters {
		for _, id := range ids {
			a := c.mu.state.ACLs[id]
			if !f.Matches(a) {
				continue
			}
			out[i] = append(out[i], *a)
			if !removed[id] {
				removed[id] = true
				recs = append(recs, &RemoveAccessControlEntry{ID: id})
			}
		}
	}
	if len(recs) == 0 {
		return out, nil
	}
	return out, c.proposeLocked(ctx, recs...)
}
