package metadata

// SCRAM credentials (KIP-554), as KRaft's UserScramCredentialRecord and
// RemoveUserScramCredentialRecord: the controller writes them
// (AlterUserScramCredentials) and every broker authenticates SCRAM
// clients against its State. Only the derived keys are stored, never a
// password.

import "context"

// SCRAM mechanisms, by Kafka's codes.
const (
	ScramSHA256 int8 = 1
	ScramSHA512 int8 = 2
)

// ScramCredential sets a user's credential for one mechanism.
type ScramCredential struct {
	User       string
	Mechanism  int8
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
	Iterations int32
}

// RemoveScramCredential removes a user's credential for one mechanism.
type RemoveScramCredential struct {
	User      string
	Mechanism int8
}

func (*ScramCredential) recordType() string       { return "ScramCredential" }
func (*RemoveScramCredential) recordType() string { return "RemoveScramCredential" }

// ScramKey identifies a credential.
type ScramKey struct {
	User      string
	Mechanism int8
}

func (s *State) applyScram(r Record) {
	if s.Scram == nil {
		s.Scram = make(map[ScramKey]*ScramCredential)
	}
	switch r := r.(type) {
	case *ScramCredential:
		c := *r
		s.Scram[ScramKey{r.User, r.Mechanism}] = &c
	case *RemoveScramCredential:
		delete(s.Scram, ScramKey{r.User, r.Mechanism})
	}
}

// AlterScram writes credential changes (ScramCredential and
// RemoveScramCredential records) that the caller has validated; a
// removal of a credential that does not exist is left out.
func (c *Controller) AlterScram(ctx context.Context, recs []Record) error {
	if err := c.lockActive(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	var out []Record
	for _, r := range recs {
		if rm, ok := r.(*RemoveScramCredential); ok {
			if _, have := c.mu.state.Scram[ScramKey{rm.User, rm.Mechanism}]; !have {
				continue
			}
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil
	}
	return c.proposeLocked(ctx, out...)
}

// ScramCredentialOf returns a user's credential for a mechanism, or nil.
func (s *State) ScramCredentialOf(user string, mech int8) *ScramCredential {
	return s.Scram[ScramKey{user, mech}]
}
