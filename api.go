package kcluster

import (
	"errors"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handler serves one API key in a version range.
type handler struct {
	min, max int16
	fn       func(*broker, *request) (kmsg.Response, error)
}

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
	handlers[key] = handler{min: min, max: max, fn: func(b *broker, r *request) (kmsg.Response, error) {
		resp, err := fn(b, r.kreq.(Req), r)
		if err != nil {
			return nil, err
		}
		resp.SetVersion(r.hdr.Version)
		return resp, nil
	}}
}

// errNoResponse is returned by a handler whose request gets no response
// (Produce with acks=0).
var errNoResponse = errors.New("no response")

const apiVersionsKey = 18

// ApiVersions v0-v4 (KIP-35, KIP-511 client software name/version, KIP-584
// features).
func init() { reg(0, 4, (*broker).handleApiVersions) }

func apiKeys() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(handlers))
	for k, h := range handlers {
		keys = append(keys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: h.min, MaxVersion: h.max})
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ApiKey < keys[j].ApiKey })
	return keys
}

func (b *broker) handleApiVersions(req *kmsg.ApiVersionsRequest, r *request) (*kmsg.ApiVersionsResponse, error) {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = apiKeys()
	resp.FinalizedFeaturesEpoch = -1
	return resp, nil
}

// apiVersionsUnsupported answers an ApiVersions request of a version newer
// than ours: UNSUPPORTED_VERSION with our ranges, encoded as v0 so the
// client can read it whatever it sent (KIP-511).
func (b *broker) apiVersionsUnsupported() kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = apiKeys()
	return resp
}
