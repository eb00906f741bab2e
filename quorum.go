package kcluster

// Controller nodes and the metadata quorum: starting, killing and
// restarting controllers, the Raft transport between them (over the
// network package, so cuts apply), and the gauges (Controller,
// MetadataOffsets).
//
// Each controller has two listeners: the Kafka protocol one brokers use,
// and one for Raft messages from the other controllers, framed as a 4-byte
// length and the message's protobuf encoding. Senders never block Raft:
// each peer has a queue and a goroutine that dials and writes; a full queue
// or a failed link drops messages (Raft retransmits) and reports the peer
// unreachable.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/kcluster/kcluster/metadata"
)

// Errors returned by the controller levers.
var (
	// ErrUnknownController is returned by KillController and
	// RestartController for an id that is not a controller's.
	ErrUnknownController = errors.New("kcluster: unknown controller id")
	// ErrControllerDown is returned by KillController for a controller
	// that is not running.
	ErrControllerDown = errors.New("kcluster: controller is not running")
	// ErrControllerUp is returned by RestartController for a controller
	// that is running.
	ErrControllerUp = errors.New("kcluster: controller is running")
)

// maxRaftFrame bounds one Raft message on the wire.
const maxRaftFrame = 64 << 20

type raftPeer struct {
	id   int32
	addr string
	ch   chan []byte
}

// ctrlAddr is a controller's Kafka address.
type ctrlAddr struct {
	id   int32
	addr string
}

// quorum reports whether the metadata log is a Raft quorum.
func (c *Cluster) quorum() bool { return c.cfg.controllers > 0 }

// ctrlID returns controller i's node id: 1000+i for dedicated controllers,
// broker i+1's id for combined ones.
func (c *Cluster) ctrlID(i int) int32 {
	if c.cfg.combined {
		return int32(i + 1)
	}
	return controllerNodeID + int32(i)
}

// numControllers is the number of controller nodes.
func (c *Cluster) numControllers() int { return max(c.cfg.controllers, 1) }

// ctrlAddrs returns every controller's Kafka address, in id order. Ports
// are fixed when each controller first starts.
func (c *Cluster) ctrlAddrs() []ctrlAddr {
	out := make([]ctrlAddr, c.numControllers())
	for i := range out {
		out[i] = ctrlAddr{c.ctrlID(i), net.JoinHostPort(c.cfg.host, strconv.Itoa(c.ctrlPorts[i]))}
	}
	return out
}

// listenController binds controller i's listeners: on its ports after
// the first start, else on free ones, which it then keeps. Every
// controller of a new quorum listens before any starts, so each knows
// where its peers are.
func (c *Cluster) listenController(i int) (ln, rln net.Listener, err error) {
	id := c.ctrlID(i)
	if ln, err = c.net.Listen(id, net.JoinHostPort(c.cfg.host, strconv.Itoa(c.ctrlPorts[i]))); err != nil {
		return nil, nil, fmt.Errorf("kcluster: controller %d: %w", id, err)
	}
	if c.ctrlPorts[i] == 0 { // first start only: brokers read it after New
		c.ctrlPorts[i] = ln.Addr().(*net.TCPAddr).Port
	}
	if !c.quorum() {
		return ln, nil, nil
	}
	if rln, err = c.net.Listen(id, net.JoinHostPort(c.cfg.host, strconv.Itoa(c.raftPorts[i]))); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("kcluster: controller %d: %w", id, err)
	}
	if c.raftPorts[i] == 0 {
		c.raftPorts[i] = rln.Addr().(*net.TCPAddr).Port
	}
	return ln, rln, nil
}

// startController starts controller i (id ctrlID(i)) on its storage and
// the listeners from listenController.
func (c *Cluster) startController(i int, ln, rln net.Listener) (*controllerNode, error) {
	id := c.ctrlID(i)
	ctx, cancel := context.WithCancel(c.ctx)
	n := &controllerNode{id: id, c: c, log: c.cfg.logger.With("controller", id), ctx: ctx, stop: cancel, ln: ln, rln: rln}
	n.srv.init(ctx, n.log, &c.bufs, &n.wg)
	fail := func(err error) (*controllerNode, error) {
		n.kill()
		return nil, fmt.Errorf("kcluster: starting controller %d: %w", id, err)
	}
	clusterID := c.cfg.clusterID
	if c.quorum() {
		voters := make([]uint64, c.cfg.controllers)
		n.peers = make(map[uint64]*raftPeer)
		for j := range voters {
			vid := c.ctrlID(j)
			voters[j] = uint64(vid)
			if vid != id {
				n.peers[uint64(vid)] = &raftPeer{id: vid, ch: make(chan []byte, 256)}
			}
		}
		dir := "controller-" + strconv.Itoa(int(id))
		if c.cfg.dir != "" {
			dir = c.cfg.fs.PathJoin(c.cfg.dir, dir)
		}
		et := c.cfg.broker.electionTimeout
		rl, err := metadata.OpenRaftLog(metadata.RaftConfig{
			ID: uint64(id), Voters: voters, FS: c.cfg.fs, Dir: dir,
			ClusterID: c.cfg.clusterID, DefaultClusterID: c.newClusterID,
			Tick: et / 10, ElectionTicks: 10,
			Send: n.send, OnStatus: c.onControllerStatus, Logger: n.log,
		})
		if err != nil {
			return fail(err)
		}
		n.raft, n.mlog = rl, rl
		clusterID = rl.ClusterID()
	} else {
		n.mlog = c.memLog
		if clusterID == "" {
			clusterID = c.newClusterID
		}
	}
	ctrl, err := metadata.NewController(ctx, n.mlog, clusterID, metadata.ControllerConfig{
		SessionTimeout:       c.cfg.broker.sessionTimeout,
		UncleanElection:      c.cfg.broker.uncleanElection,
		MinInsyncReplicas:    c.cfg.broker.minISR,
		AutoLeaderRebalance:  c.cfg.broker.autoRebalance,
		LeaderImbalanceCheck: c.cfg.broker.imbalanceCheck,
		OnChange:             c.onMetadata,
		SnapshotMaxBytes:     c.cfg.broker.snapshotMaxBytes,
		SnapshotInterval:     c.cfg.broker.snapshotInterval,
	})
	if err != nil {
		return fail(err)
	}
	n.ctrl = ctrl
	n.wg.Add(2)
	go func() { defer n.wg.Done(); ctrl.Run(ctx) }()
	go func() { defer n.wg.Done(); n.acceptLoop() }()
	if n.raft != nil {
		n.wg.Add(2 + len(n.peers))
		go func() { defer n.wg.Done(); n.raft.Run(ctx) }()
		go func() { defer n.wg.Done(); n.raftAcceptLoop() }()
		for j := range c.cfg.controllers {
			p := n.peers[uint64(c.ctrlID(j))]
			if p == nil {
				continue
			}
			p.addr = net.JoinHostPort(c.cfg.host, strconv.Itoa(c.raftPorts[j]))
			go func() { defer n.wg.Done(); n.sendLoop(p) }()
		}
	}
	return n, nil
}

// kill stops the node at once: listeners, connections and goroutines. Its
// storage stays for a restart.
func (n *controllerNode) kill() {
	n.stop()
	if n.ln != nil {
		n.ln.Close()
	}
	if n.rln != nil {
		n.rln.Close()
	}
	n.c.net.CloseNode(n.id)
	n.srv.closeConns()
	if n.raft != nil {
		n.raft.Close()
	}
	n.wg.Wait()
	if n.raft != nil {
		if err := n.raft.CloseStorage(); err != nil {
			n.log.Error("closing raft storage", "err", err)
		}
	}
}

// send queues a Raft message for a peer; a full queue drops it.
func (n *controllerNode) send(to uint64, msg []byte) {
	p := n.peers[to]
	if p == nil {
		return
	}
	select {
	case p.ch <- msg:
	default:
	}
}

// sendLoop writes a peer's queued messages, dialing as needed.
func (n *controllerNode) sendLoop(p *raftPeer) {
	var conn net.Conn
	var bw *bufio.Writer
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	timeout := n.c.cfg.broker.electionTimeout
	var hdr [4]byte
	for {
		var msg []byte
		select {
		case <-n.ctx.Done():
			return
		case msg = <-p.ch:
		}
		if conn == nil {
			dctx, cancel := context.WithTimeout(n.ctx, timeout)
			c, err := n.c.net.Dial(dctx, n.id, p.id, p.addr)
			cancel()
			if err != nil {
				n.raft.ReportUnreachable(uint64(p.id))
				continue
			}
			conn, bw = c, bufio.NewWriterSize(c, 64<<10)
		}
		conn.SetWriteDeadline(time.Now().Add(timeout))
		var err error
		for msg != nil && err == nil {
			binary.BigEndian.PutUint32(hdr[:], uint32(len(msg)))
			if _, err = bw.Write(hdr[:]); err == nil {
				_, err = bw.Write(msg)
			}
			select {
			case msg = <-p.ch:
			default:
				msg = nil
			}
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil {
			conn.Close()
			conn = nil
			n.raft.ReportUnreachable(uint64(p.id))
		}
	}
}

func (n *controllerNode) raftAcceptLoop() {
	for {
		conn, err := n.rln.Accept()
		if err != nil {
			return
		}
		if !n.srv.track(conn) {
			return
		}
		go func() {
			defer n.wg.Done()
			defer n.srv.untrack(conn)
			br := bufio.NewReaderSize(conn, 64<<10)
			var hdr [4]byte
			for {
				if _, err := io.ReadFull(br, hdr[:]); err != nil {
					return
				}
				size := binary.BigEndian.Uint32(hdr[:])
				if size > maxRaftFrame {
					n.log.Warn("raft frame too large; closing connection", "size", size, "remote", conn.RemoteAddr())
					return
				}
				msg := make([]byte, size)
				if _, err := io.ReadFull(br, msg); err != nil {
					return
				}
				if err := n.raft.Step(msg); err != nil {
					n.log.Warn("bad raft message; closing connection", "err", err, "remote", conn.RemoteAddr())
					return
				}
			}
		}()
	}
}

// controllers returns the running controller nodes.
func (c *Cluster) controllers() []*controllerNode {
	c.ctrls.Lock()
	defer c.ctrls.Unlock()
	var out []*controllerNode
	for _, n := range c.ctrls.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// activeController returns the running controller that may change
// metadata, or nil. Right after a partition two may believe they lead for
// an election timeout; the one with the higher Raft term is the real one.
func (c *Cluster) activeController() *controllerNode {
	var best *controllerNode
	var bestTerm uint64
	for _, n := range c.controllers() {
		if !n.ctrl.Active() {
			continue
		}
		var term uint64
		if n.raft != nil {
			term = n.raft.Status().Term
		}
		if best == nil || term > bestTerm {
			best, bestTerm = n, term
		}
	}
	return best
}

// viewState runs fn on the freshest metadata state at hand: the active
// controller's; with none, that of the running node (controller or broker)
// that has applied the most records.
func (c *Cluster) viewState(fn func(*metadata.State)) {
	if n := c.activeController(); n != nil {
		n.ctrl.State(fn)
		return
	}
	var best func(func(*metadata.State))
	bestOff := int64(-2)
	for _, n := range c.controllers() {
		var off int64
		n.ctrl.State(func(s *metadata.State) { off = s.Offset })
		if off > bestOff {
			best, bestOff = n.ctrl.State, off
		}
	}
	for _, b := range c.running() {
		b.mu.RLock()
		off := b.mu.state.Offset
		b.mu.RUnlock()
		if off > bestOff {
			best, bestOff = func(fn func(*metadata.State)) {
				b.mu.RLock()
				defer b.mu.RUnlock()
				fn(b.mu.state)
			}, off
		}
	}
	if best == nil {
		fn(metadata.NewState())
		return
	}
	best(fn)
}

// metadataEnd returns the offset of the last committed metadata record
// (-1 before any), as the active controller knows it.
func (c *Cluster) metadataEnd() int64 {
	if n := c.activeController(); n != nil {
		return n.mlog.End() - 1
	}
	end := int64(-1)
	for _, n := range c.controllers() {
		end = max(end, n.mlog.End()-1)
	}
	return end
}

// Controller returns the node id of the active controller, -1 while there
// is none (the quorum is electing, has lost its majority, or every
// controller is down). Controller ids start at 1000 and never collide with
// broker ids; use them in Cut, Isolate and Partition.
func (c *Cluster) Controller() int32 {
	c.mustEmbed("Controller")
	if n := c.activeController(); n != nil {
		return n.id
	}
	return -1
}

// ControllerIDs returns every controller's node id, in order: one in the
// in-memory mode, Controllers(n) in the quorum mode.
func (c *Cluster) ControllerIDs() []int32 {
	c.mustEmbed("ControllerIDs")
	ids := make([]int32, c.numControllers())
	for i := range ids {
		ids[i] = c.ctrlID(i)
	}
	return ids
}

// MetadataOffsets returns, for every running node, the offset of the
// last metadata record it has: for a controller, the last committed record
// in its copy of the log; for a broker, the last record it has replayed.
// Once the cluster settles every value is the same.
func (c *Cluster) MetadataOffsets() map[int32]int64 {
	c.mustEmbed("MetadataOffsets")
	out := make(map[int32]int64)
	for _, n := range c.controllers() {
		out[n.id] = n.mlog.End() - 1
	}
	for _, b := range c.running() {
		b.mu.RLock()
		out[b.id] = b.mu.state.Offset
		b.mu.RUnlock()
	}
	return out
}

// onControllerStatus runs when a Raft node's leader or term changes: it
// records a ControllerChanged event when the active controller differs
// from the last one recorded, and wakes WaitFor.
func (c *Cluster) onControllerStatus() {
	c.noteController()
	c.notifyEvent()
}

func (c *Cluster) noteController() {
	cur := c.Controller()
	c.evlog.mu.Lock()
	changed := cur != c.evlog.controller
	c.evlog.controller = cur
	c.evlog.mu.Unlock()
	if changed {
		c.record(Event{Kind: ControllerChanged, Controller: cur})
	}
}

func (c *Cluster) ctrlIndex(id int32) (int, error) {
	for i := range c.numControllers() {
		if c.ctrlID(i) == id {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: %d", ErrUnknownController, id)
}

// KillController stops controller id abruptly, as a crashed process:
// its listeners and connections close at once and it stops voting. Its
// storage stays. Killing the active controller of a quorum makes the
// others elect a new one (after controller.quorum.election.timeout.ms); in
// the in-memory mode, or with the quorum's majority down, metadata stops
// changing (no fencing, no elections, no new topics) while produce and
// fetch to healthy leaders go on.
func (c *Cluster) KillController(id int32) error {
	if err := c.embedded("KillController"); err != nil {
		return err
	}
	i, err := c.ctrlIndex(id)
	if err != nil {
		return err
	}
	if c.cfg.combined {
		// One process: the broker goes with it (KillBroker takes the
		// controller down too).
		if b, _ := c.brokerByID(id); b != nil {
			return c.KillBroker(id)
		}
	}
	return c.killController(i)
}

// killController kills controller i.
func (c *Cluster) killController(i int) error {
	id := c.ctrlID(i)
	c.ctrls.Lock()
	if c.isClosed() {
		c.ctrls.Unlock()
		return ErrClosed
	}
	n := c.ctrls.nodes[i]
	c.ctrls.nodes[i] = nil
	c.ctrls.Unlock()
	if n == nil {
		return fmt.Errorf("%w: %d", ErrControllerDown, id)
	}
	n.kill()
	c.record(Event{Kind: ControllerDown, Controller: id})
	c.noteController()
	c.notifyEvent()
	return nil
}

// RestartController starts a killed controller again with the same id,
// ports and storage. It returns once it is listening; in the quorum mode it
// then catches up with the Raft log (and may be elected).
func (c *Cluster) RestartController(id int32) error {
	if err := c.embedded("RestartController"); err != nil {
		return err
	}
	i, err := c.ctrlIndex(id)
	if err != nil {
		return err
	}
	if c.cfg.combined {
		if b, _ := c.brokerByID(id); b == nil {
			return c.RestartBroker(id) // one process: both roles start
		}
	}
	return c.restartController(i)
}

// restartController starts controller i again.
func (c *Cluster) restartController(i int) error {
	id := c.ctrlID(i)
	c.ctrls.Lock()
	defer c.ctrls.Unlock()
	if c.isClosed() {
		return ErrClosed
	}
	if c.ctrls.nodes[i] != nil {
		return fmt.Errorf("%w: %d", ErrControllerUp, id)
	}
	ln, rln, err := c.listenController(i)
	if err != nil {
		return err
	}
	n, err := c.startController(i, ln, rln)
	if err != nil {
		return err
	}
	c.ctrls.nodes[i] = n
	c.record(Event{Kind: ControllerUp, Controller: id})
	c.notifyEvent()
	return nil
}

// controllerByID returns a running controller, or nil.
func (c *Cluster) controllerByID(id int32) *controllerNode {
	for _, n := range c.controllers() {
		if n.id == id {
			return n
		}
	}
	return nil
}
