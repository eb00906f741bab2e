package kcluster

// The controller node: the process role that owns the metadata log, as a
// KRaft controller. Brokers reach it only over TCP through the network
// package (BrokerRegistration v0-3, BrokerHeartbeat v0-1, AlterPartition
// v2-3 with topic ids), so cutting a broker from the controller fences it,
// as in Kafka. The in-memory mode runs one controller node, id
// controllerNodeID; its log is the single-node MemLog.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
	"github.com/kcluster/kcluster/wire"
)

// controllerNodeID is the node id of the in-memory mode's controller. Broker
// ids stay below it.
const controllerNodeID int32 = 1000

type controllerNode struct {
	id   int32
	c    *Cluster
	ctrl *metadata.Controller
	log  *slog.Logger
	ln   net.Listener
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu struct {
		sync.Mutex
		conns map[net.Conn]struct{}
	}
}

// ctrlHandler serves one API key on the controller node.
type ctrlHandler struct {
	min, max int16
	fn       func(*controllerNode, kmsg.Request) (kmsg.Response, error)
}

var ctrlHandlers = map[int16]ctrlHandler{}

func regCtrl[Req kmsg.Request, Resp kmsg.Response](min, max int16, fn func(*controllerNode, Req) (Resp, error)) {
	var zero Req
	ctrlHandlers[zero.Key()] = ctrlHandler{min: min, max: max, fn: func(n *controllerNode, r kmsg.Request) (kmsg.Response, error) {
		resp, err := fn(n, r.(Req))
		if err != nil {
			return nil, err
		}
		resp.SetVersion(r.GetVersion())
		return resp, nil
	}}
}

func init() {
	regCtrl(0, 3, (*controllerNode).handleBrokerRegistration)
	regCtrl(0, 1, (*controllerNode).handleBrokerHeartbeat)
	regCtrl(2, 3, (*controllerNode).handleAlterPartition)
	regCtrl(12, 12, (*controllerNode).handleMetadataFetch)
}

// metadataTopic is the metadata log's name, as KRaft's.
const metadataTopic = "__cluster_metadata"

// handleMetadataFetch serves the metadata log to brokers: Fetch of
// __cluster_metadata partition 0, long-polled up to MaxWaitMillis. Each
// entry is one record whose offset is the entry's and whose value is the
// record's wire form (metadata.EncodeRecord).
func (n *controllerNode) handleMetadataFetch(req *kmsg.FetchRequest) (*kmsg.FetchResponse, error) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	if len(req.Topics) != 1 || req.Topics[0].Topic != metadataTopic || len(req.Topics[0].Partitions) != 1 {
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp, nil
	}
	p := req.Topics[0].Partitions[0]
	rt := kmsg.NewFetchResponseTopic()
	rt.Topic = metadataTopic
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.RecordBatches = []byte{}
	end := n.c.mlog.End()
	rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = end, end, 0
	ctx, cancel := context.WithTimeout(n.ctx, time.Duration(req.MaxWaitMillis)*time.Millisecond)
	defer cancel()
	if p.FetchOffset > end {
		rp.ErrorCode = kerr.OffsetOutOfRange.Code
	} else if es, err := n.c.mlog.Read(ctx, p.FetchOffset, 4096); err == nil {
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
	var recs []byte
	base := es[0].Offset
	for _, e := range es {
		v, err := metadata.EncodeRecord(e.Record)
		if err != nil {
			return nil, err
		}
		r := kmsg.Record{OffsetDelta: int32(e.Offset - base), Value: v}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	b := kmsg.RecordBatch{FirstOffset: base, Magic: 2, LastOffsetDelta: int32(len(es) - 1),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(es)), Records: recs}
	raw := b.AppendTo(nil)
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
			out = append(out, metadata.Entry{Offset: batch.FirstOffset + int64(r.OffsetDelta), Record: rec})
		}
		b = b[12+int(batch.Length):]
	}
	return out, nil
}

func startControllerNode(c *Cluster, id int32, ctrl *metadata.Controller) (*controllerNode, error) {
	ctx, cancel := context.WithCancel(c.ctx)
	n := &controllerNode{id: id, c: c, ctrl: ctrl, log: c.cfg.logger.With("controller", id), ctx: ctx, stop: cancel}
	n.mu.conns = make(map[net.Conn]struct{})
	ln, err := c.net.Listen(id, net.JoinHostPort(c.cfg.host, "0"))
	if err != nil {
		cancel()
		return nil, err
	}
	n.ln = ln
	n.wg.Add(2)
	go func() { defer n.wg.Done(); ctrl.Run(ctx) }()
	go func() { defer n.wg.Done(); n.acceptLoop() }()
	return n, nil
}

func (n *controllerNode) addr() string { return n.ln.Addr().String() }

func (n *controllerNode) close() {
	n.stop()
	n.ln.Close()
	n.mu.Lock()
	for c := range n.mu.conns {
		c.Close()
	}
	n.mu.conns = nil
	n.mu.Unlock()
	n.wg.Wait()
}

func (n *controllerNode) acceptLoop() {
	for {
		conn, err := n.ln.Accept()
		if err != nil {
			return
		}
		n.mu.Lock()
		if n.mu.conns == nil {
			n.mu.Unlock()
			conn.Close()
			return
		}
		n.mu.conns[conn] = struct{}{}
		n.wg.Add(1)
		n.mu.Unlock()
		go func() {
			defer n.wg.Done()
			serveConn(n.ctx, conn, wire.DefaultMaxFrame, n.log, n.dispatch)
			n.mu.Lock()
			delete(n.mu.conns, conn)
			n.mu.Unlock()
		}()
	}
}

func (n *controllerNode) dispatch(hdr wire.RequestHeader, body []byte, log *slog.Logger) (resp kmsg.Response, err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("controller handler panic; closing connection", "api", kmsg.NameForKey(hdr.Key), "panic", p, "stack", string(debug.Stack()))
			resp, err = nil, errCloseConn
		}
	}()
	h, ok := ctrlHandlers[hdr.Key]
	if !ok || !hdr.Known || hdr.Version < h.min || hdr.Version > h.max {
		return nil, fmt.Errorf("controller does not serve %s v%d", kmsg.NameForKey(hdr.Key), hdr.Version)
	}
	req, err := wire.DecodeRequest(hdr, body)
	if err != nil {
		return nil, err
	}
	return h.fn(n, req)
}

func (n *controllerNode) handleBrokerRegistration(req *kmsg.BrokerRegistrationRequest) (*kmsg.BrokerRegistrationResponse, error) {
	resp := req.ResponseKind().(*kmsg.BrokerRegistrationResponse)
	if req.ClusterID != n.ctrl.ClusterID() {
		resp.ErrorCode = kerr.InconsistentClusterID.Code
		return resp, nil
	}
	reg := metadata.RegisterBroker{ID: req.BrokerID, Rack: req.Rack}
	for _, l := range req.Listeners {
		reg.Listeners = append(reg.Listeners, metadata.Listener{Name: l.Name, Host: l.Host, Port: int32(l.Port), Protocol: securityProtocolName(l.SecurityProtocol)})
		if reg.Host == "" {
			reg.Host, reg.Port = l.Host, int32(l.Port)
		}
	}
	epoch, err := n.ctrl.RegisterBroker(n.ctx, reg)
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

func (n *controllerNode) handleBrokerHeartbeat(req *kmsg.BrokerHeartbeatRequest) (*kmsg.BrokerHeartbeatResponse, error) {
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
		fenced, err = n.ctrl.Heartbeat(n.ctx, req.BrokerID, req.BrokerEpoch)
	}
	resp.ErrorCode = errCode(err)
	resp.IsFenced = fenced
	resp.IsCaughtUp = req.CurrentMetadataOffset >= n.c.mlog.End()-1
	return resp, nil
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
			if req.Version >= 3 {
				isr = nil
				for _, e := range p.NewEpochISR {
					isr = append(isr, e.BrokerID)
				}
			}
			err := n.ctrl.AlterPartition(n.ctx, t.TopicID, p.Partition, req.BrokerID, p.LeaderEpoch, p.PartitionEpoch, isr)
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

// controllerClient is a broker's connection to the controller node, dialed
// through the network package and redialed after any failure.
type controllerClient struct {
	b *broker
	// sem (one slot) serializes the requests. Unlike a mutex, a caller
	// waiting for it gives up at its context's end (an AlterPartition
	// does not outwait a stalled heartbeat), and it blocks durably in a
	// testing/synctest bubble, so the bubble's clock can run meanwhile.
	once sync.Once
	sem  chan struct{}
	cl   *wire.Client
}

func (cc *controllerClient) lock(ctx context.Context) error {
	cc.once.Do(func() { cc.sem = make(chan struct{}, 1) })
	select {
	case cc.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (cc *controllerClient) unlock() { <-cc.sem }

var errNoController = errors.New("kcluster: controller unreachable")

func (cc *controllerClient) request(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	return cc.requestBuilt(ctx, func() kmsg.Request { return req })
}

// requestBuilt builds the request with the client's lock held, so it
// reflects the broker's state at the moment it is sent.
func (cc *controllerClient) requestBuilt(ctx context.Context, build func() kmsg.Request) (kmsg.Response, error) {
	if err := cc.lock(ctx); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoController, err)
	}
	defer cc.unlock()
	req := build()
	node := cc.b.c.ctrlNode
	if cc.cl == nil {
		conn, err := cc.b.c.net.Dial(ctx, cc.b.id, node.id, node.addr())
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errNoController, err)
		}
		cc.cl = wire.NewClient(conn, fmt.Sprintf("kcluster-broker-%d", cc.b.id))
	}
	resp, err := cc.cl.Request(ctx, req)
	if err != nil {
		cc.cl.Close()
		cc.cl = nil
		return nil, fmt.Errorf("%w: %v", errNoController, err)
	}
	return resp, nil
}

func (cc *controllerClient) close() {
	cc.lock(context.Background())
	defer cc.unlock()
	if cc.cl != nil {
		cc.cl.Close()
		cc.cl = nil
	}
}
