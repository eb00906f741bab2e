package segment

// Reading the records inside a batch, compressed or not, for the log
// cleaner and for checks that need keys (compacted topics refuse
// records without one).

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Codec is a batch's compression codec (attributes bits 0-2).
func (h BatchHeader) Codec() int8 { return int8(h.Attributes & 0x07) }

// IsControl reports a control batch (transaction markers).
func (h BatchHeader) IsControl() bool { return h.Attributes&0x20 != 0 }

// IsTransactional reports a batch written inside a transaction.
func (h BatchHeader) IsTransactional() bool { return h.Attributes&0x10 != 0 }

// Record is one record of a batch, with its absolute offset and timestamp.
type Record struct {
	Offset    int64
	Timestamp int64
	Key       []byte // nil: no key
	Value     []byte // nil: a tombstone
	Headers   []kmsg.Header
}

var errBadRecords = errors.New("segment: malformed records in batch")

// minRecordSize is the smallest encoded record: its length, attributes,
// timestamp delta, offset delta, key length, value length and header count
// take at least a byte each.
const minRecordSize = 7

// BatchRecords decodes the records of one whole batch, decompressing them
// with dec (kgo.DefaultDecompressor() when nil).
func BatchRecords(batch []byte, dec kgo.Decompressor) (BatchHeader, []Record, error) {
	h, err := ParseBatchHeader(batch)
	if err != nil {
		return h, nil, err
	}
	if h.TotalSize() > len(batch) {
		return h, nil, fmt.Errorf("%w: batch of %d bytes, %d present", ErrCorrupt, h.TotalSize(), len(batch))
	}
	raw := batch[BatchHeaderSize:h.TotalSize()]
	if h.Codec() != 0 {
		if dec == nil {
			dec = kgo.DefaultDecompressor()
		}
		raw, err = dec.Decompress(raw, kgo.CompressionCodecType(h.Codec()))
		if err != nil {
			return h, nil, fmt.Errorf("%w: decompressing: %v", ErrCorrupt, err)
		}
	}
	// The record count is the batch's word, not a fact: the capacity is
	// bounded by what the bytes can hold (a batch of 70 bytes claiming
	// 2^31 records would otherwise ask for 180 GiB).
	recs := make([]Record, 0, min(max(int(h.NumRecords), 0), len(raw)/minRecordSize))
	for i := int32(0); i < h.NumRecords; i++ {
		l, w := binary.Varint(raw)
		if w <= 0 || l < 0 || int(l) > len(raw)-w {
			return h, nil, errBadRecords
		}
		var r kmsg.Record
		if err := r.ReadFrom(raw[:w+int(l)]); err != nil {
			return h, nil, errBadRecords
		}
		raw = raw[w+int(l):]
		recs = append(recs, Record{
			Offset:    h.BaseOffset + int64(r.OffsetDelta),
			Timestamp: h.FirstTimestamp + r.TimestampDelta64,
			Key:       r.Key,
			Value:     r.Value,
			Headers:   r.Headers,
		})
	}
	return h, recs, nil
}

// AllRecordsKeyed reports whether every record of the batch has a key.
func AllRecordsKeyed(batch []byte) (bool, error) {
	_, recs, err := BatchRecords(batch, nil)
	if err != nil {
		return false, err
	}
	for _, r := range recs {
		if r.Key == nil {
			return false, nil
		}
	}
	return true, nil
}
