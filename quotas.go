package kcluster

// Client quota enforcement (Kafka's ClientQuotaManager, KIP-13, KIP-55,
// KIP-219): each broker measures the produce bytes it accepts and the
// fetch bytes it returns per (user, client id) over quota.window.num
// windows of quota.window.size.seconds, and when the rate passes the
// quota that applies (the most specific of /users/<u>/clients/<c>, ...,
// /clients/<default>, as Kafka orders them; the user is the connection's
// principal name: the SASL user, a client certificate's subject, or
// ANONYMOUS) it answers with throttle_time_ms = (rate - quota) /
// quota * window and mutes the connection for that long: the next request
// on it is not read until the throttle passes. A throttled consumer fetch
// is answered without data (its bytes are not counted), as Kafka does.

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

// anonymous is the principal of unauthenticated connections.
const anonymous = "ANONYMOUS"

// quotaManager is one broker's quota state, guarded by mu; anyMuted
// lets requests skip the lock while no connection is muted.
type quotaManager struct {
	anyMuted atomic.Bool
	mu       struct {
		sync.Mutex
		sensors map[string]*rateSensor
		muted   map[net.Conn]time.Time
	}
}

// rateSensor counts bytes in a ring of windows.
type rateSensor struct {
	starts []time.Time
	bytes  []float64
	cur    int
}

func (s *rateSensor) record(now time.Time, n float64, win time.Duration, num int) {
	if s.starts == nil {
		s.starts = make([]time.Time, num)
		s.bytes = make([]float64, num)
		s.starts[0] = now
	}
	if now.Sub(s.starts[s.cur]) >= win {
		s.cur = (s.cur + 1) % num
		s.starts[s.cur], s.bytes[s.cur] = now, 0
	}
	s.bytes[s.cur] += n
}

// rate is bytes per second over the windows still in range, over at
// least num-1 windows (Kafka's Rate).
func (s *rateSensor) rate(now time.Time, win time.Duration, num int) (float64, time.Duration) {
	var total float64
	oldest := now
	for i := range s.starts {
		if s.starts[i].IsZero() || now.Sub(s.starts[i]) >= win*time.Duration(num) {
			continue
		}
		total += s.bytes[i]
		if s.starts[i].Before(oldest) {
			oldest = s.starts[i]
		}
	}
	span := now.Sub(oldest)
	if minSpan := win * time.Duration(num-1); span < minSpan {
		span = minSpan
	}
	return total / span.Seconds(), span
}

// quotaFor resolves the quota key for (user, client id) by Kafka's
// precedence; ok is false when none applies.
func quotaFor(st *metadata.State, user, client, key string) (float64, bool) {
	if len(st.ClientQuotas) == 0 {
		return 0, false
	}
	u, c := &user, &client
	for _, ent := range [][]metadata.QuotaEntity{
		{{Type: "user", Name: u}, {Type: "client-id", Name: c}},
		{{Type: "user", Name: u}, {Type: "client-id"}},
		{{Type: "user", Name: u}},
		{{Type: "user"}, {Type: "client-id", Name: c}},
		{{Type: "user"}, {Type: "client-id"}},
		{{Type: "user"}},
		{{Type: "client-id", Name: c}},
		{{Type: "client-id"}},
	} {
		if q := st.ClientQuotas[metadata.QuotaKey(ent)]; q != nil {
			if v, ok := q.Values[key]; ok {
				return v, true
			}
		}
	}
	return 0, false
}

// waitUnmuted blocks while conn is muted by a throttle.
func (b *broker) waitUnmuted(conn net.Conn) {
	if conn == nil {
		return
	}
	q := &b.quotas
	if !q.anyMuted.Load() {
		return
	}
	q.mu.Lock()
	until, ok := q.mu.muted[conn]
	if ok {
		delete(q.mu.muted, conn)
	}
	q.anyMuted.Store(len(q.mu.muted) > 0)
	q.mu.Unlock()
	if d := time.Until(until); ok && d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-b.ctx.Done():
		}
	}
}

// applyQuotas measures a produce or consumer fetch against its byte-rate
// quota, sets throttle_time_ms, mutes conn and, for a throttled fetch,
// drops the data.
func (b *broker) applyQuotas(conn net.Conn, sess *session, client *string, req kmsg.Request, resp kmsg.Response) {
	var key string
	var n int
	switch r := req.(type) {
	case *kmsg.ProduceRequest:
		key = "producer_byte_rate"
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				n += len(p.Records)
			}
		}
	case *kmsg.FetchRequest:
		if r.ReplicaID >= 0 || (r.Version >= 15 && r.ReplicaState.ID >= 0) {
			return // replication is not a client
		}
		key = "consumer_byte_rate"
		fr, ok := resp.(*kmsg.FetchResponse)
		if !ok {
			return
		}
		for _, t := range fr.Topics {
			for _, p := range t.Partitions {
				n += len(p.RecordBatches)
			}
		}
	default:
		return
	}
	cid := ""
	if client != nil {
		cid = *client
	}
	user := sess.userName()
	b.mu.RLock()
	quota, ok := quotaFor(b.mu.state, user, cid, key)
	b.mu.RUnlock()
	if !ok || resp == nil {
		return
	}
	win, num := b.cfg.quotaWindow, b.cfg.quotaWindowNum
	now := time.Now()
	q := &b.quotas
	q.mu.Lock()
	if q.mu.sensors == nil {
		q.mu.sensors = make(map[string]*rateSensor)
		q.mu.muted = make(map[net.Conn]time.Time)
	}
	sk := key + "\x00" + user + "\x00" + cid
	s := q.mu.sensors[sk]
	if s == nil {
		s = &rateSensor{}
		q.mu.sensors[sk] = s
	}
	s.record(now, float64(n), win, num)
	rate, span := s.rate(now, win, num)
	var throttle time.Duration
	if rate > quota {
		throttle = time.Duration((rate - quota) / quota * float64(span))
		throttle = min(throttle, win*time.Duration(num))
	}
	if throttle > 0 {
		if key == "consumer_byte_rate" {
			s.record(now, -float64(n), win, num) // the data is not sent
		}
		if conn != nil {
			q.mu.muted[conn] = now.Add(throttle)
			q.anyMuted.Store(true)
		}
	}
	q.mu.Unlock()
	if throttle <= 0 {
		return
	}
	ms := int32(throttle / time.Millisecond)
	switch r := resp.(type) {
	case *kmsg.ProduceResponse:
		r.ThrottleMillis = ms
	case *kmsg.FetchResponse:
		r.ThrottleMillis = ms
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				r.Topics[i].Partitions[j].RecordBatches = []byte{}
			}
		}
	}
}

// forgetConn drops a closed connection's mute.
func (b *broker) forgetConn(conn net.Conn) {
	if !b.quotas.anyMuted.Load() {
		return
	}
	b.quotas.mu.Lock()
	delete(b.quotas.mu.muted, conn)
	b.quotas.anyMuted.Store(len(b.quotas.mu.muted) > 0)
	b.quotas.mu.Unlock()
}
