package compat

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-metrics (used by sarama) starts one process-wide meter
		// arbiter goroutine on the first meter and never stops it; it is
		// not per client and not per cluster.
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
	)
}

// testTimeout bounds each test's client work; every test aims to finish in a
// few seconds, this only keeps a hung broker from hanging the run.
const testTimeout = 30 * time.Second

// testContext returns a context that ends at testTimeout or when the test
// ends, whichever comes first.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// value is the payload of record i of a test topic: unique and checkable.
func value(topic string, i int) string { return fmt.Sprintf("%s-value-%05d", topic, i) }

// key is the key of record i.
func key(i int) string { return fmt.Sprintf("key-%05d", i) }
