package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// txnOutcome is what the transactional producer knows of one transaction.
type txnOutcome int

const (
	txnCommitted txnOutcome = iota // EndTransaction(commit) succeeded
	txnAborted                     // never asked to commit
	txnUnknown                     // asked to commit, and the answer was an error
)

// txn is one transaction of the transactional workload.
type txn struct {
	values  []string
	outcome txnOutcome
}

// txnTopic is the topic the transactional producer writes to.
func (r *run) txnTopic() string { return r.cfg.Topic + "-txn" }

// produceTxns runs transactions of 1-10 records over the partitions of
// the transactional topic until ctx ends, aborting about one in three (its
// own seeded choice, so the schedule's randomness is untouched). A
// transaction whose produce fails is aborted; a producer whose
// EndTransaction fails is replaced by a new one with the same
// transactional id, which fences it and aborts what it left open. first
// is closed once the first transaction has ended, either way.
func (r *run) produceTxns(ctx context.Context, first chan<- struct{}) {
	var once sync.Once
	ended := func() { once.Do(func() { close(first) }) }
	defer ended()
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 2))
	newClient := func() *kgo.Client {
		cl, err := r.client(kgo.TransactionalID(r.cfg.Topic+"-txn-producer"), kgo.DefaultProduceTopic(r.txnTopic()),
			kgo.TransactionTimeout(10*time.Second))
		if err != nil {
			r.violation("transactional client: %v", err)
			return nil
		}
		return cl
	}
	cl := newClient()
	defer func() {
		if cl != nil {
			cl.Close()
		}
	}()
	for n := 0; ctx.Err() == nil && cl != nil; n++ {
		t := txn{outcome: txnAborted}
		abort := rng.IntN(3) == 0
		k := 1 + rng.IntN(10)
		recs := make([]*kgo.Record, k)
		for i := range recs {
			v := fmt.Sprintf("t%07d-%02d", n, i)
			t.values = append(t.values, v)
			recs[i] = &kgo.Record{Value: []byte(v), Partition: int32(i) % r.cfg.Partitions}
		}
		tctx, cancel := context.WithTimeout(context.Background(), r.cfg.Recovery)
		began := time.Now()
		err := cl.BeginTransaction()
		if err == nil {
			err = cl.ProduceSync(tctx, recs...).FirstErr()
			if err != nil {
				abort = true
			}
			if !abort {
				t.outcome = txnUnknown // until the commit is acknowledged
			}
			i := r.addTxn(t)
			err = cl.EndTransaction(tctx, kgo.TransactionEndTry(!abort))
			if err == nil && !abort {
				r.setTxnOutcome(i, txnCommitted)
			}
		}
		cancel()
		ended()
		if took := time.Since(began); took > time.Second {
			r.logf("transactional producer: transaction %d took %v (abort %v, err %v)", n, took.Round(time.Millisecond), abort, err)
		}
		if err != nil {
			// The producer may be fenced or its id unusable:
			// start over as a new incarnation of the same id.
			r.logf("transactional producer: transaction %d: %v; restarting it", n, shortErr(err))
			cl.Close()
			cl = newClient()
		}
	}
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if errors.Is(err, context.DeadlineExceeded) {
		s = "timed out: " + s
	}
	return s
}

// addTxn records a begun transaction and returns its index.
func (r *run) addTxn(t txn) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.txns = append(r.mu.txns, t)
	r.mu.report.Transactions++
	return len(r.mu.txns) - 1
}

func (r *run) setTxnOutcome(i int, o txnOutcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.txns[i].outcome = o
}

// checkTxns reads the transactional topic with read_committed (once no
// transaction is open) and with read_uncommitted: committed transactions
// are there exactly once, aborted ones never in read_committed, those of
// unknown outcome wholly or not at all, and nothing else.
func (r *run) checkTxns(ctx context.Context) {
	committed, ok := r.readTopic(ctx, r.txnTopic(), true)
	if !ok {
		return
	}
	seen := map[string]int{}
	for _, recs := range committed {
		for _, rec := range recs {
			seen[rec.value]++
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var bad []string
	known := map[string]bool{}
	for i, t := range r.mu.txns {
		present := 0
		for _, v := range t.values {
			known[v] = true
			if seen[v] > 1 {
				bad = append(bad, fmt.Sprintf("%s of transaction %d is in the read_committed log %d times", v, i, seen[v]))
			}
			if seen[v] > 0 {
				present++
			}
		}
		switch {
		case t.outcome == txnCommitted && present != len(t.values):
			bad = append(bad, fmt.Sprintf("committed transaction %d: %d of its %d records in the read_committed log", i, present, len(t.values)))
		case t.outcome == txnAborted && present > 0:
			bad = append(bad, fmt.Sprintf("aborted transaction %d: read_committed returns %d of its records", i, present))
		case t.outcome == txnUnknown && present != 0 && present != len(t.values):
			bad = append(bad, fmt.Sprintf("transaction %d (outcome unknown): %d of its %d records in the read_committed log, not all or none", i, present, len(t.values)))
		}
		if t.outcome == txnCommitted {
			r.mu.report.Committed++
		} else if t.outcome == txnAborted {
			r.mu.report.Aborted++
		}
	}
	for v := range seen {
		if !known[v] {
			bad = append(bad, fmt.Sprintf("record %q in the transactional topic was never sent", v))
		}
	}
	r.addViolationsLocked(bad)
}
