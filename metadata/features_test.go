package metadata

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// FeatureLevelRecord's bytes are the layout its Kafka schema
// (FeatureLevelRecord.json: api key 12, version 0, flexible from 0; Name
// string, FeatureLevel int16) defines under MetadataRecordSerde's frame.
func TestFeatureLevelRecordBytes(t *testing.T) {
	r := &FeatureLevelRecord{Name: "metadata.version", FeatureLevel: 29}
	want := []byte{
		0x01, // frame version 1 (unsigned varint)
		0x0c, // api key 12
		0x00, // record version 0
		0x11, // Name: compact string, length 16 + 1
		'm', 'e', 't', 'a', 'd', 'a', 't', 'a', '.', 'v', 'e', 'r', 's', 'i', 'o', 'n',
		0x00, 0x1d, // FeatureLevel: int16 29
		0x00, // no tagged fields
	}
	got := r.AppendTo(nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendTo:\n got %x\nwant %x", got, want)
	}

	var back FeatureLevelRecord
	if err := back.ReadFrom(want); err != nil || back != *r {
		t.Fatalf("ReadFrom: %+v, %v", back, err)
	}
	// A tagged field a later version might add is skipped; a negative
	// level survives the int16.
	tagged := append(append([]byte{}, want[:len(want)-3]...), 0xff, 0xfe, 0x01, 0x05, 0x02, 0xaa, 0xbb)
	if err := back.ReadFrom(tagged); err != nil || back.FeatureLevel != -2 {
		t.Fatalf("ReadFrom with a tagged field: %+v, %v", back, err)
	}
	for name, bad := range map[string][]byte{
		"frame version 0": append([]byte{0x00}, want[1:]...),
		"another api key": append([]byte{0x01, 0x0b}, want[2:]...),
		"version 1":       append([]byte{0x01, 0x0c, 0x01}, want[3:]...),
		"garbage after":   append(append([]byte{}, want...), 0x00),
		"truncated":       want[:len(want)-2],
	} {
		if err := back.ReadFrom(bad); err == nil {
			t.Errorf("ReadFrom(%s) succeeded", name)
		}
	}

	// Through the log's envelope and back.
	enc, err := EncodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeRecord(enc)
	if err != nil {
		t.Fatal(err)
	}
	if fl, ok := dec.(*FeatureLevelRecord); !ok || *fl != *r {
		t.Fatalf("DecodeRecord(%s) = %#v", enc, dec)
	}
}

func TestBootstrapFeatures(t *testing.T) {
	c, log := newTestController(t, 1)
	ctx := context.Background()
	levels := map[string]int16{FeatureMetadataVersion: 29, FeatureTransactionVersion: 0, FeatureGroupVersion: 1, FeatureELRVersion: 1, FeatureKRaftVersion: 0}
	if err := ValidateFeatureLevels(levels); err != nil {
		t.Fatal(err)
	}
	start := log.End()
	if wrote, err := c.BootstrapFeatures(ctx, levels); err != nil || !wrote {
		t.Fatalf("BootstrapFeatures: %v, %v", wrote, err)
	}
	es, err := log.Read(ctx, start, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Record.(*FeatureLevelRecord).Name)
	}
	// metadata.version first, as Kafka's bootstrap records; features at
	// level 0 and kraft.version are not written.
	if strings.Join(names, ",") != "metadata.version,eligible.leader.replicas.version,group.version" {
		t.Fatalf("bootstrap records: %v", names)
	}
	c.State(func(s *State) {
		if s.FeatureLevel(FeatureMetadataVersion) != 29 || s.FeatureLevel(FeatureGroupVersion) != 1 || s.FeatureLevel(FeatureTransactionVersion) != 0 ||
			len(s.Features) != 3 {
			t.Fatalf("features %v", s.Features)
		}
	})
	// Formatted once: a second bootstrap leaves the log's levels.
	if wrote, err := c.BootstrapFeatures(ctx, map[string]int16{FeatureMetadataVersion: 7}); err != nil || wrote {
		t.Fatalf("second BootstrapFeatures: %v, %v", wrote, err)
	}
	c.State(func(s *State) {
		if s.FeatureLevel(FeatureMetadataVersion) != 29 {
			t.Fatalf("metadata.version %d after a second bootstrap", s.FeatureLevel(FeatureMetadataVersion))
		}
	})

	for _, bad := range []map[string]int16{
		{FeatureGroupVersion: 1},                             // no metadata.version
		{FeatureMetadataVersion: 30},                         // beyond 4.2
		{FeatureMetadataVersion: 29, "streams.version": 1},   // unknown here
		{FeatureMetadataVersion: 29, FeatureKRaftVersion: 1}, // static quorum
		{FeatureMetadataVersion: 22, FeatureELRVersion: 1},   // ELR needs 4.0-IV1
		{FeatureMetadataVersion: 29, FeatureTransactionVersion: 3},
	} {
		if err := ValidateFeatureLevels(bad); err == nil {
			t.Errorf("ValidateFeatureLevels(%v) passed", bad)
		}
	}
}

func TestUpdateFeatures(t *testing.T) {
	c, log := newTestController(t, 1)
	ctx := context.Background()
	if _, err := c.BootstrapFeatures(ctx, map[string]int16{FeatureMetadataVersion: 29, FeatureGroupVersion: 1, FeatureELRVersion: 1}); err != nil {
		t.Fatal(err)
	}
	level := func(name string) (l int16) {
		c.State(func(s *State) { l = s.FeatureLevel(name) })
		return l
	}
	refused := func(updates []FeatureUpdate, validateOnly bool, want string) {
		t.Helper()
		end := log.End()
		err := c.UpdateFeatures(ctx, updates, validateOnly)
		var fe *FeatureUpdateError
		if !errors.As(err, &fe) || !errors.Is(err, kerr.InvalidUpdateVersion) || !strings.Contains(fe.Message, want) {
			t.Fatalf("UpdateFeatures(%+v): %v, want INVALID_UPDATE_VERSION with %q", updates, err, want)
		}
		if log.End() != end {
			t.Fatalf("UpdateFeatures(%+v) was refused but wrote records", updates)
		}
	}

	// An upgrade, and a safe downgrade back: one record each.
	if err := c.UpdateFeatures(ctx, []FeatureUpdate{{FeatureTransactionVersion, 2, Upgrade}}, false); err != nil || level(FeatureTransactionVersion) != 2 {
		t.Fatalf("upgrade transaction.version: %v, level %d", err, level(FeatureTransactionVersion))
	}
	if err := c.UpdateFeatures(ctx, []FeatureUpdate{{FeatureTransactionVersion, 0, SafeDowngrade}}, false); err != nil || level(FeatureTransactionVersion) != 0 {
		t.Fatalf("downgrade transaction.version: %v, level %d", err, level(FeatureTransactionVersion))
	}
	c.State(func(s *State) {
		if _, listed := s.Features[FeatureTransactionVersion]; listed {
			t.Fatalf("a feature at level 0 is still listed: %v", s.Features)
		}
	})
	// ValidateOnly writes nothing.
	end := log.End()
	if err := c.UpdateFeatures(ctx, []FeatureUpdate{{FeatureGroupVersion, 0, SafeDowngrade}}, true); err != nil || level(FeatureGroupVersion) != 1 || log.End() != end {
		t.Fatalf("validate-only downgrade: %v, level %d, log %d -> %d", err, level(FeatureGroupVersion), end, log.End())
	}

	refused([]FeatureUpdate{{FeatureGroupVersion, 0, Upgrade}}, false, "without setting the upgrade type")
	refused([]FeatureUpdate{{FeatureTransactionVersion, 1, SafeDowngrade}}, false, "Can't downgrade to a newer version")
	refused([]FeatureUpdate{{FeatureTransactionVersion, 3, Upgrade}}, false, "only supports versions 0-2")
	refused([]FeatureUpdate{{FeatureKRaftVersion, 1, Upgrade}}, false, "does not support this feature")
	refused([]FeatureUpdate{{"streams.version", 1, Upgrade}}, false, "does not support this feature")
	refused([]FeatureUpdate{{"streams.version", 0, Upgrade}}, false, "Feature streams.version not found")
	refused([]FeatureUpdate{{FeatureGroupVersion, -1, SafeDowngrade}}, false, "cannot be less than 0")
	refused([]FeatureUpdate{{FeatureGroupVersion, 1, 7}}, false, "upgrade type")
	// All or nothing: a valid update beside a refused one is not written.
	refused([]FeatureUpdate{{FeatureTransactionVersion, 1, Upgrade}, {FeatureGroupVersion, 5, Upgrade}}, false, "group.version")
	if level(FeatureTransactionVersion) != 0 {
		t.Fatal("a refused request wrote part of its updates")
	}

	// metadata.version: a downgrade across 4.0-IV1 (23), which changed
	// the metadata, is refused safe or unsafe; within 4.1-4.2 it is not.
	if err := c.UpdateFeatures(ctx, []FeatureUpdate{{FeatureMetadataVersion, 26, SafeDowngrade}}, false); err != nil || level(FeatureMetadataVersion) != 26 {
		t.Fatalf("downgrade metadata.version to 26: %v, level %d", err, level(FeatureMetadataVersion))
	}
	refused([]FeatureUpdate{{FeatureMetadataVersion, 22, SafeDowngrade}}, false, "might delete metadata information")
	refused([]FeatureUpdate{{FeatureMetadataVersion, 22, UnsafeDowngrade}}, false, "Unsafe metadata downgrade is not supported")
	refused([]FeatureUpdate{{FeatureMetadataVersion, 6, SafeDowngrade}}, false, "only supports versions 7-29")
	if err := c.UpdateFeatures(ctx, []FeatureUpdate{{FeatureMetadataVersion, 29, Upgrade}}, false); err != nil {
		t.Fatal(err)
	}

	// Dependencies are checked against the request's other updates: ELR
	// 1 with metadata.version below 4.0-IV1 is refused; turning ELR off
	// first lets the metadata.version change through validation.
	if err := c.UpdateFeatures(ctx, []FeatureUpdate{{FeatureELRVersion, 0, SafeDowngrade}}, false); err != nil {
		t.Fatal(err)
	}
	refused([]FeatureUpdate{{FeatureELRVersion, 1, Upgrade}, {FeatureMetadataVersion, 22, UnsafeDowngrade}}, true, "depends on metadata.version level 23")
}
