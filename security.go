package kcluster

// Security as a Kafka user expects it: listeners with Kafka's security
// protocols, the principal of each connection, SASL users, TLS and the
// authorizer's broker configs.
//
// Every broker has the default listener PLAINTEXT (Addrs), which is also
// its inter-broker listener: followers fetch through it, coordinators
// send markers through it. Listener adds more. A connection's principal
// is decided when it is accepted and by SASL:
//
//  1. A connection dialed by another node of the cluster (recognized by
//     the network layer, which a client cannot impersonate) is
//     InternalPrincipal, a super user, so replication and coordination work
//     under an authorizer whatever its ACLs say. Brokers reach controllers
//     on the controllers' own listeners, which only nodes use.
//  2. On SASL_PLAINTEXT and SASL_SSL listeners, the SASL user
//     ("User:alice"); until it authenticates, a client may send only
//     ApiVersions, SaslHandshake and SaslAuthenticate.
//  3. On SSL with a verified client certificate, "User:" + the subject in
//     RFC 2253 form (Kafka's default principal builder: "User:CN=...").
//  4. Otherwise User:ANONYMOUS.
//
// A session is owned by its connection's goroutine (requests on one
// connection are handled one at a time), so it has no lock.

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/xdg-go/scram"

	"github.com/kcluster/kcluster/metadata"
	"github.com/kcluster/kcluster/network"
)

// SecurityProtocol is a listener's security protocol, by Kafka's name.
type SecurityProtocol string

// Kafka's security protocols.
const (
	Plaintext     SecurityProtocol = "PLAINTEXT"
	SSL           SecurityProtocol = "SSL"
	SASLPlaintext SecurityProtocol = "SASL_PLAINTEXT"
	SASLSSL       SecurityProtocol = "SASL_SSL"
)

func (p SecurityProtocol) tls() bool  { return p == SSL || p == SASLSSL }
func (p SecurityProtocol) sasl() bool { return p == SASLPlaintext || p == SASLSSL }

// code is the protocol's number in BrokerRegistration.
func (p SecurityProtocol) code() int16 {
	switch p {
	case SSL:
		return 1
	case SASLPlaintext:
		return 2
	case SASLSSL:
		return 3
	}
	return 0
}

// DefaultListener is the name of every broker's first listener, the one
// Addrs reports and brokers use between themselves.
const DefaultListener = "PLAINTEXT"

// InternalPrincipal is the principal of connections between the cluster's
// own nodes (replica fetches, transaction markers). It is always a super
// user; no client connection can have it.
const InternalPrincipal = "User:kcluster-internal"

const anonymousPrincipal = "User:" + anonymous

// StandardAuthorizer is the authorizer.class.name value that turns the
// ACL authorizer on, as in Kafka's KRaft mode.
const StandardAuthorizer = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

type listenerSpec struct {
	name     string
	protocol SecurityProtocol
}

type saslUser struct{ mech, user, pass string }

type scramUserKey struct {
	user string
	mech int8
}

type scramStored struct {
	salt, storedKey, serverKey []byte
	iters                      int32
}

// securityConfig holds the security broker configs, parsed.
type securityConfig struct {
	authorizer   bool          // authorizer.class.name
	superUsers   []string      // super.users
	allowIfNoACL bool          // allow.everyone.if.no.acl.found
	reauth       time.Duration // connections.max.reauth.ms
	mechanisms   []string      // sasl.enabled.mechanisms
	clientAuth   string        // ssl.client.auth
}

func (s *securityConfig) parseAuthorizer(v string) error {
	switch strings.TrimSpace(v) {
	case "":
		s.authorizer = false
	case StandardAuthorizer, "kafka.security.authorizer.AclAuthorizer":
		s.authorizer = true
	default:
		return fmt.Errorf("unknown authorizer; kcluster serves %s", StandardAuthorizer)
	}
	return nil
}

func (s *securityConfig) parseSuperUsers(v string) {
	s.superUsers = nil
	for _, u := range strings.Split(v, ";") {
		if u = strings.TrimSpace(u); u != "" {
			s.superUsers = append(s.superUsers, u)
		}
	}
}

var saslMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

func (s *securityConfig) parseMechanisms(v string) error {
	s.mechanisms = nil
	for _, m := range strings.Split(v, ",") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if !slices.Contains(saslMechanisms, m) {
			return fmt.Errorf("mechanism %q is not served (only %s)", m, strings.Join(saslMechanisms, ", "))
		}
		s.mechanisms = append(s.mechanisms, m)
	}
	return nil
}

func (s *securityConfig) parseClientAuth(v string) error {
	switch v {
	case "none", "requested", "required":
		s.clientAuth = v
		return nil
	}
	return fmt.Errorf("must be none, requested or required")
}

func (s *securityConfig) isSuper(principal string) bool {
	return principal == InternalPrincipal || slices.Contains(s.superUsers, principal)
}

func scramMechCode(mech string) (int8, scram.HashGeneratorFcn, bool) {
	switch mech {
	case "SCRAM-SHA-256":
		return metadata.ScramSHA256, scram.SHA256, true
	case "SCRAM-SHA-512":
		return metadata.ScramSHA512, scram.SHA512, true
	}
	return 0, nil, false
}

func scramMechName(code int8) string {
	switch code {
	case metadata.ScramSHA256:
		return "SCRAM-SHA-256"
	case metadata.ScramSHA512:
		return "SCRAM-SHA-512"
	}
	return ""
}

// scramIterations is the iteration count of SASLUser's SCRAM
// credentials (Kafka's minimum).
const scramIterations = 4096

func (c *config) validateSecurity() error {
	seen := map[string]bool{DefaultListener: true, "CONTROLLER": true}
	for _, l := range c.listeners {
		if l.name == "" || strings.ContainsAny(l.name, ":, ") || seen[strings.ToUpper(l.name)] {
			return fmt.Errorf("kcluster: Listener(%q): the name must be new, not empty, without ':', ',' or spaces (PLAINTEXT and CONTROLLER are taken)", l.name)
		}
		seen[strings.ToUpper(l.name)] = true
		switch l.protocol {
		case Plaintext, SASLPlaintext:
		case SSL, SASLSSL:
			if c.tls == nil {
				return fmt.Errorf("kcluster: Listener(%q, %s) needs the TLS option", l.name, l.protocol)
			}
		default:
			return fmt.Errorf("kcluster: Listener(%q): unknown security protocol %q", l.name, l.protocol)
		}
	}
	if c.tls != nil {
		cfg := c.tls.Clone()
		switch c.broker.security.clientAuth {
		case "requested":
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		case "required":
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		if _, set := c.bcfg["ssl.client.auth"]; set && c.broker.security.clientAuth == "none" {
			cfg.ClientAuth = tls.NoClientCert
		}
		c.tls = cfg
	}
	c.scramUsers = map[scramUserKey]scramStored{}
	for _, u := range c.users {
		if u.user == "" {
			return fmt.Errorf("kcluster: SASLUser(%q): empty user name", u.mech)
		}
		if u.mech == "PLAIN" {
			continue
		}
		code, hash, ok := scramMechCode(u.mech)
		if !ok {
			return fmt.Errorf("kcluster: SASLUser(%q, %q): unknown mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)", u.mech, u.user)
		}
		cl, err := hash.NewClient(u.user, u.pass, "")
		if err != nil {
			return fmt.Errorf("kcluster: SASLUser(%q, %q): %v", u.mech, u.user, err)
		}
		salt := make([]byte, 16)
		rand.Read(salt)
		sc := cl.GetStoredCredentials(scram.KeyFactors{Salt: string(salt), Iters: scramIterations})
		c.scramUsers[scramUserKey{u.user, code}] = scramStored{salt, sc.StoredKey, sc.ServerKey, scramIterations}
	}
	return nil
}

// plainPassword returns a PLAIN user's password.
func (c *config) plainPassword(user string) (string, bool) {
	for i := len(c.users) - 1; i >= 0; i-- {
		if u := c.users[i]; u.mech == "PLAIN" && u.user == user {
			return u.pass, true
		}
	}
	return "", false
}

// brokerListener is one of a broker's listeners.
type brokerListener struct {
	name     string
	protocol SecurityProtocol
	ln       net.Listener
	port     int32
}

// session is one client connection's security state.
type session struct {
	ln       *brokerListener
	peer     int32  // the dialing node, network.Client for a client
	host     string // the client's IP, for ACL host matching
	internal bool   // dialed by a node of the cluster

	principal     string
	authenticated bool // SASL done (true where SASL does not apply)

	// The SASL exchange in progress: the mechanism SaslHandshake chose,
	// its version (v0: the tokens follow as raw frames) and the
	// mechanism's state.
	mech      string
	handshake int16
	rawTokens bool
	auth      saslExchange
	// expires is the end of the session (KIP-368), zero for none: after
	// it the client must re-authenticate before anything else.
	expires time.Time
	// closeAfter closes the connection once the current response is
	// written (a failed authentication, as Kafka).
	closeAfter bool
	// lent holds pooled buffers the current response refers to (the
	// record batches a fetch read), given back once it is written.
	lent [][]byte
}

// newSession decides a new connection's principal from the network peer
// and, on TLS, the verified client certificate.
func (b *broker) newSession(conn net.Conn, l *brokerListener) *session {
	s := &session{ln: l, peer: network.Peer(conn), principal: anonymousPrincipal}
	if host, _, err := net.SplitHostPort(conn.RemoteAddr().String()); err == nil {
		s.host = host
	}
	s.internal = s.peer != network.Client
	switch {
	case s.internal:
		s.principal = InternalPrincipal
	case l.protocol.tls():
		if tc, ok := conn.(*tls.Conn); ok {
			if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
				s.principal = "User:" + certs[0].Subject.String()
			}
		}
	}
	s.authenticated = s.internal || !l.protocol.sasl()
	return s
}

// userName is the principal's name without its type, as quotas key it.
func (s *session) userName() string {
	if s == nil {
		return anonymous
	}
	_, name, ok := strings.Cut(s.principal, ":")
	if !ok {
		return s.principal
	}
	return name
}

// listener is the name of the listener the request came through.
func (r *request) listener() string {
	if r == nil || r.sess == nil {
		return DefaultListener
	}
	return r.sess.ln.name
}

// endpoint returns a broker's advertised address on the named listener;
// ok is false when the broker has no such listener (Kafka then leaves the
// broker out of what it tells the client).
func endpoint(br *metadata.Broker, listener string) (host string, port int32, ok bool) {
	for _, l := range br.Listeners {
		if l.Name == listener {
			return l.Host, l.Port, true
		}
	}
	if listener == DefaultListener && len(br.Listeners) == 0 {
		return br.Host, br.Port, true
	}
	return "", 0, false
}
