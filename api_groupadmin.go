package kcluster

// Group administration: DescribeGroups v0-v6 (KIP-430 authorized
// operations from v3, KIP-345 instance ids from v4, KIP-1043
// GROUP_ID_NOT_FOUND with an error message for an unknown or non-classic
// group from v6, Dead without an error before), ListGroups v0-v5
// (KIP-518 state filter from v4, KIP-848 type filter from v5) and
// DeleteGroups v0-v2. DescribeGroups and DeleteGroups go to the group's
// coordinator; ListGroups lists the groups a broker coordinates, so a
// client asks every broker.

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() {
	reg(0, 6, (*broker).handleDescribeGroups)
	reg(0, 5, (*broker).handleListGroups)
	reg(0, 2, (*broker).handleDeleteGroups)
}

func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (b *broker) handleDescribeGroups(req *kmsg.DescribeGroupsRequest, r *request) (*kmsg.DescribeGroupsResponse, error) {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = name
		rg.AuthorizedOperations = -2147483648
		err := b.groups.withGroup(name, func(gs *groupShard, g *group) error {
			if g == nil || g.kind == kindConsumer || g.kind == kindShare {
				rg.State = stateDead
				if req.Version < 6 {
					return nil
				}
				msg := "Group " + name + " not found."
				if g != nil {
					msg = "Group " + name + " is not a classic group."
				}
				rg.ErrorMessage = &msg
				return kerr.GroupIDNotFound
			}
			rg.State, rg.ProtocolType = g.state, g.protocolType
			stable := g.state == stateStable
			if stable {
				rg.Protocol = g.protocol
			}
			for _, id := range g.joinOrder {
				m := g.members[id]
				rm := kmsg.NewDescribeGroupsResponseGroupMember()
				rm.MemberID, rm.InstanceID, rm.ClientID, rm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
				if stable {
					rm.ProtocolMetadata, rm.MemberAssignment = m.metadataFor(g.protocol), m.assignment
				}
				rg.Members = append(rg.Members, rm)
			}
			return nil
		})
		if err != nil {
			rg.ErrorCode = errCode(err)
		} else if req.IncludeAuthorizedOperations {
			rg.AuthorizedOperations = authCtx{b, r.sess}.authorizedOperations(kmsg.ACLResourceTypeGroup, name, groupOperations)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return resp, nil
}

func (b *broker) handleListGroups(req *kmsg.ListGroupsRequest, r *request) (*kmsg.ListGroupsResponse, error) {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	match := func(filter []string, v string) bool {
		return len(filter) == 0 || slices.ContainsFunc(filter, func(f string) bool { return strings.EqualFold(f, v) })
	}
	groups, err := gather(b.groups.rt, func(gs *groupShard) []kmsg.ListGroupsResponseGroup {
		var out []kmsg.ListGroupsResponseGroup
		for _, name := range sortedKeys(gs.groups) {
			g := gs.groups[name]
			state, ptype := g.state, g.protocolType
			switch g.kind {
			case kindConsumer:
				state, ptype = g.cg.state, "consumer"
			case kindShare:
				state, ptype = g.sg.state, "share"
			}
			if !match(req.StatesFilter, state) || !match(req.TypesFilter, g.kind) {
				continue
			}
			lg := kmsg.NewListGroupsResponseGroup()
			lg.Group, lg.ProtocolType, lg.GroupState, lg.GroupType = name, ptype, state, g.kind
			out = append(out, lg)
		}
		return out
	})
	resp.Groups = groups
	resp.ErrorCode = errCode(err) // a shard loading, or not committed in time
	return resp, nil
}

func (b *broker) handleDeleteGroups(req *kmsg.DeleteGroupsRequest, r *request) (*kmsg.DeleteGroupsResponse, error) {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = name
		err := b.groups.withGroup(name, func(gs *groupShard, g *group) error {
			if g == nil {
				return kerr.GroupIDNotFound
			}
			if !g.isEmptyState() {
				return kerr.NonEmptyGroup
			}
			var recs []kmsg.Record
			for _, t := range sortedKeys(g.offsets) {
				for _, p := range sortedKeys(g.offsets[t]) {
					recs = append(recs, offsetTombstone(name, t, p))
				}
			}
			switch {
			case g.cg != nil:
				recs = append(recs, consumerGroupTombstones(name, g.cg)...)
			case g.sg != nil:
				recs = append(recs, shareGroupTombstones(name, g.sg)...)
			default:
				recs = append(recs, groupTombstone(name))
			}
			if err := gs.writeLocked(recs); err != nil {
				return err
			}
			if g.sg != nil {
				// A share group's share-partition state goes with
				// it, as Kafka's coordinator deletes it through the
				// persister: those initialized, and those it may be
				// initializing.
				ids := gs.topicIDs()
				for _, set := range []map[string][]int32{g.sg.initialized, g.sg.initializing} {
					for t, ps := range set {
						for _, p := range ps {
							b.shares.persister.deleteState(sharePartitionKey{name, ids[t], p})
						}
					}
				}
			}
			g.resetClassic(time.Now())
			g.cg, g.sg = nil, nil
			delete(gs.groups, name)
			return nil
		})
		rg.ErrorCode = errCode(err)
		resp.Groups = append(resp.Groups, rg)
	}
	b.c.notifyEvent()
	return resp, nil
}
