package kcluster

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kcluster/kcluster/tlstest"
	"github.com/kcluster/kcluster/wire"
)

// saslClient returns a kgo client on the cluster's SECURE listener
// authenticating with mech (nil: none).
func saslClient(t *testing.T, c *Cluster, mech sasl.Mechanism, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(c.ListenerAddrs("SECURE")...), kgo.RequestRetries(0),
		kgo.RetryTimeout(time.Second)}, opts...)
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func pingErr(cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	_, err := req.RequestWith(ctx, cl)
	return err
}

func TestSASLListenerAuthenticates(t *testing.T) {
	c := Start(t, Brokers(1), Listener("SECURE", SASLPlaintext),
		SASLUser("PLAIN", "alice", "alice-secret"),
		SASLUser("SCRAM-SHA-256", "bob", "bob-secret"),
		SASLUser("SCRAM-SHA-512", "carol", "carol-secret"))
	if got := c.ListenerAddrs("SECURE"); len(got) != 1 || got[0] == c.Addrs()[0] {
		t.Fatalf("ListenerAddrs(SECURE) = %v, Addrs = %v", got, c.Addrs())
	}
	for _, tc := range []struct {
		name string
		mech sasl.Mechanism
		ok   bool
	}{
		{"no credentials", nil, false},
		{"PLAIN right", plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism(), true},
		{"PLAIN wrong password", plain.Auth{User: "alice", Pass: "nope"}.AsMechanism(), false},
		{"PLAIN unknown user", plain.Auth{User: "mallory", Pass: "alice-secret"}.AsMechanism(), false},
		{"SCRAM-SHA-256 right", scram.Auth{User: "bob", Pass: "bob-secret"}.AsSha256Mechanism(), true},
		{"SCRAM-SHA-256 wrong password", scram.Auth{User: "bob", Pass: "nope"}.AsSha256Mechanism(), false},
		{"SCRAM-SHA-256 user of another mechanism", scram.Auth{User: "carol", Pass: "carol-secret"}.AsSha256Mechanism(), false},
		{"SCRAM-SHA-512 right", scram.Auth{User: "carol", Pass: "carol-secret"}.AsSha512Mechanism(), true},
		{"SCRAM-SHA-512 wrong password", scram.Auth{User: "carol", Pass: "nope"}.AsSha512Mechanism(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := pingErr(saslClient(t, c, tc.mech))
			if tc.ok && err != nil {
				t.Fatalf("Metadata after authenticating: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatal("Metadata answered without valid credentials")
			}
			if tc.ok || tc.mech == nil {
				return
			}
			if !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Fatalf("want SASL_AUTHENTICATION_FAILED, got %v", err)
			}
		})
	}
	// The default listener is still PLAINTEXT, without authentication.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := pingErr(cl); err != nil {
		t.Fatalf("PLAINTEXT listener: %v", err)
	}
}

func TestTLSListener(t *testing.T) {
	ca, err := tlstest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	c := Start(t, Brokers(2), TLS(srv), Listener("TLS", SSL), Listener("MTLS", SASLSSL),
		SASLUser("PLAIN", "alice", "alice-secret"))
	clientCfg, err := ca.ClientConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenerAddrs("TLS")...), kgo.DialTLSConfig(clientCfg))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	resp, err := req.RequestWith(tctx(t), cl)
	if err != nil {
		t.Fatalf("Metadata over TLS: %v", err)
	}
	// The brokers advertised are those of the listener the client used.
	var got []string
	for _, b := range resp.Brokers {
		got = append(got, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
	}
	if want := c.ListenerAddrs("TLS"); !slices.Equal(got, want) {
		t.Fatalf("Metadata over TLS advertises %v, want %v", got, want)
	}
	// A plaintext client on the TLS listener gets nowhere.
	plainCl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenerAddrs("TLS")...), kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer plainCl.Close()
	if err := pingErr(plainCl); err == nil {
		t.Fatal("a plaintext client was answered on the TLS listener")
	}
	// SASL_SSL: TLS then PLAIN.
	sc, err := kgo.NewClient(kgo.SeedBrokers(c.ListenerAddrs("MTLS")...), kgo.DialTLSConfig(clientCfg),
		kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := pingErr(sc); err != nil {
		t.Fatalf("SASL_SSL: %v", err)
	}
}

func TestMutualTLSPrincipal(t *testing.T) {
	ca, err := tlstest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	c := Start(t, Brokers(1), TLS(srv), Listener("MTLS", SSL),
		BrokerConfig("ssl.client.auth", "required"),
		BrokerConfig("authorizer.class.name", StandardAuthorizer),
		BrokerConfig("super.users", "User:CN=admin"))
	client := func(cn string) *kgo.Client {
		cfg, err := ca.ClientConfig(cn)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenerAddrs("MTLS")...), kgo.DialTLSConfig(cfg),
			kgo.RequestRetries(0), kgo.RetryTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	// No client certificate: the handshake fails.
	if err := pingErr(client("")); err == nil {
		t.Fatal("a client without a certificate was answered")
	}
	admin := client("admin")
	createTopics(t, admin, 1, "certified")
	// User:CN=admin is a super user and sees the topic; User:CN=guest
	// has no ACL and does not.
	if got := metadataTopics(t, admin); got["certified"] != nil || len(got) != 1 {
		t.Fatalf("User:CN=admin sees %v", got)
	}
	if got := metadataTopics(t, client("guest")); len(got) != 0 {
		t.Fatalf("User:CN=guest sees %v", got)
	}
	createACLs(t, admin, aclSpec{kmsg.ACLResourceTypeTopic, "certified", kmsg.ACLResourcePatternTypeLiteral, "User:CN=guest", kmsg.ACLOperationDescribe, kmsg.ACLPermissionTypeAllow})
	if got := metadataTopics(t, client("guest")); len(got) != 1 {
		t.Fatalf("User:CN=guest with DESCRIBE sees %v", got)
	}
}

func TestSASLBeforeAuthenticationClosesConnection(t *testing.T) {
	c := Start(t, Brokers(1), Listener("SECURE", SASLPlaintext), SASLUser("PLAIN", "alice", "alice-secret"))
	cl := dial(t, c.ListenerAddrs("SECURE")[0])
	// ApiVersions is allowed before authentication.
	do[*kmsg.ApiVersionsResponse](t, cl, kmsg.NewPtrApiVersionsRequest(), 3)
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(12)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cl.Request(ctx, req); err == nil {
		t.Fatal("Metadata before authentication was answered")
	}
	// A wrong password is answered, then the connection is closed.
	cl = dial(t, c.ListenerAddrs("SECURE")[0])
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = "PLAIN"
	if r := do[*kmsg.SASLHandshakeResponse](t, cl, hs, 1); r.ErrorCode != 0 {
		t.Fatalf("handshake: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	au := kmsg.NewPtrSASLAuthenticateRequest()
	au.SASLAuthBytes = []byte("\x00alice\x00wrong")
	if r := do[*kmsg.SASLAuthenticateResponse](t, cl, au, 2); r.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("wrong password: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	if _, err := cl.Request(ctx, kmsg.NewPtrApiVersionsRequest()); err == nil {
		t.Fatal("the connection stayed open after a failed authentication")
	}
	// An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the list.
	cl = dial(t, c.ListenerAddrs("SECURE")[0])
	hs.Mechanism = "GSSAPI"
	if r := do[*kmsg.SASLHandshakeResponse](t, cl, hs, 1); r.ErrorCode != kerr.UnsupportedSaslMechanism.Code || !slices.Contains(r.SupportedMechanisms, "SCRAM-SHA-512") {
		t.Fatalf("GSSAPI: %v %v", kerr.ErrorForCode(r.ErrorCode), r.SupportedMechanisms)
	}
}

func TestSASLReauthentication(t *testing.T) {
	c := Start(t, Brokers(1), Listener("SECURE", SASLPlaintext), SASLUser("PLAIN", "alice", "alice-secret"),
		BrokerConfig("connections.max.reauth.ms", "60000"))
	cl := dial(t, c.ListenerAddrs("SECURE")[0])
	auth := func(user string) *kmsg.SASLAuthenticateResponse {
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Mechanism = "PLAIN"
		if r := do[*kmsg.SASLHandshakeResponse](t, cl, hs, 1); r.ErrorCode != 0 {
			t.Fatalf("handshake: %v", kerr.ErrorForCode(r.ErrorCode))
		}
		au := kmsg.NewPtrSASLAuthenticateRequest()
		au.SASLAuthBytes = []byte("\x00" + user + "\x00alice-secret")
		return do[*kmsg.SASLAuthenticateResponse](t, cl, au, 2)
	}
	if r := auth("alice"); r.ErrorCode != 0 || r.SessionLifetimeMillis != 60000 {
		t.Fatalf("authenticate: %v lifetime %d", kerr.ErrorForCode(r.ErrorCode), r.SessionLifetimeMillis)
	}
	// Re-authentication on the same connection (KIP-368).
	if r := auth("alice"); r.ErrorCode != 0 {
		t.Fatalf("re-authenticate: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	do[*kmsg.MetadataResponse](t, cl, kmsg.NewPtrMetadataRequest(), 12)
}

// TestSASLHandshakeV0RawTokens: after SaslHandshake v0 the PLAIN token is
// a raw size-prefixed frame, and requests follow once it is accepted.
func TestSASLHandshakeV0RawTokens(t *testing.T) {
	c := Start(t, Brokers(1), Listener("SECURE", SASLPlaintext), SASLUser("PLAIN", "alice", "alice-secret"))
	cl := dial(t, c.ListenerAddrs("SECURE")[0])
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = "PLAIN"
	if r := do[*kmsg.SASLHandshakeResponse](t, cl, hs, 0); r.ErrorCode != 0 {
		t.Fatalf("handshake v0: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	conn := cl.Conn()
	tok := []byte("\x00alice\x00alice-secret")
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(tok)))
	if _, err := conn.Write(append(frame, tok...)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := wire.ReadFrame(conn, nil, 1<<20); err != nil {
		t.Fatalf("reading the server's token: %v", err)
	}
	conn.SetReadDeadline(time.Time{})
	do[*kmsg.MetadataResponse](t, cl, kmsg.NewPtrMetadataRequest(), 12)
}
