package kcluster

// UpdateFeatures v0-v2 (KIP-584; KIP-778 upgrade types and ValidateOnly
// from v1, where v0 has AllowDowngrade; v2 answers with the top-level
// error only, without per-feature results). Brokers forward it to the
// controller, as Kafka's brokers do, which validates it as Kafka's
// FeatureControlManager (metadata/features.go: all updates or none) and
// writes FeatureLevelRecords; the broker answers once it has applied
// them, so its next ApiVersions answer shows them.

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

func init() {
	reg(0, 2, (*broker).forwardUpdateFeatures)
	regCtrl(0, 2, (*controllerNode).handleUpdateFeatures)
}

// forwardUpdateFeatures sends the request to the controller and, when it
// changed something, catches up with the controller's log before it
// answers.
func (b *broker) forwardUpdateFeatures(req *kmsg.UpdateFeaturesRequest, r *request) (*kmsg.UpdateFeaturesResponse, error) {
	ctx, cancel := context.WithTimeout(b.ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	kresp, err := b.ac.request(ctx, req)
	if err != nil {
		resp := req.ResponseKind().(*kmsg.UpdateFeaturesResponse)
		resp.ErrorCode = kerr.NotController.Code
		return resp, nil
	}
	resp := kresp.(*kmsg.UpdateFeaturesResponse)
	if resp.ErrorCode == 0 && !req.ValidateOnly && len(req.FeatureUpdates) > 0 {
		b.syncMetadata(ctx)
	}
	return resp, nil
}

// featureUpdates converts the request's updates: v0's AllowDowngrade is a
// safe downgrade, as Kafka reads it.
func featureUpdates(req *kmsg.UpdateFeaturesRequest) []metadata.FeatureUpdate {
	out := make([]metadata.FeatureUpdate, 0, len(req.FeatureUpdates))
	for _, u := range req.FeatureUpdates {
		typ := metadata.UpgradeType(u.UpgradeType)
		if req.Version == 0 {
			typ = metadata.Upgrade
			if u.AllowDowngrade {
				typ = metadata.SafeDowngrade
			}
		}
		out = append(out, metadata.FeatureUpdate{Name: u.Feature, Level: u.MaxVersionLevel, Type: typ})
	}
	return out
}

func (n *controllerNode) handleUpdateFeatures(req *kmsg.UpdateFeaturesRequest) (*kmsg.UpdateFeaturesResponse, error) {
	resp := req.ResponseKind().(*kmsg.UpdateFeaturesResponse)
	ctx, cancel := context.WithTimeout(n.ctx, requestTimeout(req.TimeoutMillis))
	defer cancel()
	updates := featureUpdates(req)
	err := n.ctrl.UpdateFeatures(ctx, updates, req.Version >= 1 && req.ValidateOnly)
	var fe *metadata.FeatureUpdateError
	switch {
	case err == nil:
		if req.Version <= 1 {
			seen := map[string]bool{}
			for _, u := range updates {
				if !seen[u.Name] {
					seen[u.Name] = true
					rr := kmsg.NewUpdateFeaturesResponseResult()
					rr.Feature = u.Name
					resp.Results = append(resp.Results, rr)
				}
			}
		}
	case errors.As(err, &fe):
		resp.ErrorCode = fe.Err.Code
		msg := "The update failed for all features since the following feature had an error: " + fe.Message
		resp.ErrorMessage = &msg
	default:
		resp.ErrorCode = errCode(err)
		if !errors.Is(err, kerr.NotController) {
			msg := err.Error()
			resp.ErrorMessage = &msg
		}
	}
	return resp, nil
}
