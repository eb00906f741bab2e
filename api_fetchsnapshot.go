package kcluster

// FetchSnapshot (key 59, v0-1, KIP-630) on the controller: a broker whose
// metadata fetch offset is below the log start gets the latest snapshot's
// id in its Fetch answer (SnapshotId), fetches the snapshot with this,
// chunk by chunk from Position, then fetches the log from the snapshot's
// end offset. The bytes are kcluster's snapshot format
// (metadata.EncodeSnapshot), not Kafka's record batches: only kcluster's
// brokers fetch them.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func init() {
	regCtrl(0, 1, (*controllerNode).handleFetchSnapshot)
}

// snapshotCache keeps the encoded bytes of a controller's latest
// snapshot, so a fetch in chunks encodes it once.
type snapshotCache struct {
	sync.Mutex
	sn *metadata.Snapshot
	b  []byte
}

// snapshotBelow returns the latest snapshot if offset is below the log
// start, else nil.
func (n *controllerNode) snapshotBelow(offset int64) *metadata.Snapshot {
	if offset >= n.mlog.Start() {
		return nil
	}
	return n.mlog.LatestSnapshot()
}

// snapshotBytes returns the latest snapshot and its bytes (nil if none).
func (n *controllerNode) snapshotBytes() (*metadata.Snapshot, []byte, error) {
	sn := n.mlog.LatestSnapshot()
	if sn == nil {
		return nil, nil, nil
	}
	n.snaps.Lock()
	defer n.snaps.Unlock()
	if n.snaps.sn != sn {
		b, err := metadata.EncodeSnapshot(sn)
		if err != nil {
			return nil, nil, err
		}
		n.snaps.sn, n.snaps.b = sn, b
	}
	return sn, n.snaps.b, nil
}

func (n *controllerNode) handleFetchSnapshot(req *kmsg.FetchSnapshotRequest) (*kmsg.FetchSnapshotResponse, error) {
	resp := req.ResponseKind().(*kmsg.FetchSnapshotResponse)
	if !n.ctrl.Active() {
		resp.ErrorCode = kerr.NotController.Code
		return resp, nil
	}
	if len(req.Topics) != 1 || req.Topics[0].Topic != metadataTopic || len(req.Topics[0].Partitions) != 1 || req.Topics[0].Partitions[0].Partition != 0 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	p := req.Topics[0].Partitions[0]
	rt := kmsg.NewFetchSnapshotResponseTopic()
	rt.Topic = metadataTopic
	rp := kmsg.NewFetchSnapshotResponseTopicPartition()
	rp.SnapshotID.EndOffset, rp.SnapshotID.Epoch = p.SnapshotID.EndOffset, p.SnapshotID.Epoch
	sn, b, err := n.snapshotBytes()
	switch {
	case err != nil:
		return nil, err
	case sn == nil || sn.EndOffset() != p.SnapshotID.EndOffset || int32(sn.Epoch) != p.SnapshotID.Epoch:
		rp.ErrorCode = kerr.SnapshotNotFound.Code
	case p.Position < 0 || p.Position >= int64(len(b)):
		rp.ErrorCode = kerr.PositionOutOfRange.Code
	default:
		end := int64(len(b))
		if req.MaxBytes > 0 {
			end = min(end, p.Position+int64(req.MaxBytes))
		}
		rp.Size, rp.Position, rp.Bytes = int64(len(b)), p.Position, b[p.Position:end]
	}
	rt.Partitions = append(rt.Partitions, rp)
	resp.Topics = append(resp.Topics, rt)
	return resp, nil
}

// snapshotChunk is the most a broker asks for in one FetchSnapshot.
const snapshotChunk = 4 << 20

// fetchSnapshot fetches the controller's snapshot id, chunk by chunk.
func (b *broker) fetchSnapshot(id kmsg.FetchResponseTopicPartitionSnapshotID) (*metadata.Snapshot, error) {
	var buf []byte
	for {
		req := kmsg.NewPtrFetchSnapshotRequest()
		req.SetVersion(0)
		req.ReplicaID = b.id
		req.MaxBytes = snapshotChunk
		t := kmsg.NewFetchSnapshotRequestTopic()
		t.Topic = metadataTopic
		p := kmsg.NewFetchSnapshotRequestTopicPartition()
		p.CurrentLeaderEpoch = -1
		p.SnapshotID.EndOffset, p.SnapshotID.Epoch = id.EndOffset, id.Epoch
		p.Position = int64(len(buf))
		t.Partitions = append(t.Partitions, p)
		req.Topics = append(req.Topics, t)
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		kresp, err := b.mc.request(ctx, req)
		cancel()
		if err != nil {
			return nil, err
		}
		resp := kresp.(*kmsg.FetchSnapshotResponse)
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return nil, err
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return nil, errors.New("kcluster: malformed FetchSnapshot response")
		}
		rp := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
			return nil, err
		}
		if rp.Position != int64(len(buf)) || len(rp.Bytes) == 0 {
			return nil, fmt.Errorf("kcluster: FetchSnapshot answered position %d with %d bytes, asked %d", rp.Position, len(rp.Bytes), len(buf))
		}
		buf = append(buf, rp.Bytes...)
		if int64(len(buf)) >= rp.Size {
			break
		}
	}
	sn, err := metadata.DecodeSnapshot(buf)
	if err != nil {
		return nil, err
	}
	if sn.EndOffset() != id.EndOffset {
		return nil, fmt.Errorf("kcluster: fetched snapshot ends at %d, asked for %d", sn.EndOffset(), id.EndOffset)
	}
	return sn, nil
}
