package kcluster

// The controller node: the process role that owns the metadata log, as a
// KRaft controller. Brokers reach it only over TCP through the network
// package (BrokerRegistration v0-3, BrokerHeartbeat v0-1,
// AssignReplicasToDirs v0, AlterPartition v2-3 with topic ids), so
// cutting a broker from the controller fences it, as in Kafka. The in-memory mode runs one controller node, id
// controllerNodeID, on the single-node MemLog; the quorum mode runs
// Controllers(n) nodes, ids controllerNodeID.., each with its own Raft log
// (quorum.go), and only the Raft leader's controller is active: the others
// answer NOT_CONTROLLER and brokers move on to the next.

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
	"github.com/kcluster/kcluster/network"
)

// controllerNodeID is the node id of the first controller. Broker ids stay
// below it.
const controllerNodeID int32 = 1000

// controllerNode is one controller: its listeners, its copy of the
// metadata log and the controller state machine on it. Connections sit in
// srv and brokers' metadata fetches in mu; everything else is fixed at
// start.
type controllerNode struct {
	id   int32
	c    *Cluster
	mlog metadata.Log
	raft *metadata.RaftLog // nil in the in-memory mode
	ctrl *metadata.Controller
	log  *slog.Logger
	ln   net.Listener // Kafka protocol, for brokers
	rln  net.Listener // Raft messages, for the other controllers
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	peers map[uint64]*raftPeer

	srv server // accepted connections, Kafka's and Raft's (server.go)

	snaps snapshotCache // the latest snapshot's bytes (api_fetchsnapshot.go)

	mu struct {
		sync.Mutex
		observers map[int32]observerFetch // brokers' metadata fetches
	}
}

// ctrlHandler serves one API key on the controller node.
type ctrlHandler struct {
	min, max int16
	fn       func(*controllerNode, net.Conn, kmsg.Request) (kmsg.Response, error)
}

var ctrlHandlers = map[int16]ctrlHandler{}

func regCtrl[Req kmsg.Request, Resp kmsg.Response](min, max int16, fn func(*controllerNode, Req) (Resp, error)) {
	regCtrlConn(min, max, func(n *controllerNode, _ net.Conn, r Req) (Resp, error) { return fn(n, r) })
}

// regCtrlConn is regCtrl for a handler that needs the request's
// connection.
func regCtrlConn[Req kmsg.Request, Resp kmsg.Response](min, max int16, fn func(*controllerNode, net.Conn, Req) (Resp, error)) {
	var zero Req
	ctrlHandlers[zero.Key()] = ctrlHandler{min: min, max: max, fn: func(n *controllerNode, conn net.Conn, r kmsg.Request) (kmsg.Response, error) {
		resp, err := fn(n, conn, r.(Req))
		if err != nil {
			return nil, err
		}
		resp.SetVersion(r.GetVersion())
		return resp, nil
	}}
}

func init() {
	regCtrl(0, 3, (*controllerNode).handleBrokerRegistration)
	regCtrlConn(0, 1, (*controllerNode).handleBrokerHeartbeat)
	regCtrl(2, 3, (*controllerNode).handleAlterPartition)
	regCtrl(0, 0, (*controllerNode).handleAssignReplicasToDirs)
	regCtrlConn(12, 12, (*controllerNode).handleMetadataFetch)
}

// metadataTopic is the metadata log's name, as KRaft's.
const metadataTopic = "__cluster_metadata"

// handleMetadataFetch serves the metadata log to brokers: Fetch of
// __cluster_metadata partition 0, long-polled up to MaxWaitMillis. Each
// entry is one record whose offset is the entry's and whose value is the
// record's wire form (metadata.EncodeRecord). The in-memory controller
// holds a fetch past MaxWaitMillis while its connection stands (hold.go):
// an idle broker then fetches nothing until the log grows; the broker
// counts as fetching all along (DescribeQuorum's observers).
func (n *controllerNode) handleMetadataFetch(conn net.Conn, req *kmsg.FetchRequest) (*kmsg.FetchResponse, error) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	if len(req.Topics) != 1 || req.Topics[0].Topic != metadataTopic || len(req.Topics[0].Partitions) != 1 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	p := req.Topics[0].Partitions[0]
	maxWait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	hold := n.raft == nil && maxWait > 0 && network.Peer(conn) == req.ReplicaID
	n.mu.Lock()
	if n.mu.observers == nil {
		n.mu.observers = make(map[int32]observerFetch)
	}
	n.mu.observers[req.ReplicaID] = observerFetch{p.FetchOffset, time.Now(), hold}
	n.mu.Unlock()
	if hold {
		defer func() {
			n.mu.Lock()
			if f := n.mu.observers[req.ReplicaID]; f.held && f.offset == p.FetchOffset {
				n.mu.observers[req.ReplicaID] = observerFetch{p.FetchOffset, time.Now(), false}
			}
			n.mu.Unlock()
		}()
	}
	rt := kmsg.NewFetchResponseTopic()
	rt.Topic = metadataTopic
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.RecordBatches = []byte{}
	if !n.ctrl.Active() {
		resp.ErrorCode = kerr.NotController.Code
		return resp, nil
	}
	end := n.mlog.End()
	rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = end, end, n.mlog.Start()
	var ctx context.Context
	var cancel context.CancelFunc
	if hold {
		ctx, cancel = n.c.holdContext(n.ctx, conn, maxWait)
	} else {
		ctx, cancel = context.WithTimeout(n.ctx, maxWait)
	}
	defer cancel()
	if p.FetchOffset > end {
		rp.ErrorCode = kerr.OffsetOutOfRange.Code
	} else if sn := n.snapshotBelow(p.FetchOffset); sn != nil {
		// Below the log start: the fetcher loads the snapshot
		// (FetchSnapshot) and fetches on from its end, as KRaft's
		// answer with a SnapshotId.
		rp.SnapshotID.EndOffset, rp.SnapshotID.Epoch = sn.EndOffset(), int32(sn.Epoch)
	} else if es, err := n.mlog.Read(ctx, p.FetchOffset, 4096); err == nil {
		batch, err := encodeMetadataBatch(es)
		if err != nil {
			return nil, err
		}
		rp.RecordBatches = batch
		rp.HighWatermark = es[len(es)-1].Offset + 1
	} else if n.ctx.Err() != nil || errors.Is(err, metadata.ErrLogClosed) {
		return nil, errCloseConn
	}
	rt.Partitions = append(rt.Partitions, rp)
	resp.Topics = append(resp.Topics, rt)
	return resp, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeMetadataBatch puts log entries in one v2 record batch.
func encodeMetadataBatch(es []metadata.Entry) ([]byte, error) {
	var recs, scratch []byte
	base := es[0].Offset
	for _, e := range es {
		v := e.Raw
		if v == nil {
			var err error
			if v, err = metadata.EncodeRecord(e.Record); err != nil {
				return nil, err
			}
		}
		r := kmsg.Record{OffsetDelta: int32(e.Offset - base), Value: v}
		// The record's length (its encoding less the one-byte varint of
		// a zero Length), measured in a buffer used again for each.
		scratch = r.AppendTo(scratch[:0])
		r.Length = int32(len(scratch) - 1)
		recs = r.AppendTo(recs)
	}
	b := kmsg.RecordBatch{FirstOffset: base, Magic: 2, LastOffsetDelta: int32(len(es) - 1),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(es)), Records: recs}
	raw := b.AppendTo(make([]byte, 0, 64+len(recs))) // the batch header is 61 bytes with the records' length
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], castagnoli))
	return raw, nil
}

// decodeMetadataBatches parses batches from encodeMetadataBatch.
func decodeMetadataBatches(b []byte) ([]metadata.Entry, error) {
	var out []metadata.Entry
	for len(b) > 0 {
		var batch kmsg.RecordBatch
		if err := batch.ReadFrom(b); err != nil {
			return nil, err
		}
		recs := batch.Records
		for i := int32(0); i < batch.NumRecords; i++ {
			l, w := binary.Varint(recs)
			if w <= 0 || l < 0 || int(l) > len(recs)-w {
				return nil, errors.New("kcluster: malformed metadata record")
			}
			var r kmsg.Record
			if err := r.ReadFrom(recs[:w+int(l)]); err != nil {
				return nil, err
			}
			recs = recs[w+int(l):]
			rec, err := metadata.DecodeRecord(r.Value)
			if err != nil {
				return nil, err
			}
			out = append(out, metadata.Entry{Offset: batch.FirstOffset + int64(r.OffsetDelta), Record: rec, Size: len(r.Value)})
		}
		b = b[12+int(batch.Length):]
	}
	return out, nil
}

func (n *controllerNode) handleBrokerRegistration(req *kmsg.BrokerRegistrationRequest) (*kmsg.BrokerRegistrationResponse, error) {
	resp := req.ResponseKind().(*kmsg.BrokerRegistrationResponse)
	if req.ClusterID != n.ctrl.ClusterID() {
		resp.ErrorCode = kerr.InconsistentClusterID.Code
		return resp, nil
	}
	reg := metadata.RegisterBroker{ID: req.BrokerID, Rack: req.Rack}
	for _, d := range req.LogDirs {
		if metadata.DirectoryID(d).Reserved() || slices.Contains(reg.LogDirs, metadata.DirectoryID(d)) {
			resp.ErrorCode = kerr.InvalidRegistration.Code
			return resp, nil
		}
		reg.LogDirs = append(reg.LogDirs, d)
	}
	for _, l := range req.Listeners {
		reg.Listeners = append(reg.Listeners, metadata.Listener{Name: l.Name, Host: l.Host, Port: int32(l.Port), Protocol: securityProtocolName(l.SecurityProtocol)})
		if reg.Host == "" {
			reg.Host, reg.Port = l.Host, int32(l.Port)
		}
	}
	epoch, err := n.ctrl.RegisterBroker(n.ctx, reg, req.PreviousBrokerEpoch)
	resp.ErrorCode = errCode(err)
	resp.BrokerEpoch = epoch
	return resp, nil
}

func securityProtocolName(p int16) string {
	switch p {
	case 1:
		return "SSL"
	case 2:
		return "SASL_PLAINTEXT"
	case 3:
		return "SASL_SSL"
	}
	return "PLAINTEXT"
}

func (n *controllerNode) handleBrokerHeartbeat(conn net.Conn, req *kmsg.BrokerHeartbeatRequest) (*kmsg.BrokerHeartbeatResponse, error) {
	resp := req.ResponseKind().(*kmsg.BrokerHeartbeatResponse)
	var fenced bool
	var err error
	if req.WantShutdown {
		// Controlled shutdown: fence now, which moves the broker's
		// leaderships to other ISR members and takes it out of every
		// ISR; then tell it to go. Never unfence a broker on its way out.
		err = n.ctrl.FenceBrokerAt(n.ctx, req.BrokerID, req.BrokerEpoch)
		fenced = true
		resp.ShouldShutdown = err == nil
	} else {
		offline := make([]metadata.DirectoryID, len(req.OfflineLogDirs))
		for i, d := range req.OfflineLogDirs {
			offline[i] = d
		}
		fenced, err = n.ctrl.Heartbeat(n.ctx, req.BrokerID, req.BrokerEpoch, offline)
		if err == nil && !fenced && n.raft == nil {
			fenced = n.standHeartbeat(conn, req)
		}
	}
	resp.ErrorCode = errCode(err)
	resp.IsFenced = fenced
	resp.IsCaughtUp = req.CurrentMetadataOffset >= n.mlog.End()-1
	return resp, nil
}

// standHeartbeat holds an unfenced broker's heartbeat for as long as its
// connection stands and nothing is to be said: the broker is then known
// alive without sending a heartbeat every broker.heartbeat.interval.ms,
// so an idle cluster does not wake up to say nothing. What makes a
// heartbeat's absence mean something in Kafka makes the hold end at once
// here: the broker's death or a cut closes the connection, a latency or a
// loss on the link ends the watch (network.Watch), and from then on the
// broker's heartbeats cross the network one by one again (it sends the
// next when this one is answered, and none is held while the link is
// faulty). The session runs from the last heartbeat the broker would have
// sent (metadata.Controller.Stand), so a killed broker is fenced
// broker.session.timeout.ms after its last heartbeat, as before. The hold
// also ends when the broker is fenced or registers again, or when the
// controller stops. Only the in-memory controller, which is always
// active, holds heartbeats: a quorum's controllers answer at once, so a
// broker learns of a change of active controller from its next one.
// It reports whether the hold ended because the broker was fenced.
func (n *controllerNode) standHeartbeat(conn net.Conn, req *kmsg.BrokerHeartbeatRequest) (fenced bool) {
	if network.Peer(conn) != req.BrokerID {
		return false // not known to be the broker's own connection
	}
	w, ok := n.c.net.Watch(conn)
	if !ok {
		return false
	}
	defer n.c.net.Unwatch(w)
	gone, end := n.ctrl.Stand(req.BrokerID, req.BrokerEpoch, n.c.cfg.broker.heartbeatInterval)
	defer end()
	select {
	case <-w:
	case <-gone:
		return true
	case <-n.ctx.Done():
	}
	return false
}

func (n *controllerNode) handleAlterPartition(req *kmsg.AlterPartitionRequest) (*kmsg.AlterPartitionResponse, error) {
	resp := req.ResponseKind().(*kmsg.AlterPartitionResponse)
	for _, t := range req.Topics {
		rt := kmsg.NewAlterPartitionResponseTopic()
		rt.TopidID = t.TopicID // sic: kmsg spells it so
		for _, p := range t.Partitions {
			rp := kmsg.NewAlterPartitionResponseTopicPartition()
			rp.Partition = p.Partition
			isr := p.NewISR
			var epochs []int64
			if req.Version >= 3 {
				isr = nil
				for _, e := range p.NewEpochISR {
					isr = append(isr, e.BrokerID)
					epochs = append(epochs, e.BrokerEpoch)
				}
			}
			err := n.ctrl.AlterPartition(n.ctx, t.TopicID, p.Partition, req.BrokerID, p.LeaderEpoch, p.PartitionEpoch, isr, epochs)
			rp.ErrorCode = errCode(err)
			n.ctrl.State(func(s *metadata.State) {
				if cur := s.Partition(t.TopicID, p.Partition); cur != nil {
					rp.LeaderID, rp.LeaderEpoch, rp.PartitionEpoch = cur.Leader, cur.LeaderEpoch, cur.PartitionEpoch
					rp.ISR = append([]int32(nil), cur.ISR...)
				}
			})
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil
}

// handleAssignReplicasToDirs records where a broker placed its replicas
// (AssignReplicasToDirs v0, KIP-858; metadata.Controller.AssignReplicasToDirs).
func (n *controllerNode) handleAssignReplicasToDirs(req *kmsg.AssignReplicasToDirsRequest) (*kmsg.AssignReplicasToDirsResponse, error) {
	resp := req.ResponseKind().(*kmsg.AssignReplicasToDirsResponse)
	var as []metadata.DirAssignment
	for _, d := range req.Directories {
		for _, t := range d.Topics {
			for _, p := range t.Partitions {
				as = append(as, metadata.DirAssignment{TopicID: t.TopicID, Partition: p.Partition, Dir: d.ID})
			}
		}
	}
	errs, err := n.ctrl.AssignReplicasToDirs(n.ctx, req.BrokerID, req.BrokerEpoch, as)
	if err != nil {
		resp.ErrorCode = errCode(err)
		return resp, nil
	}
	i := 0
	for _, d := range req.Directories {
		rd := kmsg.NewAssignReplicasToDirsResponseDirectory()
		rd.ID = d.ID
		for _, t := range d.Topics {
			rt := kmsg.NewAssignReplicasToDirsResponseDirectoryTopic()
			rt.TopicID = t.TopicID
			for _, p := range t.Partitions {
				rp := kmsg.NewAssignReplicasToDirsResponseDirectoryTopicPartition()
				rp.Partition = p.Partition
				rp.ErrorCode = errCode(errs[i])
				i++
				rt.Partitions = append(rt.Partitions, rp)
			}
			rd.Topics = append(rd.Topics, rt)
		}
		resp.Directories = append(resp.Directories, rd)
	}
	return resp, nil
}
