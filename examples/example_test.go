// Package examples shows kcluster with franz-go. It is its own module so the
// client stays out of the library's dependencies.
package examples

import (
	"context"
	"fmt"
	"log"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/kcluster/kcluster"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ExampleNew starts three brokers, creates a topic replicated to all of
// them, produces with acks=all and reads the records back.
func ExampleNew() {
	c, err := kcluster.New(kcluster.Brokers(3))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	ctx := context.Background()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(c.Addrs()...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ConsumeTopics("orders"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, nil, "orders")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created", resp.Topic)

	for _, v := range []string{"o-1", "o-2", "o-3"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte(v)}).FirstErr(); err != nil {
			log.Fatal(err)
		}
	}
	for n := 0; n < 3; {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			fmt.Println(r.Offset, string(r.Value))
			n++
		})
	}
	// Output:
	// created orders
	// 0 o-1
	// 1 o-2
	// 2 o-3
}

// Example_powerCut shows the durability model: acks are not fsyncs. With
// flush.messages=5 a single-replica topic syncs every fifth record; a power
// cut keeps the synced ones only.
func Example_powerCut() {
	c, err := kcluster.New(kcluster.Brokers(1))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic("audit"),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"flush.messages": kadm.StringPtr("5")}, "audit"); err != nil {
		log.Fatal(err)
	}
	for i := range 12 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("acknowledged: 12")

	if err := c.PowerCut(1); err != nil {
		log.Fatal(err)
	}
	if err := c.RestartBroker(1); err != nil {
		log.Fatal(err)
	}
	if err := c.WaitFor(ctx, kcluster.LeaderElected("audit", 0)); err != nil {
		log.Fatal(err)
	}
	st, _ := c.PartitionState("audit", 0)
	fmt.Println("after the power cut:", st.LogEndOffsets[1])
	// Output:
	// acknowledged: 12
	// after the power cut: 10
}
