package consoletest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/chromedp/chromedp"
)

// NoBrowserEnv, set to 1, skips the browser tests where no Chromium is
// installed; without it they fail, so that CI cannot pass by not running
// them.
const NoBrowserEnv = "KCLUSTER_NO_BROWSER"

// ErrNoBrowser is returned by Browser when no Chromium is installed.
var ErrNoBrowser = errors.New("no chromium found: apt-get install chromium (.ci/run does), or set " + NoBrowserEnv + "=1 to skip the browser tests")

// Chromium returns the path of the Chromium to drive: $KCLUSTER_CHROMIUM,
// else Debian's chromium on the PATH.
func Chromium() (string, error) {
	if p := os.Getenv("KCLUSTER_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoBrowser
}

// Browser starts a headless Chromium with a width×height window and
// returns a context for chromedp.Run in its first tab; cancel closes the
// browser and waits for it to exit.
func Browser(ctx context.Context, width, height int) (context.Context, context.CancelFunc, error) {
	path, err := Chromium()
	if err != nil {
		return nil, nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelTab := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		cancelTab()
		cancelAlloc()
		return nil, nil, fmt.Errorf("starting %s: %w", path, err)
	}
	return bctx, func() { cancelTab(); cancelAlloc() }, nil
}
