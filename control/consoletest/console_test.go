package consoletest

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
	"github.com/kcluster/kcluster/control"
)

// browser starts Chromium for t, or fails t with how to get one (skips it
// only with KCLUSTER_NO_BROWSER=1). The page's console messages and
// uncaught exceptions are logged if the test fails.
func browser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	bctx, cancel, err := Browser(ctx, 1400, 1000)
	if errors.Is(err, ErrNoBrowser) && os.Getenv(NoBrowserEnv) == "1" {
		t.Skipf("%s=1: %v", NoBrowserEnv, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logged []string
	done := make(chan struct{})
	msgs := chromedp.Console(bctx)
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			mu.Lock()
			logged = append(logged, fmt.Sprintf("page %s: %s", m.Type, m.Text))
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("the page's console:\n%s", strings.Join(logged, "\n"))
		}
	})
	return bctx
}

// The console in a real browser: kill the leader of an RF=3 partition with
// its broker card's button, and see the page show the new leader and the
// shrunken ISR, pushed by the event stream; then cut a link with its
// button and heal it with "heal all".
func TestConsoleKillLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bctx := browser(t, ctx)

	c := kcluster.Start(t, kcluster.Brokers(3))
	const topic = "orders"
	if err := c.CreateTopic(ctx, topic, 2, 3); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := range 20 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "order-%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitFor(ctx, kcluster.FullyReplicated(topic, 0)); err != nil {
		t.Fatal(err)
	}
	st, err := c.PartitionState(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(control.Handler(c))
	t.Cleanup(ts.Close)

	leader := strconv.Itoa(int(st.Leader))
	row := fmt.Sprintf(`tr.partition[data-topic=%q][data-partition="0"]`, topic)
	card := chromedp.CSS(`article.broker[data-broker="` + leader + `"]`)
	err = chromedp.Do(bctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#live.running`)),
		chromedp.WaitVisible(chromedp.CSS(row+`[data-isr-size="3"][data-leader="`+leader+`"]`)),
		// Offsets are refreshed on a timer; turn that off, so that the
		// page can learn of the failover from the event stream alone.
		chromedp.Click(chromedp.CSS(`#auto-refresh`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#auto-refresh:checked`)),
		chromedp.Click(card+` button[data-lever="kill"]`),
		chromedp.WaitVisible(chromedp.CSS(row+`[data-isr-size="2"]:not([data-leader="`+leader+`"]):not([data-leader="-1"])`)),
		chromedp.WaitVisible(card+`[data-state="down"]`),
	)
	if err != nil {
		t.Fatalf("console after killing broker %s: %v\n%s", leader, err, c)
	}
	newLeader, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(row+` td.leader`)))
	if err != nil {
		t.Fatal(err)
	}
	isr, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.CSS(row), "data-isr"))
	if err != nil {
		t.Fatal(err)
	}
	leaderEvents, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](
		`[...document.querySelectorAll('#event-list li[data-kind="leader changed"]')].map(li => li.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	now, err := c.PartitionState(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if newLeader != strconv.Itoa(int(now.Leader)) || isr.Value != join(now.ISR) || slices.Contains(now.ISR, st.Leader) {
		t.Fatalf("page shows leader %s, ISR %s; the cluster has leader %d, ISR %v", newLeader, isr.Value, now.Leader, now.ISR)
	}
	if !slices.ContainsFunc(leaderEvents, func(s string) bool { return strings.Contains(s, topic+"/0") }) {
		t.Fatalf("timeline has no leader change of %s/0: %q", topic, leaderEvents)
	}

	// A link between the two live brokers: cut with its button, healed with
	// "heal all".
	var alive []int32
	for _, b := range c.Brokers() {
		if b.Running {
			alive = append(alive, b.ID)
		}
	}
	link := chromedp.CSS(fmt.Sprintf(`.link[data-link="%d-%d"]`, alive[0], alive[1]))
	if err := chromedp.Do(bctx, chromedp.Click(link+` button[data-lever="cut"]`), chromedp.WaitVisible(link+`.cut`)); err != nil {
		t.Fatalf("cutting %s: %v", link, err)
	}
	cuts, err := chromedp.Run(bctx, chromedp.Evaluate[int](
		`fetch('api/faults').then(r => r.json()).then(f => f.filter(x => x.kind === 'cut').length)`, chromedp.EvalAwaitPromise))
	if err != nil || cuts != 1 {
		t.Fatalf("after the cut button: %d cut faults (%v), want 1", cuts, err)
	}
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#heal-all`)), chromedp.WaitVisible(link+`.ok`)); err != nil {
		t.Fatalf("healing %s: %v", link, err)
	}
}

func join(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}
