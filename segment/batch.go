package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// BatchHeaderSize is the size of a v2 record batch header (KIP-98).
const BatchHeaderSize = 61

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the fixed header of a v2 record batch.
type BatchHeader struct {
	BaseOffset           int64
	Length               int32 // bytes after the Length field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// LastOffset is the offset of the batch's last record.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// TotalSize is the batch's size in bytes, header included.
func (h BatchHeader) TotalSize() int { return 12 + int(h.Length) }

// ParseBatchHeader parses the header of the batch at the start of b. It
// checks only that the header is there and its length is sane.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	var h BatchHeader
	if len(b) < BatchHeaderSize {
		return h, fmt.Errorf("%w: %d bytes is shorter than a batch header", ErrCorrupt, len(b))
	}
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[0:]))
	h.Length = int32(binary.BigEndian.Uint32(b[8:]))
	h.PartitionLeaderEpoch = int32(binary.BigEndian.Uint32(b[12:]))
	h.Magic = int8(b[16])
	h.CRC = binary.BigEndian.Uint32(b[17:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[21:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[23:]))
	h.FirstTimestamp = int64(binary.BigEndian.Uint64(b[27:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[35:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[43:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[51:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[53:]))
	h.NumRecords = int32(binary.BigEndian.Uint32(b[57:]))
	if h.Length < BatchHeaderSize-12 {
		return h, fmt.Errorf("%w: batch length %d", ErrCorrupt, h.Length)
	}
	return h, nil
}

// ErrBadMagic is returned (wrapped in ErrCorrupt) by ValidateBatch for a
// batch whose magic is not 2.
var ErrBadMagic = errors.New("segment: record batch magic is not 2")

// ValidateBatch checks the whole batch at the start of b: its length fits
// in b, its magic is 2, its last offset delta is not negative, its last
// offset does not overflow (Kafka's "invalid offset range"), and its
// CRC-32C (over everything after the CRC field) matches.
func ValidateBatch(b []byte) (BatchHeader, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return h, err
	}
	if h.Magic != 2 {
		return h, fmt.Errorf("%w: %w (%d)", ErrCorrupt, ErrBadMagic, h.Magic)
	}
	if h.TotalSize() > len(b) {
		return h, fmt.Errorf("%w: batch of %d bytes, %d present", ErrCorrupt, h.TotalSize(), len(b))
	}
	if h.LastOffsetDelta < 0 || h.NumRecords < 0 {
		return h, fmt.Errorf("%w: negative last offset delta or record count", ErrCorrupt)
	}
	if h.BaseOffset > math.MaxInt64-int64(h.LastOffsetDelta) {
		return h, fmt.Errorf("%w: offset range [%d, +%d] overflows", ErrCorrupt, h.BaseOffset, h.LastOffsetDelta)
	}
	if crc := crc32.Checksum(b[21:h.TotalSize()], crcTable); crc != h.CRC {
		return h, fmt.Errorf("%w: CRC %08x, computed %08x", ErrCorrupt, h.CRC, crc)
	}
	return h, nil
}

// SetBaseOffset sets a batch's base offset (outside the CRC).
func SetBaseOffset(b []byte, off int64) { binary.BigEndian.PutUint64(b[0:], uint64(off)) }

// SetPartitionLeaderEpoch sets a batch's leader epoch (outside the CRC).
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[12:], uint32(epoch))
}
