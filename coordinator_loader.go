package kcluster

// Loading a coordinator's shard (Kafka's CoordinatorLoader): the partition
// is replayed from its log start to its log end into a new shard, record
// by record, transactional records and their markers included; nothing
// else reaches the shard until it is loaded. The markers the transaction
// coordinator writes to the partition later are replayed as they are
// committed (replayMarker), and those written during the load once it is
// done, unless the load read them.

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnMarker is a transaction marker written to a coordinator's partition.
type txnMarker struct {
	pid    int64
	commit bool
	offset int64
}

// load replays the partition's log, from its start to its end (as leader,
// everything in its log is or will be committed), into a new shard.
func (c *coordinatorContext[S]) load() error {
	shard := c.rt.newShard(c)
	log := c.rep.log
	end := log.LogEndOffset()
	for off := log.LogStartOffset(); off < end; {
		data, err := log.Read(off, 1<<20, end)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			break
		}
		next, err := replayBatches(&c.rt.b.c.dec, data, shard)
		if err != nil {
			return err
		}
		if next <= off {
			break
		}
		off = next
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.state != shardLoading {
		return nil
	}
	c.mu.shard, c.mu.state = shard, shardActive
	c.mu.written, c.mu.loadEnd = end, end
	for _, m := range c.mu.late {
		if m.offset >= end { // written after what the load read
			shard.replayEndTransactionMarker(m.pid, m.commit)
		}
	}
	c.mu.late = nil
	shard.onLoaded()
	c.rt.changed()
	return nil
}

// replayBatches replays the batches of data into s and returns the offset
// after the last batch.
func replayBatches(d *decompressor, data []byte, s coordinatorShard) (int64, error) {
	return d.eachBatch(data, func(rb *kmsg.RecordBatch, batch []byte) error {
		pid := int64(-1)
		if rb.Attributes&attrTransactional != 0 && rb.ProducerID >= 0 {
			pid = rb.ProducerID
		}
		if rb.Attributes&attrControl != 0 {
			if pid >= 0 {
				typ, ok := controlType(batch)
				s.replayEndTransactionMarker(pid, ok && typ == kmsg.ControlRecordKeyTypeCommit)
			}
			return nil
		}
		return d.eachRecord(rb, func(offset int64, key, value []byte) { s.replay(offset, pid, key, value) })
	})
}

// eachBatch calls fn with every record batch of batches (parsed, and its
// bytes), and returns the offset after the last batch.
func (d *decompressor) eachBatch(batches []byte, fn func(rb *kmsg.RecordBatch, batch []byte) error) (int64, error) {
	var next int64
	for len(batches) > 0 {
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(batches); err != nil {
			return next, err
		}
		if int(rb.Length)+12 > len(batches) {
			return next, errBadRecords
		}
		batch := batches[:12+int(rb.Length)]
		batches = batches[12+int(rb.Length):]
		next = rb.FirstOffset + int64(rb.LastOffsetDelta) + 1
		if err := fn(&rb, batch); err != nil {
			return next, err
		}
	}
	return next, nil
}

// eachRecord calls fn with the offset, key and value (nil for a
// tombstone) of every record of rb.
func (d *decompressor) eachRecord(rb *kmsg.RecordBatch, fn func(offset int64, key, value []byte)) error {
	recs, err := d.decompress(rb.Attributes&7, rb.Records)
	if err != nil {
		return err
	}
	for i := int32(0); i < rb.NumRecords; i++ {
		l, w := binary.Varint(recs)
		if w <= 0 || l < 0 || int(l) > len(recs)-w {
			return errBadRecords
		}
		var r kmsg.Record
		if err := r.ReadFrom(recs[:w+int(l)]); err != nil {
			return err
		}
		recs = recs[w+int(l):]
		fn(rb.FirstOffset+int64(r.OffsetDelta), r.Key, r.Value)
	}
	return nil
}

// forEachKV calls fn with the key and value (nil for a tombstone) of every
// record in batches, and returns the offset after the last batch.
// Control batches are skipped.
func (d *decompressor) forEachKV(batches []byte, fn func(key, value []byte)) (int64, error) {
	return d.eachBatch(batches, func(rb *kmsg.RecordBatch, _ []byte) error {
		if rb.Attributes&attrControl != 0 {
			return nil
		}
		return d.eachRecord(rb, func(_ int64, key, value []byte) { fn(key, value) })
	})
}

// replayMarker hands the shard of partition p a transaction marker that
// was written there at offset and is now committed. A marker the shard's
// load already read is skipped; one written while it loads waits for the
// load to end.
func (rt *coordinatorRuntime[S]) replayMarker(p int32, pid int64, commit bool, offset int64) {
	rt.mu.Lock()
	c := rt.mu.shards[p]
	rt.mu.Unlock()
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.mu.state == shardLoading:
		c.mu.late = append(c.mu.late, txnMarker{pid, commit, offset})
	case c.mu.state == shardActive && offset >= c.mu.loadEnd:
		c.mu.shard.replayEndTransactionMarker(pid, commit)
		rt.changed()
	}
}
