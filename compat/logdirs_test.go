package compat

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
)

// TestFranzGoLogDirs describes the brokers' two log dirs each (LogDirs)
// and moves a replica between them with franz-go's admin client
// (DescribeAllLogDirs, AlterBrokerReplicaLogDirs), as an operator
// rebalancing disks would: the data follows it, and reads back whole.
func TestFranzGoLogDirs(t *testing.T) {
	c := kcluster.Start(t, kcluster.Brokers(3), kcluster.LogDirs(2))
	ctx := testContext(t)
	cl := newFranzClient(t, c.Addrs(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 4, 3, nil, "disks"); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 100 {
		v := string(rune('a'+i%26)) + string(rune('0'+i/26))
		want = append(want, v)
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "disks", Partition: 1, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	all, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var from, to string
	for _, id := range []int32{1, 2, 3} {
		dirs := all[id]
		if len(dirs) != 2 {
			t.Fatalf("broker %d: %d log dirs described: %+v", id, len(dirs), dirs)
		}
		n := 0
		for _, d := range dirs {
			if d.Err != nil {
				t.Fatalf("broker %d dir %s: %v", id, d.Dir, d.Err)
			}
			n += len(d.Topics["disks"])
			if id == 1 {
				if _, ok := d.Topics["disks"][1]; ok {
					from = d.Dir
				} else {
					to = d.Dir
				}
			}
		}
		if n != 4 {
			t.Fatalf("broker %d: %d replicas of disks over its dirs, want 4", id, n)
		}
	}
	if from == "" || to == "" || from == to {
		t.Fatalf("broker 1: disks/1 in %q, other dir %q", from, to)
	}
	var req kadm.AlterReplicaLogDirsReq
	req.Add(to, kadm.TopicsSet{"disks": {1: {}}})
	resps, err := adm.AlterBrokerReplicaLogDirs(ctx, 1, req)
	if err != nil {
		t.Fatal(err)
	}
	resps.Each(func(r kadm.AlterReplicaLogDirsResponse) {
		if r.Err != nil {
			t.Fatalf("AlterReplicaLogDirs %s/%d to %s: %v", r.Topic, r.Partition, r.Dir, r.Err)
		}
	})
	if err := c.WaitFor(ctx, func(c *kcluster.Cluster) bool {
		dirs, err := adm.DescribeBrokerLogDirs(ctx, 1, kadm.TopicsSet{"disks": {1: {}}})
		if err != nil {
			return false
		}
		p, ok := dirs.Lookup(to, "disks", 1)
		_, still := dirs.Lookup(from, "disks", 1)
		return ok && !p.IsFuture && p.Size > 0 && !still
	}); err != nil {
		t.Fatal(err)
	}
	// Broker 1's moved replica holds the whole log.
	if err := c.WaitFor(ctx, kcluster.FullyReplicated("disks", 1)); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.PartitionState("disks", 1); st.LogEndOffsets[1] != int64(len(want)) || st.LogSizes[1] <= 0 {
		t.Fatalf("broker 1's moved replica: log end %d size %d, want %d records", st.LogEndOffsets[1], st.LogSizes[1], len(want))
	}
	consumer := newFranzClient(t, c.Addrs(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"disks": {1: kgo.NewOffset().AtStart()}}))
	var got []string
	for len(got) < len(want) {
		fs := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records after the move", len(got), len(want))
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if !slices.Equal(got, want) {
		t.Fatalf("after the move read %v, want %v", got, want)
	}
}
