// Command rebalance is an experiment: a consumer group on a 6-partition
// topic while members join one by one, one leaves, and the broker that
// coordinates the group is killed. After each step it waits for the group
// to be stable with every partition assigned (woken by the cluster's
// events, not a timer) and prints who
// owns which partitions, the generation and the coordinator; at the end it
// prints how many records were consumed and how many more than once.
//
//	go run ./rebalance            # classic protocol, cooperative-sticky
//	go run ./rebalance -kip848    # the KIP-848 consumer protocol
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

const (
	topic = "events"
	group = "billing"
)

func main() {
	kip848 := flag.Bool("kip848", false, "use the KIP-848 consumer protocol")
	flag.Parse()
	c, err := kcluster.New(kcluster.Brokers(3))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	admin, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 6, 3, nil, topic); err != nil {
		log.Fatal(err)
	}

	start := time.Now()
	stamp := func(format string, args ...any) {
		fmt.Printf("%8.1f ms  %s\n", float64(time.Since(start).Microseconds())/1000, fmt.Sprintf(format, args...))
	}

	// A steady producer: the load the group consumes.
	producer, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		log.Fatal(err)
	}
	defer producer.Close()
	stopProducing := make(chan struct{})
	var produced sync.WaitGroup
	produced.Add(1)
	go func() {
		defer produced.Done()
		for i := 0; ; i++ {
			select {
			case <-stopProducing:
				return
			default:
			}
			if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
				log.Fatalf("produce: %v", err)
			}
		}
	}()

	var (
		mu   sync.Mutex
		seen = map[string]int{} // value -> times consumed
	)
	type member struct {
		cl   *kgo.Client
		done chan struct{}
	}
	join := func(name string) *member {
		opts := []kgo.Opt{kgo.SeedBrokers(c.Addrs()...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ClientID(name), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.AutoCommitInterval(100 * time.Millisecond)}
		opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
		if *kip848 {
			opts = append(opts, kgo.ServerSideBalancer())
		}
		cl, err := kgo.NewClient(opts...)
		if err != nil {
			log.Fatal(err)
		}
		m := &member{cl: cl, done: make(chan struct{})}
		go func() {
			defer close(m.done)
			for {
				fs := cl.PollFetches(ctx)
				if fs.IsClientClosed() || ctx.Err() != nil {
					return
				}
				mu.Lock()
				fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
				mu.Unlock()
			}
		}()
		return m
	}
	// settled holds when the group is stable with n members and all 6
	// partitions assigned: a cooperative group is Stable in between its
	// two rebalances too, with the revoked partitions not yet given out.
	settled := func(n int) kcluster.Condition {
		return func(c *kcluster.Cluster) bool {
			g, err := c.Group(group)
			if err != nil || !kcluster.GroupStable(group, n)(c) {
				return false
			}
			owned := 0
			for _, m := range g.Members {
				owned += len(m.Assigned[topic])
			}
			return owned == 6
		}
	}
	waitStable := func(n int, what string) {
		if err := c.WaitFor(ctx, settled(n)); err != nil {
			log.Fatalf("waiting for %s: %v", what, err)
		}
		g, err := c.Group(group)
		if err != nil {
			log.Fatal(err)
		}
		stamp("%s: %s, generation %d, coordinator broker %d", what, g.State, g.Generation, g.Coordinator)
		sort.Slice(g.Members, func(i, j int) bool { return g.Members[i].ClientID < g.Members[j].ClientID })
		for _, m := range g.Members {
			var parts []string
			for _, t := range slices.Sorted(maps.Keys(m.Assigned)) {
				parts = append(parts, fmt.Sprintf("%s%v", t, m.Assigned[t]))
			}
			fmt.Printf("%12s %-10s owns %s\n", "", m.ClientID, strings.Join(parts, " "))
		}
	}

	var members []*member
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("consumer-%d", i)
		stamp("%s joins", name)
		members = append(members, join(name))
		waitStable(i, fmt.Sprintf("stable with %d members", i))
	}

	stamp("consumer-1 leaves")
	members[0].cl.Close()
	<-members[0].done
	waitStable(2, "stable with 2 members")

	g, err := c.Group(group)
	if err != nil {
		log.Fatal(err)
	}
	stamp("killing broker %d, the group's coordinator", g.Coordinator)
	if err := c.KillBroker(g.Coordinator); err != nil {
		log.Fatal(err)
	}
	if err := c.WaitFor(ctx, func(c *kcluster.Cluster) bool {
		st, err := c.Group(group)
		return err == nil && st.Coordinator != g.Coordinator && settled(2)(c)
	}); err != nil {
		log.Fatal(err)
	}
	waitStable(2, "stable on the new coordinator")

	close(stopProducing)
	produced.Wait()
	for _, m := range members[1:] {
		m.cl.Close()
		<-m.done
	}
	mu.Lock()
	defer mu.Unlock()
	repeats := 0
	for _, n := range seen {
		repeats += n - 1
	}
	stamp("%d distinct records consumed, %d consumed more than once (at-least-once: work after the last commit is redone)", len(seen), repeats)
}
