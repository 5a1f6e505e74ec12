package e2e

import (
	"strconv"
	"testing"
)

// TestDocsPageRendersUnderItsPolicy opens the API reference (/docs and /)
// in headless Chromium through the validating proxy: the page's own
// script and style, loaded from /docs/page.js and /docs/page.css under
// the page's strict Content-Security-Policy (no inline script or style),
// render every operation of openapi.json, the filter works, and the
// browser reports no error and no policy violation (the security log) and
// requests nothing outside the gateway.
func TestDocsPageRendersUnderItsPolicy(t *testing.T) {
	chrome := chromiumPath(t)
	g := startGateway(t, gwConfig{DataDir: t.TempDir()})
	front := apiValidatingProxy(t, g.base)
	p := openConsole(t, chrome)
	for _, path := range []string{"/docs", "/"} {
		p.navigate(front + path)
		p.waitJS("every operation rendered at "+path, `document.querySelectorAll('main section.op').length > 60 &&
			document.querySelectorAll('#toc li a').length === document.querySelectorAll('main section.op').length`)
		// The style sheet applies: an operation is a bordered box.
		if w := p.eval(`getComputedStyle(document.querySelector('section.op')).borderTopStyle`); w != "solid" {
			t.Errorf("%s: an operation's border is %q: the style sheet did not apply", path, w)
		}
	}
	total, _ := strconv.Atoi(p.eval(`String(document.querySelectorAll('main section.op').length)`))
	p.fill("#filter", "/channel/token/")
	p.waitJS("the filter keeps the token routes", `document.querySelectorAll('main section.op:not(.hidden)').length === 3`)
	if total <= 3 {
		t.Errorf("%d operations rendered", total)
	}
	p.checkRequestsStayHome(front)
	p.checkNoPageErrors()
}
