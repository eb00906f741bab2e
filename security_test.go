package kcluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
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
