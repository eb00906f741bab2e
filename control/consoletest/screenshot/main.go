// Command screenshot makes the README's picture of kcluster's web console:
// it starts a 3-broker cluster with two RF=3 topics, a consumer group with
// lag and an open transaction, kills a broker and cuts a link through the
// control API, opens the console in headless Chromium and writes a PNG of
// the whole page.
//
//	cd control/consoletest && go run ./screenshot -o ../../docs/console.png
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kcluster/kcluster"
	"github.com/kcluster/kcluster/control"
	"github.com/kcluster/kcluster/control/consoletest"
)

func main() {
	out := flag.String("o", "console.png", "where to write the PNG")
	width := flag.Int("width", 1400, "the window's width in pixels")
	flag.Parse()
	if err := run(*out, *width); err != nil {
		log.Fatal(err)
	}
}

func run(out string, width int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := kcluster.New(kcluster.Brokers(3))
	if err != nil {
		return err
	}
	defer c.Close()
	for _, t := range []struct {
		name string
		n    int32
	}{{"orders", 3}, {"payments", 2}} {
		if err := c.CreateTopic(ctx, t.name, t.n, 3); err != nil {
			return err
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		return err
	}
	defer cl.Close()
	produce := func(topic string, n int) error {
		for i := range n {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%s-%d", topic, i)}).FirstErr(); err != nil {
				return err
			}
		}
		return nil
	}
	if err := produce("orders", 60); err != nil {
		return err
	}
	if err := produce("payments", 20); err != nil {
		return err
	}

	// A consumer group that has read and committed everything so far, and
	// then falls behind.
	g, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumeTopics("orders"), kgo.ConsumerGroup("billing"),
		kgo.ClientID("billing-1"), kgo.DisableAutoCommit(), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer g.Close()
	for seen := 0; seen < 60; {
		fs := g.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return err
		}
		seen += fs.NumRecords()
	}
	if err := g.CommitUncommittedOffsets(ctx); err != nil {
		return err
	}
	if err := produce("orders", 12); err != nil {
		return err
	}

	// An open transaction holds the last stable offset of payments back.
	tx, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.TransactionalID("payments-tx"))
	if err != nil {
		return err
	}
	defer tx.Close()
	if err := tx.BeginTransaction(); err != nil {
		return err
	}
	if err := tx.ProduceSync(ctx, &kgo.Record{Topic: "payments", Partition: 0, Value: []byte("pending")}).FirstErr(); err != nil {
		return err
	}

	ts := httptest.NewServer(control.Handler(c))
	defer ts.Close()
	post := func(path, body string) error {
		resp, err := http.Post(ts.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("POST %s: %s", path, resp.Status)
		}
		return nil
	}
	if err := post("/api/brokers/3/kill", ""); err != nil {
		return err
	}
	if err := c.WaitFor(ctx, kcluster.ISRSize("orders", 0, 2)); err != nil {
		return err
	}
	if err := post("/api/network/cut", `{"a": 1, "b": 3}`); err != nil {
		return err
	}

	bctx, closeBrowser, err := consoletest.Browser(ctx, width, 900)
	if err != nil {
		return err
	}
	defer closeBrowser()
	if err := chromedp.Do(bctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#live.running`)),
		chromedp.WaitVisible(chromedp.CSS(`tr.partition[data-topic="orders"][data-isr-size="2"]`)),
		chromedp.WaitVisible(chromedp.CSS(`article.group[data-group="billing"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr.open[data-transaction="payments-tx"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.link.cut`)),
	); err != nil {
		return err
	}
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s (%d bytes)", out, len(png))
	return nil
}
