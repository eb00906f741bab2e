package kcluster

import (
	"maps"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func apiVersions(t *testing.T, addr string, v int16) *kmsg.ApiVersionsResponse {
	t.Helper()
	req := kmsg.NewPtrApiVersionsRequest()
	req.ClientSoftwareName, req.ClientSoftwareVersion = "kcluster-test", "1.0"
	resp := do[*kmsg.ApiVersionsResponse](t, dial(t, addr), req, v)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		t.Fatalf("ApiVersions v%d: %v", v, err)
	}
	return resp
}

func finalized(resp *kmsg.ApiVersionsResponse) map[string]int16 {
	out := map[string]int16{}
	for _, f := range resp.FinalizedFeatures {
		out[f.Name] = f.MaxVersionLevel
		if f.MinVersionLevel != f.MaxVersionLevel {
			out[f.Name] = -100 // Kafka sets both to the level
		}
	}
	return out
}

// A new cluster is formatted with the default levels (Kafka 4.2's),
// which ApiVersions v3+ reports with the features this software supports;
// v0-v2 carry none.
func TestApiVersionsFeatures(t *testing.T) {
	c := Start(t, Brokers(2))
	want := map[string]int16{"metadata.version": 29, "transaction.version": 2, "group.version": 1, "eligible.leader.replicas.version": 1, "share.version": 1}
	if got := c.FinalizedFeatures(); !maps.Equal(got, want) {
		t.Fatalf("FinalizedFeatures() = %v, want %v", got, want)
	}
	for _, addr := range c.Addrs() {
		resp := apiVersions(t, addr, 4)
		if got := finalized(resp); !maps.Equal(got, want) {
			t.Errorf("%s: finalized %v, want %v", addr, got, want)
		}
		if resp.FinalizedFeaturesEpoch < 0 {
			t.Errorf("%s: finalized features epoch %d", addr, resp.FinalizedFeaturesEpoch)
		}
		supported := map[string][2]int16{}
		for _, f := range resp.SupportedFeatures {
			supported[f.Name] = [2]int16{f.MinVersion, f.MaxVersion}
		}
		wantSup := map[string][2]int16{"metadata.version": {7, 29}, "transaction.version": {0, 2}, "group.version": {0, 1}, "eligible.leader.replicas.version": {0, 1}, "share.version": {0, 1}}
		if !maps.Equal(supported, wantSup) {
			t.Errorf("%s: supported %v, want %v (kraft.version, at most 0, is not advertised)", addr, supported, wantSup)
		}
		if old := apiVersions(t, addr, 2); len(old.SupportedFeatures)+len(old.FinalizedFeatures) != 0 || old.FinalizedFeaturesEpoch != -1 {
			t.Errorf("%s: ApiVersions v2 carries features: %+v", addr, old)
		}
	}
}

// Feature picks the levels at start, as kafka-storage format --feature; a
// 3.x-like cluster (group.version 0) refuses the consumer group protocol
// as Kafka does with the feature off; invalid levels fail New.
func TestFeatureOption(t *testing.T) {
	c := Start(t, Brokers(1), Feature("group.version", 0), Feature("transaction.version", 2), Feature("metadata.version", 21), Feature("eligible.leader.replicas.version", 0), Feature("share.version", 0))
	want := map[string]int16{"metadata.version": 21, "transaction.version": 2}
	if got := finalized(apiVersions(t, c.Addrs()[0], 4)); !maps.Equal(got, want) {
		t.Fatalf("finalized %v, want %v", got, want)
	}
	hb := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	hb.Group, hb.MemberID, hb.MemberEpoch, hb.SubscribedTopicNames, hb.RebalanceTimeoutMillis = "g", "m1", 0, []string{"t"}, 5000
	if resp := do[*kmsg.ConsumerGroupHeartbeatResponse](t, dial(t, c.Addrs()[0]), hb, 1); resp.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("ConsumerGroupHeartbeat with group.version 0: %v, want UNSUPPORTED_VERSION", kerr.ErrorForCode(resp.ErrorCode))
	}
	for _, bad := range [][]Option{
		{Feature("transaction.version", 3)},
		{Feature("kraft.version", 1)},
		{Feature("share.version", 2)},
		{Feature("metadata.version", 22), Feature("eligible.leader.replicas.version", 1)}, // ELR 1 needs 4.0-IV1
	} {
		if c, err := New(append([]Option{Brokers(1)}, bad...)...); err == nil {
			c.Close()
			t.Errorf("New with %v succeeded", bad)
		} else if !strings.Contains(err.Error(), "Feature") {
			t.Errorf("New: %v, want an error naming Feature", err)
		}
	}
}

func updateFeatures(t *testing.T, addr string, v int16, validateOnly bool, ups ...kmsg.UpdateFeaturesRequestFeatureUpdate) *kmsg.UpdateFeaturesResponse {
	t.Helper()
	req := kmsg.NewPtrUpdateFeaturesRequest()
	req.TimeoutMillis = 10000
	req.FeatureUpdates, req.ValidateOnly = ups, validateOnly
	return do[*kmsg.UpdateFeaturesResponse](t, dial(t, addr), req, v)
}

func featureUpdate(name string, level int16, typ metadata.UpgradeType) kmsg.UpdateFeaturesRequestFeatureUpdate {
	u := kmsg.NewUpdateFeaturesRequestFeatureUpdate()
	u.Feature, u.MaxVersionLevel, u.UpgradeType = name, level, int8(typ)
	u.AllowDowngrade = typ != metadata.Upgrade
	return u
}

// UpdateFeatures is forwarded to the controller, validated as Kafka's
// FeatureControlManager, written to the metadata log, and seen in the
// answering broker's next ApiVersions; every version answers as Kafka's
// (v0-v1 with per-feature results on success, v2 top-level only).
func TestUpdateFeatures(t *testing.T) {
	c := Start(t, Brokers(3), Feature("transaction.version", 0))
	addr := c.Addrs()[1]
	before := apiVersions(t, addr, 4).FinalizedFeaturesEpoch

	resp := updateFeatures(t, addr, 1, false, featureUpdate("transaction.version", 2, metadata.Upgrade))
	if resp.ErrorCode != 0 || len(resp.Results) != 1 || resp.Results[0].Feature != "transaction.version" || resp.Results[0].ErrorCode != 0 {
		t.Fatalf("v1 upgrade: %+v", resp)
	}
	av := apiVersions(t, addr, 4)
	if finalized(av)["transaction.version"] != 2 || av.FinalizedFeaturesEpoch <= before {
		t.Fatalf("after the upgrade: finalized %v epoch %d (was %d)", finalized(av), av.FinalizedFeaturesEpoch, before)
	}
	if c.FinalizedFeatures()["transaction.version"] != 2 {
		t.Fatalf("FinalizedFeatures() = %v", c.FinalizedFeatures())
	}

	// v0: AllowDowngrade is a safe downgrade.
	if resp := updateFeatures(t, addr, 0, false, featureUpdate("transaction.version", 1, metadata.SafeDowngrade)); resp.ErrorCode != 0 || len(resp.Results) != 1 {
		t.Fatalf("v0 downgrade: %+v", resp)
	}
	// v2: no results; validate-only changes nothing.
	resp = updateFeatures(t, addr, 2, true, featureUpdate("transaction.version", 0, metadata.SafeDowngrade))
	if resp.ErrorCode != 0 || len(resp.Results) != 0 || finalized(apiVersions(t, addr, 4))["transaction.version"] != 1 {
		t.Fatalf("v2 validate-only: %+v, finalized %v", resp, finalized(apiVersions(t, addr, 4)))
	}

	for _, tc := range []struct {
		up   kmsg.UpdateFeaturesRequestFeatureUpdate
		want string
	}{
		{featureUpdate("group.version", 0, metadata.Upgrade), "without setting the upgrade type"},
		{featureUpdate("transaction.version", 3, metadata.Upgrade), "only supports versions 0-2"},
		{featureUpdate("metadata.version", 22, metadata.SafeDowngrade), "might delete metadata information"},
		{featureUpdate("kraft.version", 1, metadata.Upgrade), "does not support this feature"},
	} {
		resp := updateFeatures(t, addr, 2, false, tc.up)
		if resp.ErrorCode != kerr.InvalidUpdateVersion.Code || resp.ErrorMessage == nil ||
			!strings.HasPrefix(*resp.ErrorMessage, "The update failed for all features since the following feature had an error: ") ||
			!strings.Contains(*resp.ErrorMessage, tc.want) {
			t.Errorf("UpdateFeatures %s=%d: %v %v, want INVALID_UPDATE_VERSION with %q", tc.up.Feature, tc.up.MaxVersionLevel,
				kerr.ErrorForCode(resp.ErrorCode), resp.ErrorMessage, tc.want)
		}
	}
	// Every broker applies the change.
	waitFor(t, c, "every broker to have transaction.version 1", func(c *Cluster) bool {
		for _, b := range c.running() {
			if b.featureLevel("transaction.version") != 1 {
				return false
			}
		}
		return true
	})
}

// A cluster restarted from its Dir keeps the levels its log has, not the
// options it is restarted with (a cluster is formatted once).
func TestFeaturesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Brokers(1), Dir(dir), Feature("group.version", 0), Feature("transaction.version", 0), Feature("share.version", 0))
	if err != nil {
		t.Fatal(err)
	}
	if resp := updateFeatures(t, c.Addrs()[0], 2, false, featureUpdate("transaction.version", 1, metadata.Upgrade)); resp.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(resp.ErrorCode))
	}
	c.Close()
	c, err = New(Brokers(1), Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := map[string]int16{"metadata.version": 29, "transaction.version": 1, "eligible.leader.replicas.version": 1}
	if got := finalized(apiVersions(t, c.Addrs()[0], 4)); !maps.Equal(got, want) {
		t.Fatalf("after the restart: %v, want %v", got, want)
	}
}
