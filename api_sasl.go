package kcluster

// SaslHandshake v0-v1 and SaslAuthenticate v0-v2 (KIP-43 SASL
// mechanisms, KIP-84 SCRAM-SHA-256/512, KIP-152 SaslAuthenticate,
// KIP-368 re-authentication), with PLAIN and SCRAM (on
// github.com/xdg-go/scram). On SASL_PLAINTEXT and SASL_SSL listeners a
// client must authenticate before anything but ApiVersions; a request
// before that, or a failed authentication (SASL_AUTHENTICATION_FAILED),
// closes the connection as Kafka does. After SaslHandshake v0 the tokens
// follow as raw size-prefixed frames, not requests. When
// connections.max.reauth.ms is set, SaslAuthenticate v1+ answers with
// that session lifetime; the client must re-authenticate on the same
// connection (same principal) before it ends, or the broker closes the
// connection at its next request.

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/xdg-go/scram"
)

func init() {
	reg(0, 1, (*broker).handleSaslHandshake)
	reg(0, 2, (*broker).handleSaslAuthenticate)
}

const (
	saslHandshakeKey    = 17
	saslAuthenticateKey = 36
)

// errSASLState is returned, closing the connection, for a request the
// session's SASL state does not allow.
var errSASLState = errors.New("request not allowed in this SASL state")

// admit checks that the session may send a request with the key: before
// SASL authentication only ApiVersions and the SASL requests, and after
// the session's lifetime only re-authentication.
func (s *session) admit(key int16) error {
	if s == nil || key == apiVersionsKey || key == saslHandshakeKey || key == saslAuthenticateKey {
		return nil
	}
	if !s.authenticated {
		return fmt.Errorf("%w: %s before authentication", errSASLState, kmsg.NameForKey(key))
	}
	if !s.expires.IsZero() && time.Now().After(s.expires) {
		return fmt.Errorf("%w: %s after the session expired without re-authentication", errSASLState, kmsg.NameForKey(key))
	}
	return nil
}

// saslExchange is one mechanism's server side of an authentication.
type saslExchange interface {
	// step takes the client's next token and returns the server's;
	// done is set when the exchange succeeded.
	step(in []byte) (out []byte, done bool, err error)
	// user is the authenticated user once done.
	user() string
}

var errBadCredentials = errors.New("invalid credentials")

func (b *broker) handleSaslHandshake(req *kmsg.SASLHandshakeRequest, r *request) (*kmsg.SASLHandshakeResponse, error) {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	s := r.sess
	if s == nil || s.internal || !s.ln.protocol.sasl() || s.auth != nil ||
		(s.authenticated && (b.cfg.security.reauth <= 0 || req.Version < 1)) {
		// Not a SASL listener, an exchange already under way, or an
		// authenticated session with no re-authentication to do.
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, nil
	}
	resp.SupportedMechanisms = slices.Clone(b.cfg.security.mechanisms)
	if !slices.Contains(b.cfg.security.mechanisms, req.Mechanism) {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		s.closeAfter = true
		return resp, nil
	}
	s.mech, s.handshake = req.Mechanism, req.Version
	if req.Mechanism == "PLAIN" {
		s.auth = &plainExchange{b: b}
	} else {
		code, hash, _ := scramMechCode(req.Mechanism)
		srv, err := hash.NewServer(func(user string) (scram.StoredCredentials, error) { return b.scramLookup(user, code) })
		if err != nil {
			return nil, err
		}
		s.auth = &scramExchange{b: b, conv: srv.NewConversation()}
	}
	s.rawTokens = req.Version == 0
	return resp, nil
}

func (b *broker) handleSaslAuthenticate(req *kmsg.SASLAuthenticateRequest, r *request) (*kmsg.SASLAuthenticateResponse, error) {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	s := r.sess
	if s == nil || s.internal || !s.ln.protocol.sasl() {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp, nil
	}
	if s.auth == nil || s.handshake < 1 {
		// SaslAuthenticate without a v1 handshake before it.
		resp.ErrorCode = kerr.IllegalSaslState.Code
		msg := "SaslAuthenticate without a SaslHandshake v1 before it"
		resp.ErrorMessage = &msg
		s.closeAfter = true
		return resp, nil
	}
	out, done, err := s.auth.step(req.SASLAuthBytes)
	if err == nil && done {
		err = s.finish(b)
	}
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := fmt.Sprintf("Authentication failed during authentication due to invalid credentials with SASL mechanism %s", s.mech)
		resp.ErrorMessage = &msg
		s.closeAfter = true
		return resp, nil
	}
	resp.SASLAuthBytes = out
	if done && req.Version >= 1 && b.cfg.security.reauth > 0 {
		resp.SessionLifetimeMillis = b.cfg.security.reauth.Milliseconds()
	}
	return resp, nil
}

// finish ends a successful exchange: the session's principal is the
// user's, and a re-authentication must keep the principal it had.
func (s *session) finish(b *broker) error {
	principal := "User:" + s.auth.user()
	if s.authenticated && principal != s.principal {
		return fmt.Errorf("re-authentication as %s on a connection of %s", principal, s.principal)
	}
	s.principal, s.authenticated, s.auth, s.mech, s.rawTokens = principal, true, nil, "", false
	if b.cfg.security.reauth > 0 && s.handshake >= 1 {
		s.expires = time.Now().Add(b.cfg.security.reauth)
	}
	return nil
}

// rawToken serves one raw SASL token frame (after SaslHandshake v0).
// The owner broker is the one whose exchange it is.
func (s *session) rawToken(frame []byte) ([]byte, error) {
	out, done, err := s.auth.step(frame)
	if err != nil {
		return nil, err
	}
	if done {
		if err := s.finish(s.auth.(interface{ owner() *broker }).owner()); err != nil {
			return nil, err
		}
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

// plainExchange is PLAIN (RFC 4616): one token, authzid NUL authcid NUL
// password, checked against SASLUser's PLAIN users. An authzid other
// than the user is refused, as Kafka's PlainSaslServer.
type plainExchange struct {
	b    *broker
	name string
}

func (p *plainExchange) owner() *broker { return p.b }
func (p *plainExchange) user() string   { return p.name }

func (p *plainExchange) step(in []byte) ([]byte, bool, error) {
	parts := strings.Split(string(in), "\x00")
	if len(parts) != 3 || parts[1] == "" || (parts[0] != "" && parts[0] != parts[1]) {
		return nil, false, errBadCredentials
	}
	want, ok := p.b.c.cfg.plainPassword(parts[1])
	if subtle.ConstantTimeCompare([]byte(want), []byte(parts[2])) != 1 || !ok {
		return nil, false, errBadCredentials
	}
	p.name = parts[1]
	return []byte{}, true, nil
}

// scramExchange is SCRAM (RFC 5802, RFC 7677) against the credentials in
// the metadata log.
type scramExchange struct {
	b    *broker
	conv *scram.ServerConversation
}

func (x *scramExchange) owner() *broker { return x.b }
func (x *scramExchange) user() string   { return x.conv.Username() }

func (x *scramExchange) step(in []byte) ([]byte, bool, error) {
	out, err := x.conv.Step(string(in))
	if err != nil {
		return nil, false, err
	}
	if x.conv.Done() {
		if !x.conv.Valid() {
			return nil, false, errBadCredentials
		}
		if az := x.conv.AuthzID(); az != "" && az != x.conv.Username() {
			return nil, false, errBadCredentials
		}
		return []byte(out), true, nil
	}
	return []byte(out), false, nil
}

// scramLookup returns a user's SCRAM credential from the broker's
// metadata.
func (b *broker) scramLookup(user string, mech int8) (scram.StoredCredentials, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	c := b.mu.state.ScramCredentialOf(user, mech)
	if c == nil {
		return scram.StoredCredentials{}, errBadCredentials
	}
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: int(c.Iterations)},
		StoredKey:  c.StoredKey, ServerKey: c.ServerKey,
	}, nil
}
