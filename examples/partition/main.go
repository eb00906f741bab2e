// Command partition is an experiment: the leader of a partition is cut off
// into a minority while an idempotent acks=all producer writes to it, in
// two ways, and the timeline of what Kafka's protocol does is printed.
//
//  1. The leader is cut from its followers but still reaches the
//     controller: the followers stop fetching, the leader shrinks the ISR
//     to itself, and acks=all is refused (NOT_ENOUGH_REPLICAS) until the
//     cut heals.
//  2. The leader is cut from its followers and the controller: it keeps
//     believing it leads, acks=all to it stalls until the request times
//     out (it can neither advance the high watermark nor shrink the ISR);
//     the controller fences it and elects a follower; on healing, the old
//     leader truncates what it wrote alone and catches up.
//
// At the end every acknowledged record is read back. In phase 2 the
// producer may go back to the old leader more than once: a metadata
// request answered by the cut-off broker still names it the leader.
//
//	go run ./partition
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"log"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster"
)

const topic = "orders"

var start = time.Now()

func stamp(format string, args ...any) {
	fmt.Printf("%8.1f ms  %s\n", float64(time.Since(start).Microseconds())/1000, fmt.Sprintf(format, args...))
}

func main() {
	c, err := kcluster.New(kcluster.Brokers(3),
		kcluster.BrokerConfig("min.insync.replicas", "2"),
		kcluster.BrokerConfig("replica.lag.time.max.ms", "1000"),
		kcluster.BrokerConfig("auto.leader.rebalance.enable", "false"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(50*time.Millisecond),
		kgo.ProduceRequestTimeout(1500*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, topic); err != nil {
		log.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := c.WaitFor(wctx, kcluster.FullyReplicated(topic, 0)); err != nil {
		log.Fatal(err)
	}

	p := startProducer(ctx, cl)
	p.waitAcks(50)
	st, _ := c.PartitionState(topic, 0)
	leader := st.Leader
	var followers []int32
	for _, r := range st.Replicas {
		if r != leader {
			followers = append(followers, r)
		}
	}

	fmt.Println("phase 1: the leader keeps the controller, loses its followers")
	stamp("broker %d leads (epoch %d, ISR %v); cutting it from %v", leader, st.LeaderEpoch, st.ISR, followers)
	p.mark()
	heal := c.Partition([]int32{leader}, followers)
	if err := c.WaitFor(wctx, kcluster.ISRSize(topic, 0, 1)); err != nil {
		log.Fatal(err)
	}
	st, _ = c.PartitionState(topic, 0)
	stamp("ISR shrank to %v", st.ISR)
	stamp("acks=all to broker %d: %s", leader, produceTo(ctx, cl, leader, "probe-1"))
	heal()
	if err := c.WaitFor(wctx, kcluster.FullyReplicated(topic, 0)); err != nil {
		log.Fatal(err)
	}
	p.waitAcks(p.acked() + 1)
	st, _ = c.PartitionState(topic, 0)
	stamp("healed; ISR %v again; producer's longest wait in the phase %v", st.ISR, p.mark())

	fmt.Println("\nphase 2: the leader is cut from its followers and the controller")
	minority, majority := []int32{leader}, append(slices.Clone(followers), c.Controller())
	stamp("partition %v | %v (controller is node %d)", minority, majority, c.Controller())
	p.mark()
	ackedAtCut := p.acked()
	heal = c.Partition(minority, majority)
	stamp("acks=all to broker %d: %s", leader, produceTo(ctx, cl, leader, "probe-2"))
	if err := c.WaitFor(wctx, kcluster.LeaderElected(topic, 0, leader)); err != nil {
		log.Fatal(err)
	}
	st, _ = c.PartitionState(topic, 0)
	stamp("controller elected broker %d (epoch %d, ISR %v); broker %d still thinks it leads", st.Leader, st.LeaderEpoch, st.ISR, leader)
	p.waitAcks(p.acked() + 20)
	st, _ = c.PartitionState(topic, 0)
	stamp("producer back on broker %d (high watermark %d); broker %d's log ends at %d, though only %d records were acknowledged when the cut came",
		st.Leader, st.HighWatermark, leader, st.LogEndOffsets[leader], ackedAtCut)
	heal()
	if err := c.WaitFor(wctx, kcluster.FullyReplicated(topic, 0)); err != nil {
		log.Fatal(err)
	}
	p.waitAcks(p.acked() + 1)
	st, _ = c.PartitionState(topic, 0)
	stamp("healed; broker %d truncated its unacknowledged suffix and caught up: ISR %v, log end %d; producer's longest wait in the phase %v",
		leader, st.ISR, st.LogEndOffsets[leader], p.mark())

	acked := p.stop()
	got := readAll(ctx, c, st.HighWatermark)
	lost := 0
	for _, v := range acked {
		if !got[v] {
			lost++
		}
	}
	stamp("%d records acknowledged, %d lost, %d in the log", len(acked), lost, len(got))
	fmt.Println("\nthe cluster's own timeline:")
	for _, e := range c.Events() {
		fmt.Println(" ", e)
	}
}

// produceTo sends one acks=all batch straight to broker id and says how it
// went and how long it took. franz-go sends it on its produce connection to
// that broker, so in phase 2 it first waits behind the producer's own
// stalled request: a broker answers a connection's requests in order.
func produceTo(ctx context.Context, cl *kgo.Client, id int32, value string) string {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 1000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch(value)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	t := time.Now()
	resp, err := cl.Broker(int(id)).Request(ctx, req)
	d := time.Since(t).Round(time.Millisecond)
	if err != nil {
		return fmt.Sprintf("%v after %v", err, d)
	}
	code := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
	if err := kerr.ErrorForCode(code); err != nil {
		return fmt.Sprintf("%v after %v", err, d)
	}
	return fmt.Sprintf("acknowledged after %v", d)
}

// batch encodes one record as a v2 record batch.
func batch(value string) []byte {
	r := kmsg.Record{Value: []byte(value)}
	r.Length = int32(len(r.AppendTo(nil)) - 1) // Length 0 encodes as one byte
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{Magic: 2, PartitionLeaderEpoch: -1, FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 1, Records: r.AppendTo(nil)}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))                                          // Length
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))) // CRC-32C
	return raw
}

// producer writes numbered records with acks=all (idempotent) as fast as
// they are acknowledged, and keeps the longest wait for one.
type producer struct {
	mu      sync.Mutex
	values  []string
	maxWait time.Duration
	more    chan struct{}
	stopped chan struct{}
	done    chan struct{}
}

func startProducer(ctx context.Context, cl *kgo.Client) *producer {
	p := &producer{more: make(chan struct{}), stopped: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stopped:
				return
			default:
			}
			v := strconv.Itoa(i)
			t := time.Now()
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				log.Fatalf("produce: %v", err)
			}
			p.mu.Lock()
			p.values = append(p.values, v)
			p.maxWait = max(p.maxWait, time.Since(t))
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *producer) acked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.values)
}

// waitAcks waits until n records are acknowledged.
func (p *producer) waitAcks(n int) {
	for {
		p.mu.Lock()
		ok, ch := len(p.values) >= n, p.more
		p.mu.Unlock()
		if ok {
			return
		}
		<-ch
	}
}

// mark returns the longest wait since the last mark.
func (p *producer) mark() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.maxWait
	p.maxWait = 0
	return w.Round(time.Millisecond)
}

func (p *producer) stop() []string {
	close(p.stopped)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.values
}

// readAll consumes the partition up to end and returns the values seen.
func readAll(ctx context.Context, c *kcluster.Cluster, end int64) map[string]bool {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	got := map[string]bool{}
	for n := int64(0); n < end; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			log.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[string(r.Value)] = true
			n = r.Offset + 1
		})
	}
	return got
}
