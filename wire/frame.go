// Package wire is Kafka's framing on a connection: size-prefixed frames,
// request headers v0-v2 (KIP-482 flexible versions), response headers, and a
// small client used between nodes and by tests.
//
// Message bodies are decoded and encoded by franz-go's kmsg; this package
// handles only what kmsg has no type for (the frame and the headers) and
// bounds what is handed to kmsg (see Decode).
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DefaultMaxFrame is Kafka's socket.request.max.bytes default (100 MiB).
const DefaultMaxFrame = 100 << 20

// ErrFrameTooLarge is returned by ReadFrame when a frame's size prefix is
// negative or larger than the limit; the connection must be closed, as Kafka
// closes it.
var ErrFrameTooLarge = errors.New("wire: frame size out of range")

// ErrBadHeader is returned by ParseRequestHeader when a request header is
// truncated or malformed.
var ErrBadHeader = errors.New("wire: malformed request header")

// ReadFrame reads one size-prefixed frame from r. buf is reused when it is
// large enough; the returned slice aliases it. max bounds the frame size.
func ReadFrame(r io.Reader, buf []byte, max int32) ([]byte, error) {
	return ReadFrameInto(r, max, func(n int) []byte {
		if cap(buf) < n {
			return make([]byte, n)
		}
		return buf[:n]
	})
}

// ReadFrameInto is ReadFrame with the buffer chosen once the frame's size is
// known (and checked against max): buf(n) returns n bytes to read it into.
func ReadFrameInto(r io.Reader, max int32, buf func(n int) []byte) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(sz[:]))
	if n < 0 || n > max {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrFrameTooLarge, n, max)
	}
	b := buf(int(n))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// RequestHeader is a parsed Kafka request header (v0, v1 or v2).
type RequestHeader struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      *string
	// Flexible reports whether the request body uses KIP-482 flexible
	// encoding (the header was then v2, with tagged fields).
	Flexible bool
	// Known reports whether kmsg knows the key; when false, Version and
	// Flexible describe nothing and only CorrelationID can be answered.
	Known bool
}

// ParseRequestHeader parses the header at the start of a request frame and
// returns the body that follows it.
//
// Header v0 (key, version, correlation id) is used only by
// ControlledShutdown v0; v1 adds the nullable client id; v2 (flexible
// requests) adds tagged fields.
func ParseRequestHeader(frame []byte) (RequestHeader, []byte, error) {
	var h RequestHeader
	if len(frame) < 8 {
		return h, nil, ErrBadHeader
	}
	h.Key = int16(binary.BigEndian.Uint16(frame[0:]))
	h.Version = int16(binary.BigEndian.Uint16(frame[2:]))
	h.CorrelationID = int32(binary.BigEndian.Uint32(frame[4:]))
	b := frame[8:]
	req := kmsg.RequestForKey(h.Key)
	if req == nil {
		return h, b, nil
	}
	h.Known = true
	if h.Version < 0 || h.Version > req.MaxVersion() {
		// Unsupported version: the body cannot be interpreted, but the
		// client id is still v1-shaped for every key but
		// ControlledShutdown v0.
		return h, b, nil
	}
	req.SetVersion(h.Version)
	h.Flexible = req.IsFlexible()
	if h.Key == 7 && h.Version == 0 { // ControlledShutdown v0: header v0
		return h, b, nil
	}
	if len(b) < 2 {
		return h, nil, ErrBadHeader
	}
	l := int16(binary.BigEndian.Uint16(b))
	b = b[2:]
	if l >= 0 {
		if int(l) > len(b) {
			return h, nil, ErrBadHeader
		}
		s := string(b[:l])
		h.ClientID = &s
		b = b[l:]
	}
	if h.Flexible {
		var err error
		if b, err = skipTags(b); err != nil {
			return h, nil, err
		}
	}
	return h, b, nil
}

// skipTags skips a tagged-field section, refusing counts that the remaining
// bytes cannot hold (each field takes at least two bytes).
func skipTags(b []byte) ([]byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w)/2 {
		return nil, ErrBadHeader
	}
	b = b[w:]
	for ; n > 0; n-- {
		_, w := binary.Uvarint(b)
		if w <= 0 {
			return nil, ErrBadHeader
		}
		b = b[w:]
		sz, w := binary.Uvarint(b)
		if w <= 0 || sz > uint64(len(b)-w) {
			return nil, ErrBadHeader
		}
		b = b[w+int(sz):]
	}
	return b, nil
}

// AppendResponse appends a whole response frame (size, header, body) for a
// response to a request with the given header. ApiVersions responses always
// use header v0 (KIP-511), so that clients that do not yet know the broker's
// versions can read them; other flexible responses use header v1.
func AppendResponse(dst []byte, h RequestHeader, resp kmsg.Response) []byte {
	dst = slices.Grow(dst, 16+sizeHint(resp))
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.CorrelationID))
	if h.Flexible && h.Key != 18 {
		dst = append(dst, 0) // no tagged fields
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// ResponseSizeHint estimates the size of resp's whole response frame, so a
// caller can provide a buffer AppendResponse will not need to grow.
func ResponseSizeHint(resp kmsg.Response) int { return 16 + sizeHint(resp) }

// sizeHint estimates a response's encoded size from its bulk fields, so a
// large Fetch response is allocated once instead of grown by doubling
// copies of every record batch in it. Other responses are small: 0.
func sizeHint(resp kmsg.Response) int {
	r, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return 0
	}
	n := 64
	for _, t := range r.Topics {
		n += 32 + len(t.Topic)
		for _, p := range t.Partitions {
			n += 64 + len(p.RecordBatches) + 32*len(p.AbortedTransactions)
		}
	}
	return n
}

// AppendRequest appends a whole request frame for req with the given
// correlation id and client id.
func AppendRequest(dst []byte, corrID int32, clientID string, req kmsg.Request) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.Key()))
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.GetVersion()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(corrID))
	if !(req.Key() == 7 && req.GetVersion() == 0) {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(clientID)))
		dst = append(dst, clientID...)
		if req.IsFlexible() {
			dst = append(dst, 0)
		}
	}
	dst = req.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
