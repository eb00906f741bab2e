package kcluster

// Metadata snapshots on the broker side (Kafka's BrokerMetadataSnapshotter)
// and the snapshot triggers' configs. A broker writes a snapshot of the
// metadata it has applied into <its dir>/__cluster_metadata-0 when a
// trigger fires (the same two as the controller's), and when it loads one
// from the controller. A restarted broker starts from its latest snapshot
// and fetches only the tail; a broker whose fetch offset is below the
// controller's log start loads the controller's snapshot first
// (api_fetchsnapshot.go).

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/kcluster/kcluster/metadata"
)

func init() {
	regBrokerConfigs(map[string]configDef{
		// Test-friendly: Kafka's default is 20971520 (20 MiB). At 1 MiB
		// a test that creates and deletes topics in a loop snapshots
		// every few thousand records. 0 turns the trigger off.
		"metadata.log.max.record.bytes.between.snapshots": {"1048576", func(b *brokerConfig, v string) error {
			return parseInt64(&b.snapshotMaxBytes, v, 0)
		}},
		// Kafka's default (one hour). 0 turns the trigger off.
		"metadata.log.max.snapshot.interval.ms": {"3600000", func(b *brokerConfig, v string) error {
			if err := parseMillis(&b.snapshotInterval, v); err != nil {
				return err
			}
			if b.snapshotInterval < 0 {
				return fmt.Errorf("must be at least 0")
			}
			return nil
		}},
	})
}

// brokerSnapshots is a broker's snapshot files and trigger counts; only
// applyLoop uses it.
type brokerSnapshots struct {
	fs    vfs.FS
	dir   string
	bytes int64
	last  time.Time
	// loaded is the offset of its own snapshot the broker started
	// from, fetched that of the last snapshot it loaded from the
	// controller; -1 if none.
	loaded, fetched int64
}

// load returns the broker's latest snapshot, nil if none is whole.
func (b *broker) loadSnapshot() *metadata.Snapshot {
	b.snaps.last = time.Now()
	sn, err := metadata.ReadSnapshotFile(b.snaps.fs, b.snaps.dir)
	if err != nil {
		b.log.Warn("reading the metadata snapshot; replaying the whole log", "err", err)
		return nil
	}
	return sn
}

// saveSnapshot writes st as the broker's snapshot.
func (b *broker) saveSnapshot(sn *metadata.Snapshot) {
	b.snaps.bytes, b.snaps.last = 0, time.Now()
	if err := metadata.WriteSnapshotFile(b.snaps.fs, b.snaps.dir, sn); err != nil {
		b.log.Warn("writing a metadata snapshot", "offset", sn.Offset, "err", err)
	}
}

// maybeSnapshot counts applied entries toward the triggers and writes a
// snapshot of st (the state after them) when one fires.
func (b *broker) maybeSnapshot(st *metadata.State, es []metadata.Entry) {
	for _, e := range es {
		b.snaps.bytes += int64(e.Size)
	}
	if b.snaps.bytes == 0 {
		return
	}
	bytesDue := b.cfg.snapshotMaxBytes > 0 && b.snaps.bytes >= b.cfg.snapshotMaxBytes
	timeDue := b.cfg.snapshotInterval > 0 && time.Since(b.snaps.last) >= b.cfg.snapshotInterval
	if bytesDue || timeDue {
		b.saveSnapshot(st.Snapshot(0))
	}
}

// snapshotStates returns two states from a snapshot: applyLoop's ahead
// and the broker's own.
func snapshotStates(sn *metadata.Snapshot) (ahead, own *metadata.State, err error) {
	if ahead, err = sn.State(); err != nil {
		return nil, nil, err
	}
	if own, err = sn.State(); err != nil {
		return nil, nil, err
	}
	return ahead, own, nil
}
