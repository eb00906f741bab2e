package kcluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// decompressor decompresses record batch payloads. It holds a zstd decoder
// (built on first use); one per cluster, no package state.
type decompressor struct {
	once sync.Once
	zstd *zstd.Decoder
	err  error
}

var errBadRecords = errors.New("malformed records")

var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

func (d *decompressor) decompress(codec int16, in []byte) ([]byte, error) {
	switch codec {
	case 0:
		return in, nil
	case 1:
		zr, err := gzip.NewReader(bytes.NewReader(in))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(zr)
	case 2:
		if bytes.HasPrefix(in, xerialMagic) && len(in) >= 16 {
			// Java's xerial framing: header, then (len, block) chunks.
			var out []byte
			for rest := in[16:]; len(rest) > 0; {
				if len(rest) < 4 {
					return nil, errBadRecords
				}
				n := int(binary.BigEndian.Uint32(rest))
				if n > len(rest)-4 {
					return nil, errBadRecords
				}
				blk, err := snappy.Decode(nil, rest[4:4+n])
				if err != nil {
					return nil, err
				}
				out = append(out, blk...)
				rest = rest[4+n:]
			}
			return out, nil
		}
		return snappy.Decode(nil, in)
	case 3:
		return io.ReadAll(lz4.NewReader(bytes.NewReader(in)))
	case 4:
		d.once.Do(func() { d.zstd, d.err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1)) })
		if d.err != nil {
			return nil, d.err
		}
		return d.zstd.DecodeAll(in, nil)
	}
	return nil, fmt.Errorf("unknown compression codec %d", codec)
}

func (d *decompressor) close() {
	if d.zstd != nil {
		d.zstd.Close()
	}
}

// forEachRecord calls fn with the offset and timestamp of every record of a
// v2 batch, in order, until fn returns false.
func (d *decompressor) forEachRecord(batch []byte, fn func(offset, ts int64) bool) error {
	if len(batch) < 61 {
		return errBadRecords
	}
	base := int64(binary.BigEndian.Uint64(batch))
	attrs := int16(binary.BigEndian.Uint16(batch[21:]))
	firstTS := int64(binary.BigEndian.Uint64(batch[27:]))
	maxTS := int64(binary.BigEndian.Uint64(batch[35:]))
	n := int(int32(binary.BigEndian.Uint32(batch[57:])))
	recs, err := d.decompress(attrs&7, batch[61:])
	if err != nil {
		return err
	}
	logAppend := attrs&0x8 != 0
	for i := 0; i < n; i++ {
		l, w := binary.Varint(recs)
		if w <= 0 || l < 0 || int(l) > len(recs)-w {
			return errBadRecords
		}
		rec := recs[w : w+int(l)]
		recs = recs[w+int(l):]
		if len(rec) < 1 {
			return errBadRecords
		}
		tsd, w1 := binary.Varint(rec[1:])
		if w1 <= 0 {
			return errBadRecords
		}
		od, w2 := binary.Varint(rec[1+w1:])
		if w2 <= 0 {
			return errBadRecords
		}
		ts := firstTS + tsd
		if logAppend {
			ts = maxTS
		}
		if !fn(base+od, ts) {
			return nil
		}
	}
	return nil
}
