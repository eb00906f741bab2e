package kcluster

// DescribeClientQuotas v0-v1 and AlterClientQuotas v0-v1 (KIP-546), for
// user and client-id entities (and ip connection rates, stored but not
// enforced). Any broker describes from its metadata; alterations go to
// the controller and are written as ClientQuota records, so every broker
// enforces them (quotas.go).

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func init() {
	reg(0, 1, (*broker).handleDescribeClientQuotas)
	reg(0, 1, (*broker).forwardAlterClientQuotas)
	regCtrl(0, 1, (*controllerNode).handleAlterClientQuotas)
}

// Quota keys by entity kind, as Kafka's QuotaConfig.
var (
	clientQuotaKeys = []string{"producer_byte_rate", "consumer_byte_rate", "request_percentage", "controller_mutation_rate"}
	ipQuotaKeys     = []string{"connection_creation_rate"}
)

func (b *broker) handleDescribeClientQuotas(req *kmsg.DescribeClientQuotasRequest, r *request) (*kmsg.DescribeClientQuotasResponse, error) {
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	seen := map[string]bool{}
	for _, c := range req.Components {
		if !slices.Contains([]string{"user", "client-id", "ip"}, c.EntityType) || seen[c.EntityType] ||
			(c.MatchType == kmsg.QuotasMatchTypeExact && c.Match == nil) || c.MatchType > kmsg.QuotasMatchTypeAny {
			resp.ErrorCode = kerr.InvalidRequest.Code
			msg := fmt.Sprintf("invalid component %q", c.EntityType)
			resp.ErrorMessage = &msg
			return resp, nil
		}
		seen[c.EntityType] = true
	}
	b.readYourWrites()
	b.mu.RLock()
	defer b.mu.RUnlock()
	keys := make([]string, 0, len(b.mu.state.ClientQuotas))
	for k := range b.mu.state.ClientQuotas {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		q := b.mu.state.ClientQuotas[k]
		if !quotaMatches(q.Entity, req.Components, req.Strict) {
			continue
		}
		e := kmsg.NewDescribeClientQuotasResponseEntry()
		for _, ent := range q.Entity {
			re := kmsg.NewDescribeClientQuotasResponseEntryEntity()
			re.Type, re.Name = ent.Type, ent.Name
			e.Entity = append(e.Entity, re)
		}
		for _, vk := range sortedKeys(q.Values) {
			v := kmsg.NewDescribeClientQuotasResponseEntryValue()
			v.Key, v.Value = vk, q.Values[vk]
			e.Values = append(e.Values, v)
		}
		resp.Entries = append(resp.Entries, e)
	}
	return resp, nil
}

// quotaMatches applies DescribeClientQuotas' filter: every component
// matches (exact name, the default, or any specified name) and, when
// strict, the entity has no other types.
func quotaMatches(entity []metadata.QuotaEntity, comps []kmsg.DescribeClientQuotasRequestComponent, strict bool) bool {
	if strict && len(entity) != len(comps) {
		return false
	}
	for _, c := range comps {
		i := slices.IndexFunc(entity, func(e metadata.QuotaEntity) bool { return e.Type == c.EntityType })
		if i < 0 {
			return false
		}
		name := entity[i].Name
		switch c.MatchType {
		case kmsg.QuotasMatchTypeExact:
			if name == nil || *name != *c.Match {
				return false
			}
		case kmsg.QuotasMatchTypeDefault:
			if name != nil {
				return false
			}
		case kmsg.QuotasMatchTypeAny:
			if name == nil {
				return false
			}
		}
	}
	return true
}

func (b *broker) forwardAlterClientQuotas(req *kmsg.AlterClientQuotasRequest, r *request) (*kmsg.AlterClientQuotasResponse, error) {
	ctx, cancel := context.WithTimeout(b.ctx, requestTimeout(0))
	defer cancel()
	kresp, err := b.ac.request(ctx, req)
	if err != nil {
		resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
		for _, e := range req.Entries {
			re := kmsg.NewAlterClientQuotasResponseEntry()
			re.ErrorCode = kerr.NotController.Code
			for _, ent := range e.Entity {
				re.Entity = append(re.Entity, kmsg.AlterClientQuotasResponseEntryEntity{Type: ent.Type, Name: ent.Name})
			}
			resp.Entries = append(resp.Entries, re)
		}
		return resp, nil
	}
	resp := kresp.(*kmsg.AlterClientQuotasResponse)
	if !req.ValidateOnly {
		b.waitState(ctx, func(st *metadata.State) bool {
			for i, e := range req.Entries {
				if i >= len(resp.Entries) || resp.Entries[i].ErrorCode != 0 {
					continue
				}
				q := st.ClientQuotas[metadata.QuotaKey(quotaEntity(e.Entity))]
				for _, op := range e.Ops {
					var v float64
					var ok bool
					if q != nil {
						v, ok = q.Values[op.Key]
					}
					if op.Remove == ok || (!op.Remove && v != op.Value) {
						return false
					}
				}
			}
			return true
		})
	}
	return resp, nil
}

func quotaEntity(es []kmsg.AlterClientQuotasRequestEntryEntity) []metadata.QuotaEntity {
	out := make([]metadata.QuotaEntity, 0, len(es))
	for _, e := range es {
		out = append(out, metadata.QuotaEntity{Type: e.Type, Name: e.Name})
	}
	return out
}

// validateQuotaEntry checks an AlterClientQuotas entry by Kafka's rules.
func validateQuotaEntry(e kmsg.AlterClientQuotasRequestEntry) error {
	if len(e.Entity) == 0 {
		return fmt.Errorf("%w: empty entity", kerr.InvalidRequest)
	}
	types := map[string]bool{}
	for _, ent := range e.Entity {
		if !slices.Contains([]string{"user", "client-id", "ip"}, ent.Type) {
			return fmt.Errorf("%w: unknown entity type %q", kerr.InvalidRequest, ent.Type)
		}
		if types[ent.Type] {
			return fmt.Errorf("%w: duplicate entity type %q", kerr.InvalidRequest, ent.Type)
		}
		types[ent.Type] = true
	}
	if types["ip"] && len(types) > 1 {
		return fmt.Errorf("%w: an ip entity cannot be combined with others", kerr.InvalidRequest)
	}
	allowed := clientQuotaKeys
	if types["ip"] {
		allowed = ipQuotaKeys
	}
	seen := map[string]bool{}
	for _, op := range e.Ops {
		if !slices.Contains(allowed, op.Key) {
			return fmt.Errorf("%w: invalid quota key %q", kerr.InvalidRequest, op.Key)
		}
		if seen[op.Key] {
			return fmt.Errorf("%w: duplicate quota key %q", kerr.InvalidRequest, op.Key)
		}
		seen[op.Key] = true
		if op.Remove {
			continue
		}
		if op.Value <= 0 || math.IsNaN(op.Value) || math.IsInf(op.Value, 0) {
			return fmt.Errorf("%w: quota %s must be positive", kerr.InvalidRequest, op.Key)
		}
		if (op.Key == "producer_byte_rate" || op.Key == "consumer_byte_rate") && op.Value != math.Trunc(op.Value) {
			return fmt.Errorf("%w: quota %s must be a whole number", kerr.InvalidRequest, op.Key)
		}
	}
	return nil
}

func (n *controllerNode) handleAlterClientQuotas(req *kmsg.AlterClientQuotasRequest) (*kmsg.AlterClientQuotasResponse, error) {
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	for _, e := range req.Entries {
		re := kmsg.NewAlterClientQuotasResponseEntry()
		for _, ent := range e.Entity {
			re.Entity = append(re.Entity, kmsg.AlterClientQuotasResponseEntryEntity{Type: ent.Type, Name: ent.Name})
		}
		err := validateQuotaEntry(e)
		if err == nil {
			ops := map[string]*float64{}
			for _, op := range e.Ops {
				if op.Remove {
					ops[op.Key] = nil
				} else {
					v := op.Value
					ops[op.Key] = &v
				}
			}
			err = n.ctrl.AlterClientQuota(n.ctx, quotaEntity(e.Entity), ops, req.ValidateOnly)
		}
		if err != nil {
			re.ErrorCode = errCode(err)
			msg := err.Error()
			re.ErrorMessage = &msg
		}
		resp.Entries = append(resp.Entries, re)
	}
	return resp, nil
}
