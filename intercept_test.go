package kcluster

import (
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kcluster/kcluster/wire"
)

func TestInterceptAnswersWithErrorWithoutHandling(t *testing.T) {
	c := Start(t, Brokers(1))
	createTopic(t, c, "ic", 2, 1)
	var seen int
	remove := c.Intercept(1, 0, func(i Intercepted) Action { // Produce
		seen++
		return Action{ErrorCode: kerr.NotLeaderForPartition.Code}
	})
	rp := produce(t, nil, c, c.Addrs()[0], "ic", 1, 1, makeBatch(1, "x"))
	if kerr.ErrorForCode(rp.ErrorCode) != kerr.NotLeaderForPartition || rp.Partition != 1 || rp.BaseOffset != -1 {
		t.Fatalf("intercepted produce: %+v", rp)
	}
	if st := partState(t, c, "ic", 1); st.HighWatermark != 0 || seen != 1 {
		t.Fatalf("intercepted produce was written (hw %d) or hook ran %d times", st.HighWatermark, seen)
	}
	remove()
	remove()
	if rp := produce(t, nil, c, c.Addrs()[0], "ic", 1, 1, makeBatch(1, "x")); rp.ErrorCode != 0 {
		t.Fatalf("after remove: %v", kerr.ErrorForCode(rp.ErrorCode))
	}
}

func TestInterceptOnceCloseDelayAndResponse(t *testing.T) {
	c := Start(t, Brokers(2))
	// Once: only the first Metadata request on broker 2 closes its
	// connection; broker 1 is not affected.
	c.InterceptOnce(2, 3, func(Intercepted) Action { return Action{Close: true} })
	if resp := do[*kmsg.MetadataResponse](t, dial(t, c.Addrs()[0]), kmsg.NewPtrMetadataRequest(), 12); len(resp.Brokers) != 2 {
		t.Fatal("broker 1 affected by a broker 2 hook")
	}
	conn, err := net.Dial("tcp", c.Addrs()[1])
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(12)
	conn.Write(appendRequest(req))
	expectClosed(t, conn, "intercepted metadata")
	conn.Close()
	if resp := do[*kmsg.MetadataResponse](t, dial(t, c.Addrs()[1]), kmsg.NewPtrMetadataRequest(), 12); len(resp.Brokers) != 2 {
		t.Fatal("the once hook fired twice")
	}
	// Delay then handle normally; a custom response replaces handling.
	c.InterceptOnce(0, 18, func(Intercepted) Action { return Action{Delay: 150 * time.Millisecond} })
	start := time.Now()
	if resp := do[*kmsg.ApiVersionsResponse](t, dial(t, c.Addrs()[0]), kmsg.NewPtrApiVersionsRequest(), 3); len(resp.ApiKeys) == 0 || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("delayed ApiVersions: %d keys after %v", len(resp.ApiKeys), time.Since(start))
	}
	c.Intercept(0, 3, func(Intercepted) Action {
		r := kmsg.NewPtrMetadataResponse()
		r.ControllerID = 77
		return Action{Response: r}
	})
	if resp := do[*kmsg.MetadataResponse](t, dial(t, c.Addrs()[0]), kmsg.NewPtrMetadataRequest(), 12); resp.ControllerID != 77 {
		t.Fatalf("custom response: controller %d", resp.ControllerID)
	}
}

// appendRequest frames req with correlation id 1.
func appendRequest(req kmsg.Request) []byte {
	return wire.AppendRequest(nil, 1, "t", req)
}
