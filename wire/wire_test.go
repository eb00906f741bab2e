package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestReadFrameLimits(t *testing.T) {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 0, 3, 'a', 'b', 'c'})
	f, err := ReadFrame(&b, nil, 10)
	if err != nil || string(f) != "abc" {
		t.Fatalf("ReadFrame = %q, %v", f, err)
	}
	for _, hdr := range [][]byte{{0x7f, 0xff, 0xff, 0xff}, {0xff, 0xff, 0xff, 0xff}, {0, 0, 0, 11}} {
		_, err := ReadFrame(bytes.NewReader(hdr), nil, 10)
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Fatalf("size %x: err %v, want ErrFrameTooLarge", hdr, err)
		}
	}
}

func TestRequestRoundTripEveryHeaderVersion(t *testing.T) {
	for _, tc := range []struct {
		req      kmsg.Request
		v        int16
		flexible bool
	}{
		{kmsg.NewPtrMetadataRequest(), 4, false},
		{kmsg.NewPtrMetadataRequest(), 12, true},
		{kmsg.NewPtrApiVersionsRequest(), 3, true},
		{kmsg.NewPtrFetchRequest(), 13, true},
	} {
		tc.req.SetVersion(tc.v)
		frame := AppendRequest(nil, 42, "client-x", tc.req)
		if int(binary.BigEndian.Uint32(frame)) != len(frame)-4 {
			t.Fatalf("size prefix wrong")
		}
		h, body, err := ParseRequestHeader(frame[4:])
		if err != nil {
			t.Fatalf("%s v%d: %v", kmsg.NameForKey(tc.req.Key()), tc.v, err)
		}
		if h.Key != tc.req.Key() || h.Version != tc.v || h.CorrelationID != 42 || h.ClientID == nil || *h.ClientID != "client-x" || h.Flexible != tc.flexible || !h.Known {
			t.Fatalf("header %+v", h)
		}
		got, err := DecodeRequest(h, body)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !bytes.Equal(got.AppendTo(nil), tc.req.AppendTo(nil)) {
			t.Fatalf("%s v%d: body changed in round trip", kmsg.NameForKey(tc.req.Key()), tc.v)
		}
	}
}

func TestParseRequestHeaderRejectsGarbage(t *testing.T) {
	for _, frame := range [][]byte{
		{0, 3},                          // shorter than key+version+corr
		{0, 3, 0, 1, 0, 0, 0, 1, 0, 9},  // client id claims 9 bytes, has 0
		{0, 3, 0, 12, 0, 0, 0, 1, 0xff}, // flexible: client id length cut
		// flexible Metadata v12, null client id, tag count 2^28 with no bytes behind it
		{0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0x80, 0x80, 0x80, 0x80, 0x01},
	} {
		if _, _, err := ParseRequestHeader(frame); !errors.Is(err, ErrBadHeader) {
			t.Errorf("%x: err %v, want ErrBadHeader", frame, err)
		}
	}
	// An unknown key parses (so it can be refused) and says so.
	h, _, err := ParseRequestHeader([]byte{0x27, 0x0f, 0, 0, 0, 0, 0, 5, 0xff, 0xff})
	if err != nil || h.Known || h.CorrelationID != 5 {
		t.Fatalf("unknown key: %+v %v", h, err)
	}
}

// TestClient serves one canned response to the client and checks the
// correlation and the flexible response header handling.
func TestClient(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	cl := NewClient(a, "c")
	defer cl.Close()
	go func() {
		frame, err := ReadFrame(b, nil, 1<<20)
		if err != nil {
			return
		}
		h, _, err := ParseRequestHeader(frame)
		if err != nil {
			return
		}
		resp := kmsg.NewPtrMetadataResponse()
		resp.SetVersion(h.Version)
		resp.ControllerID = 7
		b.Write(AppendResponse(nil, h, resp))
	}()
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(12)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.(*kmsg.MetadataResponse).ControllerID != 7 {
		t.Fatalf("controller id %d", resp.(*kmsg.MetadataResponse).ControllerID)
	}
	// A request whose context ends closes the client.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := cl.Request(ctx2, req); err == nil {
		t.Fatal("request with no answer succeeded")
	}
	if _, err := cl.Request(context.Background(), req); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("after failure: %v, want ErrClientClosed", err)
	}
}
