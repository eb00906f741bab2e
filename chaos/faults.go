package chaos

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kcluster/kcluster"
)

// step injects one fault, lets the workload run for FaultDuration, undoes
// it, waits for the topics to be fully replicated again, then lets the
// workload run for Calm without a fault.
func (r *run) step(ctx context.Context, step int) error {
	f := r.cfg.Faults[r.rng.IntN(len(r.cfg.Faults))]
	brokers := r.brokers()
	b := brokers[r.rng.IntN(len(brokers))]
	var undo func() error
	switch f {
	case Kill, Stop, PowerCut:
		var err error
		r.mu.Lock() // the sampler must not see the restarted replica under its old incarnation
		switch f {
		case Kill:
			err = r.c.KillBroker(b)
		case Stop:
			err = r.c.StopBroker(b)
		case PowerCut:
			err = r.c.PowerCut(b)
			if errors.Is(err, kcluster.ErrPowerCutUnsupported) {
				f = Kill + " (power cut unsupported on this storage)"
				err = r.c.KillBroker(b)
			}
		}
		r.mu.incarnation[b]++
		r.mu.Unlock()
		if err != nil {
			return fmt.Errorf("chaos: step %d %s broker %d: %w", step, f, b, err)
		}
		r.logf("step %d: %s broker %d", step, f, b)
		undo = func() error { return r.restart(b) }
	case FailLogDir:
		ds, err := r.c.LogDirStates(b)
		if err != nil {
			return fmt.Errorf("chaos: step %d log dirs of broker %d: %w", step, b, err)
		}
		i := r.rng.IntN(len(ds))
		since := time.Now()
		// Its replicas on the dir reopen (or the broker restarts) with
		// the high watermark they checkpointed: a new incarnation.
		r.mu.Lock()
		repair, err := r.c.FailLogDir(b, i)
		r.mu.incarnation[b]++
		r.mu.Unlock()
		if err != nil {
			return fmt.Errorf("chaos: step %d fail log dir %d of broker %d: %w", step, i, b, err)
		}
		r.logf("step %d: fail log dir %d of broker %d", step, i, b)
		undo = func() error {
			r.mu.Lock()
			repair()
			r.mu.incarnation[b]++
			r.mu.Unlock()
			for _, e := range r.c.Events() {
				if e.Kind == kcluster.LogDirFailed && e.Broker == b && !e.Time.Before(since) {
					// Its last dir, or its first, failed: it halted
					// (and, down, was not sampled since the repair).
					return r.restart(b)
				}
			}
			return nil
		}
	case KillController:
		ids := r.c.ControllerIDs()
		active := r.c.Controller()
		if len(ids) < 2 || active < 0 {
			r.logf("step %d: kill-controller needs a quorum (controllers %v, active %d): killing broker %d instead", step, ids, active, b)
			r.mu.Lock()
			err := r.c.KillBroker(b)
			r.mu.incarnation[b]++
			r.mu.Unlock()
			if err != nil {
				return fmt.Errorf("chaos: step %d kill broker %d: %w", step, b, err)
			}
			undo = func() error { return r.restart(b) }
			break
		}
		if slices.Contains(brokers, active) { // combined mode: the broker goes too
			r.mu.Lock()
			r.mu.incarnation[active]++
			r.mu.Unlock()
		}
		if err := r.c.KillController(active); err != nil {
			return fmt.Errorf("chaos: step %d kill controller %d: %w", step, active, err)
		}
		r.logf("step %d: kill-controller %d", step, active)
		undo = func() error {
			r.logf("restart controller %d", active)
			return r.c.RestartController(active)
		}
	case Cut:
		other := r.other(brokers, b)
		heal := r.c.Cut(b, other)
		r.logf("step %d: cut %d-%d", step, b, other)
		undo = func() error { heal(); return nil }
	case Isolate:
		heal := r.c.Isolate(b)
		r.logf("step %d: isolate %d", step, b)
		undo = func() error { heal(); return nil }
	case Partition:
		nodes := append(slices.Clone(brokers), r.c.ControllerIDs()...)
		nodes = slices.Compact(slices.Sorted(slices.Values(nodes)))
		r.rng.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
		k := 1 + r.rng.IntN((len(nodes)-1)/2) // a minority of one or more
		minority, majority := slices.Clone(nodes[:k]), slices.Clone(nodes[k:])
		heal := r.c.Partition(minority, majority)
		r.logf("step %d: partition %v | %v", step, minority, majority)
		undo = func() error { heal(); return nil }
	case SlowLink, LossyLink:
		a := r.linkEnd(brokers)
		z := r.linkEnd(brokers)
		for z == a {
			z = r.linkEnd(brokers)
		}
		var heal func()
		if f == SlowLink {
			d := time.Duration(5+r.rng.IntN(46)) * time.Millisecond
			heal = r.c.SlowLink(a, z, d)
			r.logf("step %d: slow link %s-%s +%v", step, nodeName(a), nodeName(z), d)
		} else {
			p := 0.1 + 0.4*r.rng.Float64()
			heal = r.c.Drop(a, z, p)
			r.logf("step %d: lossy link %s-%s %.0f%%", step, nodeName(a), nodeName(z), 100*p)
		}
		undo = func() error { heal(); return nil }
	default:
		return fmt.Errorf("chaos: unknown fault %q", f)
	}
	select {
	case <-time.After(r.cfg.FaultDuration):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := undo(); err != nil {
		return fmt.Errorf("chaos: step %d undoing %s: %w", step, f, err)
	}
	r.logf("step %d: healed", step)
	if err := r.waitReplicated(ctx, fmt.Sprintf("healing step %d (%s)", step, f)); err != nil {
		return err
	}
	select {
	case <-time.After(r.cfg.Calm):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *run) restart(id int32) error {
	r.logf("restart broker %d", id)
	return r.c.RestartBroker(id)
}

func (r *run) other(ids []int32, not int32) int32 {
	for {
		if o := ids[r.rng.IntN(len(ids))]; o != not {
			return o
		}
	}
}

// linkEnd is a random broker, or the clients one time in four.
func (r *run) linkEnd(brokers []int32) int32 {
	if r.rng.IntN(4) == 0 {
		return kcluster.Client
	}
	return brokers[r.rng.IntN(len(brokers))]
}

func nodeName(id int32) string {
	if id == kcluster.Client {
		return "clients"
	}
	return fmt.Sprint(id)
}
