package kcluster

import (
	"errors"
	"maps"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/metadata"
)

// handler serves one API key in a version range.
type handler struct {
	min, max int16
	fn       func(*broker, *request) (kmsg.Response, error)
	// advMin, when below min, is the lowest version ApiVersions
	// advertises (advertiseFrom); versions below min are refused all
	// the same.
	advMin int16
}

func (h handler) advertisedMin() int16 { return min(h.min, h.advMin) }

// handlers is the registry of served API keys, filled once by each api_*.go
// file's init through reg. ApiVersions is built from it, so the versions a
// broker advertises are exactly the versions it dispatches.
var handlers = map[int16]handler{}

// reg registers the handler for req's key. It is called only from init
// functions; the map is never written after package initialization.
func reg[Req kmsg.Request, Resp kmsg.Response](min, max int16, fn func(*broker, Req, *request) (Resp, error)) {
	var zero Req
	key := zero.Key()
	if _, dup := handlers[key]; dup {
		panic("kcluster: api key registered twice: " + kmsg.NameForKey(key))
	}
	handlers[key] = handler{min: min, max: max, advMin: min, fn: func(b *broker, r *request) (kmsg.Response, error) {
		resp, err := fn(b, r.kreq.(Req), r)
		if err != nil {
			return nil, err
		}
		resp.SetVersion(r.hdr.Version)
		return resp, nil
	}}
}

// advertiseFrom makes ApiVersions advertise key from version v, below the
// versions its handler serves, which are still refused when they arrive as
// every unsupported version is: the connection closes. Kafka 4 does this
// for Produce v0-v2 (KAFKA-18659): librdkafka before 2.11.1 turns on gzip,
// snappy and lz4 only when Produce v0 is advertised. Called from init
// functions only, after the key's reg.
func advertiseFrom(key, v int16) {
	h, ok := handlers[key]
	if !ok || v > h.min {
		panic("kcluster: advertiseFrom: key not registered or version not below its range: " + kmsg.NameForKey(key))
	}
	h.advMin = v
	handlers[key] = h
}

// errNoResponse is returned by a handler whose request gets no response
// (Produce with acks=0).
var errNoResponse = errors.New("no response")

const apiVersionsKey = 18

// ApiVersions v0-v4 (KIP-35; KIP-511 client software name and version;
// KIP-584 features from v3: the features this software supports, and the
// levels finalized in the metadata log with the broker's applied metadata
// offset as their epoch, as Kafka's KRaftMetadataCache.features). Kafka 4.2
// serves v4; v5 (KIP-1242) is Kafka 4.4's.
func init() { reg(0, 4, (*broker).handleApiVersions) }

func apiKeys() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(handlers))
	for k, h := range handlers {
		keys = append(keys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: h.advertisedMin(), MaxVersion: h.max})
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ApiKey < keys[j].ApiKey })
	return keys
}

// supportedFeatures is ApiVersions' list of the features this software
// supports, by name, those with a level above 0 (as Kafka's
// BrokerFeatures).
func supportedFeatures() []kmsg.ApiVersionsResponseSupportedFeature {
	supported := metadata.SupportedFeatures()
	var fs []kmsg.ApiVersionsResponseSupportedFeature
	for _, name := range slices.Sorted(maps.Keys(supported)) {
		if rg := supported[name]; rg.Max > 0 {
			fs = append(fs, kmsg.ApiVersionsResponseSupportedFeature{Name: name, MinVersion: rg.Min, MaxVersion: rg.Max})
		}
	}
	return fs
}

func (b *broker) handleApiVersions(req *kmsg.ApiVersionsRequest, r *request) (*kmsg.ApiVersionsResponse, error) {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = slices.Clone(b.apiKeys) // an interceptor may change the response
	resp.FinalizedFeaturesEpoch = -1
	if req.Version < 3 {
		return resp, nil
	}
	resp.SupportedFeatures = slices.Clone(b.supportedFeatures)
	b.mu.RLock()
	st := b.mu.state
	if len(st.Features) > 0 {
		resp.FinalizedFeaturesEpoch = st.Offset
		for _, name := range slices.Sorted(maps.Keys(st.Features)) {
			level := st.Features[name]
			resp.FinalizedFeatures = append(resp.FinalizedFeatures, kmsg.ApiVersionsResponseFinalizedFeature{Name: name, MinVersionLevel: level, MaxVersionLevel: level})
		}
	}
	b.mu.RUnlock()
	return resp, nil
}

// featureLevel returns a feature's finalized level in this broker's
// metadata (0 when it is not finalized).
func (b *broker) featureLevel(name string) int16 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.mu.state.FeatureLevel(name)
}

// apiVersionsUnsupported answers an ApiVersions request of a version newer
// than ours: UNSUPPORTED_VERSION, encoded as v0 so the client can read it
// whatever it sent, with ApiVersions' own range only, as Kafka's
// ApiVersionsRequest.getErrorResponse (KIP-511): the client retries at the
// highest version we serve and learns the rest, finalized features
// included, from that answer.
func (b *broker) apiVersionsUnsupported() kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	for _, k := range b.apiKeys {
		if k.ApiKey == apiVersionsKey {
			resp.ApiKeys = append(resp.ApiKeys, k)
		}
	}
	return resp
}
