package wire

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DecodeRequest decodes a request body with kmsg at the header's version.
// Strings are copied; byte-slice fields (record batches, group metadata)
// alias body: callers must not keep them after body is reused.
func DecodeRequest(h RequestHeader, body []byte) (kmsg.Request, error) {
	req := kmsg.RequestForKey(h.Key)
	if req == nil {
		return nil, fmt.Errorf("wire: unknown api key %d", h.Key)
	}
	if h.Version < 0 || h.Version > req.MaxVersion() {
		return nil, fmt.Errorf("wire: %s v%d is beyond what kmsg knows", kmsg.NameForKey(h.Key), h.Version)
	}
	req.SetVersion(h.Version)
	if err := req.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("wire: decoding %s v%d: %w", kmsg.NameForKey(h.Key), h.Version, err)
	}
	return req, nil
}
