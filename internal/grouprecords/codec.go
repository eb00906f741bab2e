// Package grouprecords encodes and decodes the KIP-848 consumer-group
// and KIP-932 share-group records of __consumer_offsets, and the share
// coordinator's records of __share_group_state (sharestate.go), which franz-go's kmsg does not have
// (it has OffsetCommitKey/Value and GroupMetadataKey/Value). They are
// written by hand from Kafka's schemas
// (group-coordinator/src/main/resources/common/message/ConsumerGroup*.json)
// and framed as Kafka's CoordinatorRecordSerde frames them:
//
//   - A key is an int16 record type (Kafka's CoordinatorRecordType, the
//     schema's apiKey, written where the old key schemas had their
//     version), then the key's fields in the non-flexible encoding
//     (strings with an int16 length).
//   - A value is an int16 value version (0 for every record here), then
//     its fields in the flexible encoding: compact strings and arrays
//     (unsigned varint length + 1, 0 for null), and tagged fields at the
//     end of every struct.
//   - A tombstone is a key with a nil value.
//
// Decoding is for bytes read back from a log: every length and count is
// checked against what remains, unknown tagged fields are skipped, and
// nothing here panics on short or corrupt input.
package grouprecords

import (
	"encoding/binary"
	"errors"
)

// Record types of the consumer-group records: the int16 a key starts with.
const (
	TypeConsumerGroupMetadata                 int16 = 3
	TypeConsumerGroupPartitionMetadata        int16 = 4 // deprecated in Kafka 4.1 (KIP-1101): only tombstones are written
	TypeConsumerGroupMemberMetadata           int16 = 5
	TypeConsumerGroupTargetAssignmentMetadata int16 = 6
	TypeConsumerGroupTargetAssignmentMember   int16 = 7
	TypeConsumerGroupCurrentMemberAssignment  int16 = 8
)

// ErrShort is returned when the bytes end before the record does, or a
// length or count does not fit in what remains.
var ErrShort = errors.New("grouprecords: record too short")

// ErrVersion is returned for a value version this package does not know.
var ErrVersion = errors.New("grouprecords: unknown value version")

// ErrType is returned when a key's record type is not the one asked for.
var ErrType = errors.New("grouprecords: wrong record type")

// Type returns the record type a key starts with.
func Type(key []byte) (int16, bool) {
	if len(key) < 2 {
		return 0, false
	}
	return int16(binary.BigEndian.Uint16(key)), true
}

// writer appends Kafka's primitive encodings.
type writer struct{ b []byte }

func (w *writer) i8(v int8)   { w.b = append(w.b, byte(v)) }
func (w *writer) i16(v int16) { w.b = binary.BigEndian.AppendUint16(w.b, uint16(v)) }
func (w *writer) i32(v int32) { w.b = binary.BigEndian.AppendUint32(w.b, uint32(v)) }
func (w *writer) i64(v int64) { w.b = binary.BigEndian.AppendUint64(w.b, uint64(v)) }
func (w *writer) uvarint(v uint64) {
	w.b = binary.AppendUvarint(w.b, v)
}
func (w *writer) uuid(v [16]byte) { w.b = append(w.b, v[:]...) }

// str is a non-flexible string: int16 length, bytes.
func (w *writer) str(s string) {
	w.i16(int16(len(s)))
	w.b = append(w.b, s...)
}

// cstr is a compact string: uvarint(length+1), bytes.
func (w *writer) cstr(s string) {
	w.uvarint(uint64(len(s)) + 1)
	w.b = append(w.b, s...)
}

// cnstr is a compact nullable string: 0 for null.
func (w *writer) cnstr(s *string) {
	if s == nil {
		w.uvarint(0)
		return
	}
	w.cstr(*s)
}

func (w *writer) cbytes(v []byte) {
	w.uvarint(uint64(len(v)) + 1)
	w.b = append(w.b, v...)
}

// arrayLen is a compact array's length: uvarint(n+1).
func (w *writer) arrayLen(n int) { w.uvarint(uint64(n) + 1) }

func (w *writer) int32s(vs []int32) {
	w.arrayLen(len(vs))
	for _, v := range vs {
		w.i32(v)
	}
}

// noTags ends a struct without tagged fields.
func (w *writer) noTags() { w.uvarint(0) }

// reader reads Kafka's primitive encodings; the first failure sticks, and
// every later read returns zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = ErrShort
	}
	r.b = nil
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.fail()
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) i8() int8 {
	if b := r.take(1); b != nil {
		return int8(b[0])
	}
	return 0
}

func (r *reader) i16() int16 {
	if b := r.take(2); b != nil {
		return int16(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (r *reader) i32() int32 {
	if b := r.take(4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (r *reader) i64() int64 {
	if b := r.take(8); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uuid() (v [16]byte) {
	if b := r.take(16); b != nil {
		copy(v[:], b)
	}
	return v
}

func (r *reader) str() string {
	n := r.i16()
	if n < 0 {
		r.fail() // keys have no null strings
		return ""
	}
	return string(r.take(int(n)))
}

// clen reads a compact length: -1 for null, else the length, which must
// fit in what remains (every element takes at least elem bytes).
func (r *reader) clen(elem int) int {
	n := r.uvarint()
	if r.err != nil {
		return 0
	}
	if n == 0 {
		return -1
	}
	n--
	if n > uint64(len(r.b)/max(elem, 1)) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) cstr() string {
	n := r.clen(1)
	if n < 0 {
		r.fail() // not nullable
		return ""
	}
	return string(r.take(n))
}

func (r *reader) cnstr() *string {
	n := r.clen(1)
	if n < 0 || r.err != nil {
		return nil
	}
	s := string(r.take(n))
	return &s
}

func (r *reader) cbytes() []byte {
	n := r.clen(1)
	if n < 0 {
		r.fail()
		return nil
	}
	return append([]byte{}, r.take(n)...)
}

// arrayLen reads a non-nullable compact array's length, each element at
// least elem bytes long.
func (r *reader) arrayLen(elem int) int {
	n := r.clen(elem)
	if n < 0 {
		r.fail()
		return 0
	}
	return n
}

func (r *reader) int32s() []int32 {
	n := r.arrayLen(4)
	out := make([]int32, 0, n)
	for range n {
		out = append(out, r.i32())
	}
	return out
}

// tags reads a struct's tagged fields, handing known ones to fn (which
// reads exactly the field) and skipping the others.
func (r *reader) tags(fn func(tag uint64, field *reader)) {
	n := r.uvarint()
	if r.err != nil {
		return
	}
	if n > uint64(len(r.b)/2) { // a tag and a size take two bytes at least
		r.fail()
		return
	}
	for range n {
		tag := r.uvarint()
		size := r.uvarint()
		if r.err != nil || size > uint64(len(r.b)) {
			r.fail()
			return
		}
		data := r.take(int(size))
		if fn != nil {
			f := &reader{b: data}
			fn(tag, f)
			if f.err != nil {
				r.err = f.err
				return
			}
		}
	}
}

// version reads a value's version, which must be 0.
func (r *reader) version() {
	if v := r.i16(); r.err == nil && v != 0 {
		r.err = ErrVersion
	}
}

// keyType reads a key's record type, which must be want.
func (r *reader) keyType(want int16) {
	if t := r.i16(); r.err == nil && t != want {
		r.err = ErrType
	}
}

// done is the error of a whole read: trailing bytes are refused too.
func (r *reader) done() error {
	if r.err == nil && len(r.b) > 0 {
		return errors.New("grouprecords: trailing bytes")
	}
	return r.err
}
