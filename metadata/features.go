package metadata

// Finalized features (KIP-584, KIP-778, KIP-1022), as Kafka keeps them:
// FeatureLevelRecords in the metadata log, written when the cluster is
// formatted (BootstrapFeatures, as kafka-storage format's bootstrap
// records) and by UpdateFeatures, which validates as Kafka's
// FeatureControlManager and QuorumFeatures do; every node replays them into
// State.Features. What this software supports of each feature is the table
// below; every node runs the same software, so the controller's own table
// is every registered broker's.

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
)

// The features kcluster knows, by Kafka's names.
const (
	FeatureMetadataVersion    = "metadata.version"
	FeatureKRaftVersion       = "kraft.version"
	FeatureTransactionVersion = "transaction.version"
	FeatureGroupVersion       = "group.version"
	FeatureELRVersion         = "eligible.leader.replicas.version"
	FeatureShareVersion       = "share.version"
)

// FeatureRange is the levels of a feature a node supports, both included.
type FeatureRange struct{ Min, Max int16 }

// supportedFeatures is what this software supports of each feature (Kafka's
// BrokerFeatures and QuorumFeatures). metadata.version spans Kafka 4.2's
// levels, 3.3-IV3 to 4.2-IV1. kraft.version stays 0: the quorum's voters
// are static (no KIP-853 AddRaftVoter/RemoveRaftVoter), as a Kafka cluster
// formatted with controller.quorum.voters. transaction.version 2 is KIP-890
// part 2 and group.version 1 the consumer rebalance protocol (KIP-848);
// eligible.leader.replicas.version 1 is KIP-966; share.version 1 turns
// share groups (KIP-932) on.
var supportedFeatures = map[string]FeatureRange{
	FeatureMetadataVersion:    {7, 29},
	FeatureKRaftVersion:       {0, 0},
	FeatureTransactionVersion: {0, 2},
	FeatureGroupVersion:       {0, 1},
	FeatureELRVersion:         {0, 1},
	FeatureShareVersion:       {0, 1},
}

// SupportedFeatures returns the features this software supports and their
// ranges: what ApiVersions advertises (Kafka advertises only the features
// whose highest level is above 0).
func SupportedFeatures() map[string]FeatureRange { return maps.Clone(supportedFeatures) }

// metadataVersions are Kafka's MetadataVersion levels this software
// supports: each level's name and whether it changed the metadata format
// (didMetadataChange), which decides whether a downgrade across it is safe.
var metadataVersions = map[int16]struct {
	name    string
	changed bool
}{
	7: {"3.3-IV3", true}, 8: {"3.4-IV0", true}, 9: {"3.5-IV0", false}, 10: {"3.5-IV1", false},
	11: {"3.5-IV2", true}, 12: {"3.6-IV0", false}, 13: {"3.6-IV1", true}, 14: {"3.6-IV2", true},
	15: {"3.7-IV0", true}, 16: {"3.7-IV1", false}, 17: {"3.7-IV2", true}, 18: {"3.7-IV3", false},
	19: {"3.7-IV4", false}, 20: {"3.8-IV0", false}, 21: {"3.9-IV0", false}, 22: {"4.0-IV0", false},
	23: {"4.0-IV1", true}, 24: {"4.0-IV2", false}, 25: {"4.0-IV3", false}, 26: {"4.1-IV0", false},
	27: {"4.1-IV1", false}, 28: {"4.2-IV0", false}, 29: {"4.2-IV1", false},
}

// MetadataVersionName returns a metadata.version level's name ("4.2-IV1"),
// or "" for a level this software does not know.
func MetadataVersionName(level int16) string { return metadataVersions[level].name }

// metadataChanged reports whether a level in (low, high] changed the
// metadata format (Kafka's MetadataVersion.checkIfMetadataChanged).
func metadataChanged(low, high int16) bool {
	for l := low + 1; l <= high; l++ {
		if metadataVersions[l].changed {
			return true
		}
	}
	return false
}

// featureDependencies are the levels of other features a feature level
// needs (Kafka's FeatureVersion.dependencies): ELR needs metadata.version
// 4.0-IV1, kraft.version 1 needs 3.9-IV0. transaction.version and
// group.version depend on nothing.
func featureDependencies(name string, level int16) map[string]int16 {
	switch {
	case name == FeatureELRVersion && level >= 1:
		return map[string]int16{FeatureMetadataVersion: 23}
	case name == FeatureKRaftVersion && level >= 1:
		return map[string]int16{FeatureMetadataVersion: 21}
	case name == FeatureShareVersion && level >= 1:
		return map[string]int16{FeatureMetadataVersion: 26} // 4.1-IV0
	}
	return nil
}

// checkDependencies is Kafka's Feature.validateVersion: a level above 0
// needs a known metadata.version, and every dependency at its level or
// above in levels.
func checkDependencies(name string, level int16, levels map[string]int16) string {
	if level >= 1 && levels[FeatureMetadataVersion] < supportedFeatures[FeatureMetadataVersion].Min {
		return fmt.Sprintf("%s could not be set to %d because it depends on metadata.version=%d (%s)", name, level,
			supportedFeatures[FeatureMetadataVersion].Min, MetadataVersionName(supportedFeatures[FeatureMetadataVersion].Min))
	}
	deps := featureDependencies(name, level)
	for _, dep := range slices.Sorted(maps.Keys(deps)) {
		if levels[dep] < deps[dep] {
			return fmt.Sprintf("%s could not be set to %d because it depends on %s level %d", name, level, dep, deps[dep])
		}
	}
	return ""
}

// ValidateFeatureLevels checks the levels a new cluster is formatted with,
// as kafka-storage format checks its --feature and --release-version:
// every name known, every level supported, metadata.version given, every
// dependency met.
func ValidateFeatureLevels(levels map[string]int16) error {
	if _, ok := levels[FeatureMetadataVersion]; !ok {
		return fmt.Errorf("metadata: no %s", FeatureMetadataVersion)
	}
	for _, name := range slices.Sorted(maps.Keys(levels)) {
		level := levels[name]
		r, ok := supportedFeatures[name]
		if !ok {
			return fmt.Errorf("metadata: unknown feature %q (known: %v)", name, slices.Sorted(maps.Keys(supportedFeatures)))
		}
		if level < r.Min || level > r.Max {
			return fmt.Errorf("metadata: %s=%d is outside the supported levels %d-%d", name, level, r.Min, r.Max)
		}
		if msg := checkDependencies(name, level, levels); msg != "" {
			return fmt.Errorf("metadata: %s", msg)
		}
	}
	return nil
}

// applyFeatureLevel replays a FeatureLevelRecord (FeatureControlManager's
// replay): level 0 removes a feature, and kraft.version records are
// skipped (KAFKA-18979; kraft.version is the quorum's, not the log's).
func (s *State) applyFeatureLevel(r *FeatureLevelRecord) error {
	if _, ok := supportedFeatures[r.Name]; !ok {
		return fmt.Errorf("metadata: FeatureLevelRecord for unknown feature %q", r.Name)
	}
	if r.Name == FeatureKRaftVersion {
		return nil
	}
	if s.Features == nil {
		s.Features = make(map[string]int16)
	}
	if r.FeatureLevel == 0 {
		if r.Name == FeatureMetadataVersion {
			return fmt.Errorf("metadata: FeatureLevelRecord sets metadata.version to 0")
		}
		delete(s.Features, r.Name)
	} else {
		s.Features[r.Name] = r.FeatureLevel
	}
	return nil
}

// FeatureLevel returns the finalized level of a feature, 0 when it is not
// finalized.
func (s *State) FeatureLevel(name string) int16 { return s.Features[name] }

// BootstrapFeatures writes the finalized levels a new cluster starts with
// (the bootstrap records of kafka-storage format): a FeatureLevelRecord for
// metadata.version, then one for each other feature above level 0, in one
// append. A log that already has a metadata.version keeps its own levels
// (a cluster is formatted once); it reports whether it wrote them. The
// caller validated the levels (ValidateFeatureLevels).
func (c *Controller) BootstrapFeatures(ctx context.Context, levels map[string]int16) (bool, error) {
	if err := c.lockActive(ctx); err != nil {
		return false, err
	}
	defer c.mu.Unlock()
	if c.mu.state.Features[FeatureMetadataVersion] != 0 {
		return false, nil
	}
	recs := []Record{&FeatureLevelRecord{Name: FeatureMetadataVersion, FeatureLevel: levels[FeatureMetadataVersion]}}
	for _, name := range slices.Sorted(maps.Keys(levels)) {
		if name != FeatureMetadataVersion && name != FeatureKRaftVersion && levels[name] > 0 {
			recs = append(recs, &FeatureLevelRecord{Name: name, FeatureLevel: levels[name]})
		}
	}
	return true, c.proposeLocked(ctx, recs...)
}

// UpgradeType is how UpdateFeatures may move a feature, by Kafka's codes
// (FeatureUpdate.UpgradeType).
type UpgradeType int8

// The upgrade types.
const (
	Upgrade         UpgradeType = 1
	SafeDowngrade   UpgradeType = 2
	UnsafeDowngrade UpgradeType = 3
)

// FeatureUpdate is one feature change of an UpdateFeatures request.
type FeatureUpdate struct {
	Name  string
	Level int16
	Type  UpgradeType
}

// FeatureUpdateError is UpdateFeatures' refusal: Kafka's error and its
// message.
type FeatureUpdateError struct {
	Err     *kerr.Error
	Message string
}

func (e *FeatureUpdateError) Error() string { return e.Message }
func (e *FeatureUpdateError) Unwrap() error { return e.Err }

func invalidUpdate(name string, level int16, format string, args ...any) error {
	return &FeatureUpdateError{kerr.InvalidUpdateVersion,
		fmt.Sprintf("Invalid update version %d for feature %s. %s", level, name, fmt.Sprintf(format, args...))}
}

// UpdateFeatures changes finalized levels, all of them or none (Kafka's
// FeatureControlManager.updateFeatures): the first update refused ends the
// request with INVALID_UPDATE_VERSION (a *FeatureUpdateError) and nothing
// is written. validateOnly checks without writing. A feature named twice
// keeps its last update.
func (c *Controller) UpdateFeatures(ctx context.Context, updates []FeatureUpdate, validateOnly bool) error {
	if err := c.lockActive(ctx); err != nil {
		return err
	}
	defer c.mu.Unlock()
	byName := map[string]FeatureUpdate{}
	var order []string
	for _, u := range updates {
		if _, seen := byName[u.Name]; !seen {
			order = append(order, u.Name)
		}
		byName[u.Name] = u
	}
	proposed := maps.Clone(c.mu.state.Features)
	if proposed == nil {
		proposed = map[string]int16{}
	}
	for _, u := range byName {
		proposed[u.Name] = u.Level
	}
	var recs []Record
	for _, name := range order {
		rec, err := c.updateFeatureLocked(byName[name], proposed)
		if err != nil {
			return err
		}
		if rec != nil {
			recs = append(recs, rec)
		}
	}
	if validateOnly || len(recs) == 0 {
		return nil
	}
	return c.proposeLocked(ctx, recs...)
}

// updateFeatureLocked validates one update against the current levels and
// the proposed ones (all of the request's updates applied), and returns
// its record (nil for kraft.version, which the log does not keep). A
// level set to what it is still gets its record, as in Kafka.
func (c *Controller) updateFeatureLocked(u FeatureUpdate, proposed map[string]int16) (Record, error) {
	if u.Type != Upgrade && u.Type != SafeDowngrade && u.Type != UnsafeDowngrade {
		return nil, invalidUpdate(u.Name, u.Level, "The controller does not support the given upgrade type.")
	}
	cur := c.mu.state.Features[u.Name]
	if u.Level < 0 {
		return nil, invalidUpdate(u.Name, u.Level, "A feature version cannot be less than 0.")
	}
	r, known := supportedFeatures[u.Name]
	if !known && u.Level != 0 {
		return nil, invalidUpdate(u.Name, u.Level, "Local controller does not support this feature.")
	}
	if known && (u.Level < r.Min || u.Level > r.Max) {
		if r.Max == 0 {
			return nil, invalidUpdate(u.Name, u.Level, "Local controller does not support this feature.")
		}
		return nil, invalidUpdate(u.Name, u.Level, "Local controller only supports versions %d-%d.", r.Min, r.Max)
	}
	switch {
	case u.Level < cur && u.Type == Upgrade:
		return nil, invalidUpdate(u.Name, u.Level, "Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade.")
	case u.Level > cur && u.Type != Upgrade:
		return nil, invalidUpdate(u.Name, u.Level, "Can't downgrade to a newer version.")
	}
	switch u.Name {
	case FeatureMetadataVersion:
		if u.Level < cur && metadataChanged(u.Level, cur) {
			reason := "Refusing to perform the requested downgrade because it might delete metadata information."
			if u.Type == UnsafeDowngrade {
				reason = "Unsafe metadata downgrade is not supported in this version."
			}
			return nil, &FeatureUpdateError{kerr.InvalidUpdateVersion,
				fmt.Sprintf("Unsupported metadata.version downgrade from %d to %d. %s", cur, u.Level, reason)}
		}
	case FeatureKRaftVersion:
		return nil, nil // only level 0 is supported, which it is
	default:
		if !known {
			return nil, invalidUpdate(u.Name, u.Level, "Feature %s not found.", u.Name)
		}
		if msg := checkDependencies(u.Name, u.Level, proposed); msg != "" {
			return nil, invalidUpdate(u.Name, u.Level, "%s", msg)
		}
	}
	return &FeatureLevelRecord{Name: u.Name, FeatureLevel: u.Level}, nil
}
