package kcluster

import (
	"encoding/binary"
	"io"
	"math"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// expectClosed reads from conn until EOF or reset; a response or a timeout
// fails the test.
func expectClosed(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err == nil {
		t.Fatalf("%s: got %d bytes, want the connection closed", what, n)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("%s: connection still open after 10 s", what)
	}
}

func TestMalformedInputClosesOnlyThatConnection(t *testing.T) {
	c := Start(t, Brokers(1))
	addr := c.Addrs()[0]
	healthy := dial(t, addr)
	check := func() {
		t.Helper()
		resp := do[*kmsg.MetadataResponse](t, healthy, kmsg.NewPtrMetadataRequest(), 12)
		if len(resp.Brokers) != 1 {
			t.Fatalf("healthy client: %d brokers", len(resp.Brokers))
		}
	}
	check()
	cases := []struct {
		name  string
		bytes []byte
	}{
		{"frame claiming 2 GiB", []byte{0x7f, 0xff, 0xff, 0xff, 1, 2, 3}},
		{"negative frame size", []byte{0xff, 0xff, 0xff, 0xf0}},
		{"unknown api key", frameOf(func(b []byte) []byte {
			b = binary.BigEndian.AppendUint16(b, 9999) // key
			b = binary.BigEndian.AppendUint16(b, 0)    // version
			b = binary.BigEndian.AppendUint32(b, 1)    // correlation
			return binary.BigEndian.AppendUint16(b, 0xffff)
		})},
		{"unsupported produce version", frameOf(func(b []byte) []byte {
			b = binary.BigEndian.AppendUint16(b, 0)
			b = binary.BigEndian.AppendUint16(b, 1)
			b = binary.BigEndian.AppendUint32(b, 1)
			return binary.BigEndian.AppendUint16(b, 0xffff)
		})},
		{"short header", frameOf(func(b []byte) []byte { return append(b, 0, 3) })},
		{"garbage metadata body", frameOf(func(b []byte) []byte {
			b = binary.BigEndian.AppendUint16(b, 3) // Metadata
			b = binary.BigEndian.AppendUint16(b, 1)
			b = binary.BigEndian.AppendUint32(b, 1)
			b = binary.BigEndian.AppendUint16(b, 0xffff)
			return append(b, 0x7f, 0xff, 0xff, 0xff, 'x') // 2^31-1 topics
		})},
	}
	for _, tc := range cases {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.Write(tc.bytes)
		expectClosed(t, conn, tc.name)
		conn.Close()
		check()
	}
	// Random garbage: whatever it parses as, the broker keeps serving.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i*7919 + 13)
	}
	conn.Write(junk)
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, conn)
	conn.Close()
	check()
}

func frameOf(body func([]byte) []byte) []byte {
	b := body([]byte{0, 0, 0, 0})
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// A produced batch whose offset range overflows (base offset near 2^63,
// outside the CRC) is refused as Kafka refuses "an invalid offset range",
// with CORRUPT_MESSAGE; FuzzValidateBatch's property that an accepted
// batch's last offset is not below its base found ValidateBatch taking it.
func TestProduceRefusesOverflowingOffsetRange(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "overflow", 1, 1)
	b := makeBatch(time.Now().UnixMilli(), "a", "b")
	binary.BigEndian.PutUint64(b, math.MaxInt64)
	rp := produce(t, nil, c, c.Addrs()[0], "overflow", 0, 1, b)
	if got := kerr.ErrorForCode(rp.ErrorCode); got != kerr.CorruptMessage {
		t.Fatalf("produce: %v, want CORRUPT_MESSAGE", got)
	}
}
