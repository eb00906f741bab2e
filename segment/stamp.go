package segment

import (
	"encoding/binary"
	"hash/crc32"
)

// SetLogAppendTime marks a batch as LogAppendTime and sets its max
// timestamp to ts, recomputing the CRC (Kafka's setMaxTimestamp, for
// message.timestamp.type=LogAppendTime).
func SetLogAppendTime(b []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(b[21:]) | 0x08
	binary.BigEndian.PutUint16(b[21:], attrs)
	binary.BigEndian.PutUint64(b[35:], uint64(ts))
	h, err := ParseBatchHeader(b)
	if err != nil || h.TotalSize() > len(b) {
		return
	}
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:h.TotalSize()], crcTable))
}
