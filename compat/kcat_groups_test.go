package compat

import (
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/kcluster/kcluster"
)

// TestKcatGroup consumes a 3-partition topic with kcat's balanced consumer
// (librdkafka's classic group protocol, range/roundrobin assignors,
// auto-commit): it reads every record and, closing, commits the end
// offsets, which kadm then reads back from the group.
func TestKcatGroup(t *testing.T) {
	const topic, n = "kcatg", 300
	kcat := kcatPath(t)
	c := kcluster.Start(t, kcluster.Brokers(3))
	ctx := testContext(t)
	cl := newFranzClient(t, c.Addrs())
	adm := kadm.NewClient(cl)
	createTopicKadm(ctx, t, adm, topic, 3, 3)
	produceN(t, ctx, cl, topic, 0, n)
	bootstrap := strings.Join(c.Addrs(), ",")

	out := runKcat(ctx, t, kcat, "", "-b", bootstrap, "-G", "kg", topic, "-e", "-f", `%s\n`,
		"-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000")
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	slices.Sort(got)
	var want []string
	for i := range n {
		want = append(want, value(topic, i))
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("kcat -G read %d records, want the %d produced", len(got), len(want))
	}
	offs, err := adm.FetchOffsets(ctx, "kg")
	if err != nil {
		t.Fatalf("FetchOffsets: %v", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListEndOffsets: %v", err)
	}
	for p := int32(0); p < 3; p++ {
		e, _ := ends.Lookup(topic, p)
		o, ok := offs.Lookup(topic, p)
		if !ok || o.Err != nil || o.At != e.Offset {
			t.Errorf("partition %d: committed %+v (found %v), end offset %d", p, o, ok, e.Offset)
		}
	}
	st, err := c.Group("kg")
	if err != nil || st.State != "Empty" || st.ProtocolType != "consumer" {
		t.Fatalf("group after kcat left: %+v (%v)", st, err)
	}
}
