package metadata

// Client quotas (KIP-546): byte-rate and request quotas by user and
// client id, as KRaft's ClientQuotaRecord.

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
)

// QuotaEntity is one component of a quota's entity: its type ("user",
// "client-id", "ip") and name; a nil name is the type's default.
type QuotaEntity struct {
	Type string
	Name *string
}

// ClientQuota sets (Value non-nil) or removes one quota of an entity.
type ClientQuota struct {
	Entity []QuotaEntity
	Key    string
	Value  *float64
}

func (*ClientQuota) recordType() string { return "ClientQuota" }

// Quota is an entity's quotas.
type Quota struct {
	Entity []QuotaEntity // sorted by type
	Values map[string]float64
}

// QuotaKey is the canonical form of an entity: "type=name" components
// sorted by type, "type=" + "\x00" for a default.
func QuotaKey(entity []QuotaEntity) string {
	parts := make([]string, 0, len(entity))
	for _, e := range entity {
		n := "\x00"
		if e.Name != nil {
			n = *e.Name
		}
		parts = append(parts, e.Type+"="+n)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func (s *State) applyClientQuota(r *ClientQuota) {
	if s.ClientQuotas == nil {
		s.ClientQuotas = make(map[string]*Quota)
	}
	k := QuotaKey(r.Entity)
	q := s.ClientQuotas[k]
	if q == nil {
		ent := slices.Clone(r.Entity)
		slices.SortFunc(ent, func(a, b QuotaEntity) int { return strings.Compare(a.Type, b.Type) })
		q = &Quota{Entity: ent, Values: map[string]float64{}}
		s.ClientQuotas[k] = q
	}
	if r.Value == nil {
		delete(q.Values, r.Key)
		if len(q.Values) == 0 {
			delete(s.ClientQuotas, k)
		}
		return
	}
	q.Values[r.Key] = *r.Value
}

// AlterClientQuota sets (non-nil) or removes quotas of one entity; the
// caller has validated keys and values.
func (c *Controller) AlterClientQuota(ctx context.Context, entity []QuotaEntity, ops map[string]*float64, validateOnly bool) error {
	if err := c.lockActive(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	if len(entity) == 0 {
		return kerr.InvalidRequest
	}
	if validateOnly {
		return nil
	}
	var recs []Record
	for _, k := range sortedKeys(ops) {
		recs = append(recs, &ClientQuota{Entity: slices.Clone(entity), Key: k, Value: ops[k]})
	}
	if len(recs) == 0 {
		return nil
	}
	return c.proposeLocked(ctx, recs...)
}
