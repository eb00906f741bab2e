package kcluster

// DescribeUserScramCredentials v0 and AlterUserScramCredentials v0
// (KIP-554). Credentials are metadata records (metadata/scram.go):
// alterations are forwarded to the controller, which validates them by
// Kafka's rules (4096 to 16384 iterations, no user twice in one request,
// deletion of an existing credential only) and writes ScramCredential
// and RemoveScramCredential records; any broker describes from its own
// metadata, and SaslAuthenticate (api_sasl.go) checks against it. Only
// the salted keys are kept (StoredKey, ServerKey), as Kafka.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func init() {
	reg(0, 0, (*broker).handleDescribeUserSCRAMCredentials)
	reg(0, 0, (*broker).forwardAlterUserSCRAMCredentials)
	regCtrl(0, 0, (*controllerNode).handleAlterUserSCRAMCredentials)
}

func (b *broker) handleDescribeUserSCRAMCredentials(req *kmsg.DescribeUserSCRAMCredentialsRequest, r *request) (*kmsg.DescribeUserSCRAMCredentialsResponse, error) {
	b.readYourWrites()
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	b.mu.RLock()
	defer b.mu.RUnlock()
	byUser := map[string][]*metadata.ScramCredential{}
	for _, c := range b.mu.state.Scram {
		byUser[c.User] = append(byUser[c.User], c)
	}
	result := func(user string) kmsg.DescribeUserSCRAMCredentialsResponseResult {
		res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		res.User = user
		cs := byUser[user]
		slices.SortFunc(cs, func(a, b *metadata.ScramCredential) int { return int(a.Mechanism) - int(b.Mechanism) })
		for _, c := range cs {
			ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
			ci.Mechanism, ci.Iterations = c.Mechanism, c.Iterations
			res.CredentialInfos = append(res.CredentialInfos, ci)
		}
		return res
	}
	if len(req.Users) == 0 {
		users := make([]string, 0, len(byUser))
		for u := range byUser {
			users = append(users, u)
		}
		slices.Sort(users)
		for _, u := range users {
			resp.Results = append(resp.Results, result(u))
		}
		return resp, nil
	}
	count := map[string]int{}
	for _, u := range req.Users {
		count[u.Name]++
	}
	for _, u := range req.Users {
		res := result(u.Name)
		switch {
		case count[u.Name] > 1:
			res.CredentialInfos = nil
			res.ErrorCode = kerr.DuplicateResource.Code
			res.ErrorMessage = errMessage(fmt.Errorf("cannot describe the same user twice in one request"))
		case len(byUser[u.Name]) == 0:
			res.ErrorCode = kerr.ResourceNotFound.Code
			res.ErrorMessage = errMessage(fmt.Errorf("attempt to describe a user credential that does not exist"))
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}

func (b *broker) forwardAlterUserSCRAMCredentials(req *kmsg.AlterUserSCRAMCredentialsRequest, r *request) (*kmsg.AlterUserSCRAMCredentialsResponse, error) {
	ctx, cancel := context.WithTimeout(b.ctx, requestTimeout(0))
	defer cancel()
	kresp, err := b.ac.request(ctx, req)
	if err != nil {
		resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
		for _, u := range scramRequestUsers(req) {
			res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
			res.User, res.ErrorCode = u, kerr.NotController.Code
			resp.Results = append(resp.Results, res)
		}
		return resp, nil
	}
	resp := kresp.(*kmsg.AlterUserSCRAMCredentialsResponse)
	ok := map[string]bool{}
	for _, res := range resp.Results {
		ok[res.User] = res.ErrorCode == 0
	}
	// Answer once this broker authenticates with what was changed.
	b.waitState(ctx, func(st *metadata.State) bool {
		for _, d := range req.Deletions {
			if ok[d.Name] && st.ScramCredentialOf(d.Name, d.Mechanism) != nil {
				return false
			}
		}
		for _, u := range req.Upsertions {
			if c := st.ScramCredentialOf(u.Name, u.Mechanism); ok[u.Name] && (c == nil || !slices.Equal(c.Salt, u.Salt)) {
				return false
			}
		}
		return true
	})
	return resp, nil
}

// scramRequestUsers lists the users of an alteration, each once, in order.
func scramRequestUsers(req *kmsg.AlterUserSCRAMCredentialsRequest) []string {
	var out []string
	for _, d := range req.Deletions {
		if !slices.Contains(out, d.Name) {
			out = append(out, d.Name)
		}
	}
	for _, u := range req.Upsertions {
		if !slices.Contains(out, u.Name) {
			out = append(out, u.Name)
		}
	}
	return out
}

func scramHash(mech int8) func() hash.Hash {
	if mech == metadata.ScramSHA512 {
		return sha512.New
	}
	return sha256.New
}

// scramKeys derives StoredKey and ServerKey from a salted password (RFC
// 5802): StoredKey = H(HMAC(salted, "Client Key")), ServerKey =
// HMAC(salted, "Server Key").
func scramKeys(mech int8, salted []byte) (stored, server []byte) {
	h := scramHash(mech)
	mac := hmac.New(h, salted)
	mac.Write([]byte("Client Key"))
	ck := mac.Sum(nil)
	d := h()
	d.Write(ck)
	stored = d.Sum(nil)
	mac = hmac.New(h, salted)
	mac.Write([]byte("Server Key"))
	return stored, mac.Sum(nil)
}

func (n *controllerNode) handleAlterUserSCRAMCredentials(req *kmsg.AlterUserSCRAMCredentialsRequest) (*kmsg.AlterUserSCRAMCredentialsResponse, error) {
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	type key struct {
		user string
		mech int8
	}
	seen := map[key]int{}
	for _, d := range req.Deletions {
		seen[key{d.Name, d.Mechanism}]++
	}
	for _, u := range req.Upsertions {
		seen[key{u.Name, u.Mechanism}]++
	}
	for _, user := range scramRequestUsers(req) {
		res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		res.User = user
		var recs []metadata.Record
		err := func() error {
			if user == "" {
				return fmt.Errorf("%w: username must not be empty", kerr.UnacceptableCredential)
			}
			for _, d := range req.Deletions {
				if d.Name != user {
					continue
				}
				if err := checkScramEntry(d.Mechanism, seen[key{user, d.Mechanism}]); err != nil {
					return err
				}
				var have bool
				n.ctrl.State(func(st *metadata.State) { have = st.ScramCredentialOf(user, d.Mechanism) != nil })
				if !have {
					return fmt.Errorf("%w: attempt to delete a user credential that does not exist", kerr.ResourceNotFound)
				}
				recs = append(recs, &metadata.RemoveScramCredential{User: user, Mechanism: d.Mechanism})
			}
			for _, u := range req.Upsertions {
				if u.Name != user {
					continue
				}
				if err := checkScramEntry(u.Mechanism, seen[key{user, u.Mechanism}]); err != nil {
					return err
				}
				switch {
				case u.Iterations < scramIterations:
					return fmt.Errorf("%w: too few iterations", kerr.UnacceptableCredential)
				case u.Iterations > 16384:
					return fmt.Errorf("%w: too many iterations", kerr.UnacceptableCredential)
				case len(u.Salt) == 0 || len(u.SaltedPassword) == 0:
					return fmt.Errorf("%w: salt and salted password must not be empty", kerr.UnacceptableCredential)
				}
				stored, server := scramKeys(u.Mechanism, u.SaltedPassword)
				recs = append(recs, &metadata.ScramCredential{User: user, Mechanism: u.Mechanism,
					Salt: slices.Clone(u.Salt), StoredKey: stored, ServerKey: server, Iterations: u.Iterations})
			}
			return n.ctrl.AlterScram(n.ctx, recs)
		}()
		res.ErrorCode, res.ErrorMessage = errCode(err), errMessage(err)
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}

func checkScramEntry(mech int8, times int) error {
	if scramMechName(mech) == "" {
		return fmt.Errorf("%w: unknown SCRAM mechanism %d", kerr.UnsupportedSaslMechanism, mech)
	}
	if times > 1 {
		return fmt.Errorf("%w: a user credential cannot be altered twice in the same request", kerr.DuplicateResource)
	}
	return nil
}
