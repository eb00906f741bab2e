package compat

import (
	"errors"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster"
)

// TestFranzGoTopicAdmin runs the topic operations an operator runs through
// franz-go's admin client: configs (describe, alter, INVALID_CONFIG),
// broker configs, CreatePartitions, DeleteRecords, DescribeLogDirs, a
// reassignment from RF 1 to 3, a preferred leader election and client
// quotas.
func TestFranzGoTopicAdmin(t *testing.T) {
	c := kcluster.Start(t, kcluster.Brokers(3))
	ctx := testContext(t)
	cl := newFranzClient(t, c.Addrs())
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, "ops"); err != nil {
		t.Fatal(err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On("ops", nil)
	if err != nil || rc.Err != nil {
		t.Fatal(err, rc.Err)
	}
	found := false
	for _, cfg := range rc.Configs {
		if cfg.Key == "retention.ms" {
			found = *cfg.Value == "3600000" && cfg.Source == kmsg.ConfigSourceDynamicTopicConfig
		}
	}
	if !found {
		t.Fatalf("retention.ms not described as set: %+v", rc.Configs)
	}
	resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("forever")}}, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(resps[0].Err, kerr.InvalidConfig) {
		t.Fatalf("retention.ms=forever: %v, want INVALID_CONFIG", resps[0].Err)
	}
	resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: kadm.StringPtr("compact,delete")}}, "ops")
	if err != nil || resps[0].Err != nil {
		t.Fatal(err, resps[0].Err)
	}
	if cfgs, err := c.TopicConfigs("ops"); err != nil || cfgs["cleanup.policy"].Value != "compact,delete" {
		t.Fatalf("TopicConfigs after the alteration: %v %v", cfgs["cleanup.policy"], err)
	}
	brs, err := adm.DescribeBrokerConfigs(ctx, 1)
	if err != nil || len(brs) != 1 || brs[0].Err != nil || len(brs[0].Configs) == 0 {
		t.Fatalf("DescribeBrokerConfigs: %v %+v", err, brs)
	}

	cps, err := adm.CreatePartitions(ctx, 2, "ops")
	if err != nil || cps.Error() != nil {
		t.Fatal(err, cps.Error())
	}
	var recs []*kgo.Record
	for i := 0; i < 10; i++ {
		recs = append(recs, &kgo.Record{Topic: "ops", Partition: 0, Key: []byte(key(i)), Value: []byte(value("ops", i))})
	}
	pcl := newFranzClient(t, c.Addrs(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := pcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: "ops", Partition: 0, At: 4})
	drs, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	if dr := drs["ops"][0]; dr.Err != nil || dr.LowWatermark != 4 {
		t.Fatalf("DeleteRecords: %+v", dr)
	}
	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, ds := range dirs {
		if p, ok := ds.LookupPartition("ops", 0); ok {
			size = p.Size
		}
	}
	if size <= 0 {
		t.Fatalf("DescribeAllLogDirs: no size for ops/0: %+v", dirs)
	}

	st, _ := c.PartitionState("ops", 0)
	target := []int32{st.Leader}
	for id := int32(1); id <= 3; id++ {
		if id != st.Leader {
			target = append(target, id)
		}
	}
	req := kadm.AlterPartitionAssignmentsReq{}
	req.Assign("ops", 0, target)
	ars, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil || ars.Error() != nil {
		t.Fatal(err, ars.Error())
	}
	if err := c.WaitFor(ctx, func(c *kcluster.Cluster) bool {
		st, err := c.PartitionState("ops", 0)
		return err == nil && len(st.AddingReplicas) == 0 && slices.Equal(st.Replicas, target) && kcluster.FullyReplicated("ops", 0)(c)
	}); err != nil {
		t.Fatal(err)
	}
	lrs, err := adm.ListPartitionReassignments(ctx, nil)
	if err != nil || len(lrs) != 0 {
		t.Fatalf("ListPartitionReassignments after the move: %v %+v", err, lrs)
	}
	els, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{"ops": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := els["ops"][0]; !errors.Is(r.Err, kerr.ElectionNotNeeded) {
		t.Fatalf("preferred election with the preferred leader leading: %+v", r)
	}

	aqs, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{{Type: "client-id", Name: kadm.StringPtr("billing")}},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 1048576}},
	}})
	if err != nil || aqs[0].Err != nil {
		t.Fatal(err, aqs)
	}
	dqs, err := adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "client-id", MatchName: kadm.StringPtr("billing")}})
	if err != nil || len(dqs) != 1 || dqs[0].Values[0].Key != "producer_byte_rate" || dqs[0].Values[0].Value != 1048576 {
		t.Fatalf("DescribeClientQuotas: %v %+v", err, dqs)
	}
}
