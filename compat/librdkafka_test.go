package compat

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kcluster/kcluster"
)

// buildRdkafkaProgram compiles a C program of testdata against librdkafka
// (librdkafka-dev; CI installs it), failing the test, not skipping it,
// when it cannot: a silent skip would hide that the path went untested.
// KCLUSTER_LIBRDKAFKA_PREFIX names another librdkafka's install prefix
// to build against (a newer one than Debian's, built from source).
func buildRdkafkaProgram(t *testing.T, name string) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatalf("gcc not found (%v): install gcc and librdkafka-dev (CI does); this test does not skip without them", err)
	}
	src, err := filepath.Abs(filepath.Join("testdata", name+".c"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), name)
	args := []string{"-Wall", "-o", bin, src}
	if prefix := os.Getenv("KCLUSTER_LIBRDKAFKA_PREFIX"); prefix != "" {
		// Another librdkafka, installed under prefix (make install).
		args = append(args, "-I"+filepath.Join(prefix, "include"), "-L"+filepath.Join(prefix, "lib"), "-Wl,-rpath,"+filepath.Join(prefix, "lib"))
	}
	args = append(args, "-lrdkafka")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("compiling %s against librdkafka (apt-get install -y librdkafka-dev): %v\n%s", name, err, out)
	}
	return bin
}

// TestLibrdkafkaPerRecordErrors produces one batch with librdkafka to a
// compacted topic, two of its six records without a key, and checks what
// librdkafka reports, as against Kafka 4: the batch is refused whole and
// nothing of it is written. librdkafka 2.4.0 and later produce with v8+
// and read the refused records (KIP-467, its commit 8532a0ebe): those two
// fail INVALID_RECORD, the other four _INVALID_DIFFERENT_RECORD (checked
// with 2.12.0 built from source, KCLUSTER_LIBRDKAFKA_PREFIX). Older ones (Debian 12 has 2.0.2) produce with
// v7, which has no record errors: all six fail INVALID_RECORD.
func TestLibrdkafkaPerRecordErrors(t *testing.T) {
	const topic = "rdk-record-errors"
	bin := buildRdkafkaProgram(t, "rdkafka_record_errors")
	c := kcluster.Start(t, kcluster.Brokers(3))
	ctx := testContext(t)
	cl := newFranzClient(t, c.Addrs())
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("creating %s: %v %v", topic, err, resp.Err)
	}
	run, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(run, bin, strings.Join(c.Addrs(), ","), topic, "6", "1", "4")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s\n%s", bin, err, out, firstLines(stderr.String(), 20))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	version, err := strconv.ParseUint(lines[0], 16, 32)
	if err != nil {
		t.Fatalf("librdkafka version line %q: %v", lines[0], err)
	}
	reports := lines[1:]
	slices.Sort(reports)
	if len(reports) != 6 {
		t.Fatalf("delivery reports %q, want six", reports)
	}
	var names []string
	for _, r := range reports {
		i, rest, _ := strings.Cut(r, " ")
		name, text, _ := strings.Cut(rest, " ")
		names = append(names, i+" "+name)
		refused := i == "1" || i == "4"
		switch {
		case version < 0x020400ff: // Produce v7: the partition's error for all
			if name != "INVALID_RECORD" {
				t.Errorf("librdkafka %x, message %s: %s %q, want INVALID_RECORD", version, i, name, text)
			}
		case refused:
			// The record's own text is not checked: librdkafka
			// (2.12.0) hands it to the delivery report from the
			// response it has freed by then.
			if name != "INVALID_RECORD" {
				t.Errorf("librdkafka %x, keyless message %s: %s, want INVALID_RECORD", version, i, name)
			}
		default:
			if name != "_INVALID_DIFFERENT_RECORD" {
				t.Errorf("librdkafka %x, keyed message %s: %s %q, want _INVALID_DIFFERENT_RECORD", version, i, name, text)
			}
		}
	}
	t.Logf("librdkafka %x: %q", version, names)
	if st, err := c.PartitionState(topic, 0); err != nil || st.HighWatermark != 0 {
		t.Fatalf("the refused batch was written: %+v %v", st, err)
	}
}
