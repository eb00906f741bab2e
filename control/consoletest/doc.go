// Package consoletest tests kcluster's web console (package control's
// GET /) in a real browser: headless Chromium, driven with chromedp. It is
// a module of its own so that chromedp stays out of kcluster's module
// graph. Its screenshot command (go run ./screenshot) makes the README's
// picture of the console.
package consoletest
