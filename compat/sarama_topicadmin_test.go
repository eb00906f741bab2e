package compat

import (
	"errors"
	"testing"

	"github.com/IBM/sarama"

	"github.com/kcluster/kcluster"
)

// TestSaramaTopicAdmin runs the topic operations through sarama's
// ClusterAdmin (its own request versions and encodings): configs,
// CreatePartitions, DeleteRecords, a reassignment, DescribeLogDirs,
// preferred election and client quotas.
func TestSaramaTopicAdmin(t *testing.T) {
	c := kcluster.Start(t, kcluster.Brokers(3))
	adm, err := sarama.NewClusterAdmin(c.Addrs(), saramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	retention := "3600000"
	if err := adm.CreateTopic("sops", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": &retention}}, false); err != nil {
		t.Fatal(err)
	}
	// Sarama sends DescribeConfigs to any broker and does not retry
	// UNKNOWN_TOPIC_OR_PARTITION; as with Kafka, the other brokers learn
	// of the topic a moment after the controller answered.
	if err := c.WaitFor(testContext(t), kcluster.LeaderElected("sops", 0)); err != nil {
		t.Fatal(err)
	}
	entries, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: "sops"})
	if err != nil {
		t.Fatal(err)
	}
	var got *sarama.ConfigEntry
	for i := range entries {
		if entries[i].Name == "retention.ms" {
			got = &entries[i]
		}
	}
	if got == nil || got.Value != retention || got.Source != sarama.SourceTopic {
		t.Fatalf("retention.ms described as %+v", got)
	}
	bad := "never"
	err = adm.IncrementalAlterConfig(sarama.TopicResource, "sops", map[string]sarama.IncrementalAlterConfigsEntry{
		"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &bad}}, false)
	if !errors.Is(err, sarama.ErrInvalidConfig) {
		t.Fatalf("retention.ms=never: %v, want INVALID_CONFIG", err)
	}
	compact := "compact"
	if err := adm.AlterConfig(sarama.TopicResource, "sops", map[string]*string{"cleanup.policy": &compact}, false); err != nil {
		t.Fatal(err)
	}
	if cfgs, _ := c.TopicConfigs("sops"); cfgs["cleanup.policy"].Value != "compact" || cfgs["retention.ms"].Source != "DEFAULT_CONFIG" {
		t.Fatalf("after AlterConfig (which replaces the set): %v %v", cfgs["cleanup.policy"], cfgs["retention.ms"])
	}
	if err := adm.CreatePartitions("sops", 3, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := adm.DeleteRecords("sops", map[int32]int64{0: 0}); err != nil {
		t.Fatal(err)
	}
	st, _ := c.PartitionState("sops", 0)
	target := []int32{st.Leader}
	for id := int32(1); id <= 3; id++ {
		if id != st.Leader {
			target = append(target, id)
		}
	}
	if err := adm.AlterPartitionReassignments("sops", [][]int32{target}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.ListPartitionReassignments("sops", []int32{0}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitFor(testContext(t), func(c *kcluster.Cluster) bool {
		st, err := c.PartitionState("sops", 0)
		return err == nil && len(st.AddingReplicas) == 0 && len(st.Replicas) == 3 && kcluster.FullyReplicated("sops", 0)(c)
	}); err != nil {
		t.Fatal(err)
	}
	dirs, err := adm.DescribeLogDirs([]int32{1, 2, 3})
	if err != nil || len(dirs) != 3 {
		t.Fatalf("DescribeLogDirs: %v %d brokers", err, len(dirs))
	}
	res, err := adm.ElectLeaders(sarama.PreferredElection, map[string][]int32{"sops": {0}})
	if err != nil {
		t.Fatal(err)
	}
	if r := res["sops"][0]; r == nil || !errors.Is(r.ErrorCode, sarama.ErrElectionNotNeeded) {
		t.Fatalf("preferred election: %+v", r)
	}
	entity := []sarama.QuotaEntityComponent{{EntityType: sarama.QuotaEntityClientID, MatchType: sarama.QuotaMatchExact, Name: "reports"}}
	if err := adm.AlterClientQuotas(entity, sarama.ClientQuotasOp{Key: "consumer_byte_rate", Value: 2048}, false); err != nil {
		t.Fatal(err)
	}
	qs, err := adm.DescribeClientQuotas([]sarama.QuotaFilterComponent{{EntityType: sarama.QuotaEntityClientID, MatchType: sarama.QuotaMatchExact, Match: "reports"}}, false)
	if err != nil || len(qs) != 1 || qs[0].Values["consumer_byte_rate"] != 2048 {
		t.Fatalf("DescribeClientQuotas: %v %+v", err, qs)
	}
}
