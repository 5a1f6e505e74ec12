package console

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// api stands for the gateway's routes behind the console.
var api = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Behind", "api")
	w.WriteHeader(http.StatusTeapot)
})

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, res *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatalf("gunzip: %v", err)
		}
	}
	return b
}

// assetPaths are the page and the script and style it names.
func assetPaths(t *testing.T, c *Console) (page, script, style string) {
	t.Helper()
	html := string(body(t, get(t, c, http.MethodGet, Prefix, nil)))
	js := regexp.MustCompile(`<script src="(app\.[0-9a-f]{12}\.js)" defer></script>`).FindStringSubmatch(html)
	css := regexp.MustCompile(`<link rel="stylesheet" href="(app\.[0-9a-f]{12}\.css)">`).FindStringSubmatch(html)
	if js == nil || css == nil {
		t.Fatalf("the page names no hashed script or style:\n%s", html)
	}
	return Prefix, Prefix + js[1], Prefix + css[1]
}

// TestSecurityHeaders: every console answer forbids framing, sniffing,
// referrers and any script but the console's own file.
func TestSecurityHeaders(t *testing.T) {
	c := Handler(api)
	page, script, style := assetPaths(t, c)
	for _, p := range []string{"/console", page, script, style} {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
			res := get(t, c, m, p, nil)
			h := res.Header
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self';", "frame-ancestors 'none'", "connect-src 'self'", "form-action 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("%s %s: CSP %q lacks %q", m, p, csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("%s %s: CSP %q allows inline or eval", m, p, csp)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" {
				t.Errorf("%s %s: headers %v", m, p, h)
			}
			if m == http.MethodPost && res.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("POST %s: %d, want 405", p, res.StatusCode)
			}
		}
	}
}

// TestAssetsCachedAndCompressed: the page is revalidated with its ETag
// (304 on a match), the hashed script and style are immutable, and gzip is
// sent to whoever accepts it and decodes to the same bytes.
func TestAssetsCachedAndCompressed(t *testing.T) {
	c := Handler(api)
	page, script, style := assetPaths(t, c)
	for _, p := range []string{page, script, style} {
		plain := get(t, c, http.MethodGet, p, nil)
		if plain.StatusCode != http.StatusOK || plain.Header.Get("Content-Encoding") != "" {
			t.Fatalf("GET %s: %d, encoding %q", p, plain.StatusCode, plain.Header.Get("Content-Encoding"))
		}
		raw := body(t, plain)
		zipped := get(t, c, http.MethodGet, p, map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
		if zipped.Header.Get("Content-Encoding") != "gzip" || zipped.Header.Get("Vary") != "Accept-Encoding" {
			t.Fatalf("GET %s with gzip: encoding %q, vary %q", p, zipped.Header.Get("Content-Encoding"), zipped.Header.Get("Vary"))
		}
		if !bytes.Equal(body(t, zipped), raw) {
			t.Fatalf("GET %s: the gzip variant decodes to other bytes", p)
		}
		for _, ae := range []string{"gzip;q=0", "gzip;q=0, *"} {
			if refused := get(t, c, http.MethodGet, p, map[string]string{"Accept-Encoding": ae}); refused.Header.Get("Content-Encoding") != "" {
				t.Errorf("GET %s with %q was gzipped", p, ae)
			}
		}
		// An explicit gzip entry decides over "*;q=0".
		if named := get(t, c, http.MethodGet, p, map[string]string{"Accept-Encoding": "*;q=0, gzip"}); named.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("GET %s with \"*;q=0, gzip\" was not gzipped", p)
		}
		etag := plain.Header.Get("ETag")
		if etag == "" || etag == zipped.Header.Get("ETag") {
			t.Fatalf("GET %s: ETag %q (gzip %q): want one per representation", p, etag, zipped.Header.Get("ETag"))
		}
		again := get(t, c, http.MethodGet, p, map[string]string{"If-None-Match": `"x", W/` + etag})
		if again.StatusCode != http.StatusNotModified || len(body(t, again)) != 0 {
			t.Errorf("GET %s If-None-Match %s: %d, want 304 with no body", p, etag, again.StatusCode)
		}
		if head := get(t, c, http.MethodHead, p, nil); head.StatusCode != http.StatusOK || len(body(t, head)) != 0 || head.Header.Get("Content-Length") != plain.Header.Get("Content-Length") {
			t.Errorf("HEAD %s: %d, length %s", p, head.StatusCode, head.Header.Get("Content-Length"))
		}
		want := "public, max-age=31536000, immutable"
		if p == page {
			want = "no-cache"
		}
		if got := plain.Header.Get("Cache-Control"); got != want {
			t.Errorf("GET %s: Cache-Control %q, want %q", p, got, want)
		}
	}
}

// TestRoutes: /console redirects under the prefix (relatively, for a
// proxy's path prefix); other paths, and unknown ones under the prefix,
// are the API's.
func TestRoutes(t *testing.T) {
	c := Handler(api)
	if res := get(t, c, http.MethodGet, "/console", nil); res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != "console/" {
		t.Errorf("GET /console: %d to %q, want 308 to console/", res.StatusCode, res.Header.Get("Location"))
	}
	for _, p := range []string{"/", "/channel/things", "/consoles", "/console/app.js.map", "/console/nothing"} {
		if res := get(t, c, http.MethodGet, p, nil); res.Header.Get("X-Behind") != "api" {
			t.Errorf("GET %s was not passed to the API (%d)", p, res.StatusCode)
		}
	}
}

// TestNothingInlineOrRemote: the page has no inline script, style or
// event handler (the CSP would block them), nothing loads from another
// origin (the console works offline), and the script puts no markup from
// the gateway on the page.
func TestNothingInlineOrRemote(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "app.css"} {
		b, err := files.ReadFile("assets/" + name)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/|@import|url\(\s*['"]?(https?:|//)`).FindString(s); m != "" {
			t.Errorf("%s loads from elsewhere: %q", name, m)
		}
		switch name {
		case "index.html":
			if m := regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=|javascript:`).FindString(s); m != "" {
				t.Errorf("index.html has inline script or style: %q", m)
			}
		case "app.js":
			for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "localStorage", "sessionStorage", "document.cookie", "new EventSource"} {
				if strings.Contains(s, bad) {
					t.Errorf("app.js uses %s", bad)
				}
			}
		}
	}
}

// TestBundleBudget: the console's download (page, script and style,
// gzipped as sent) stays small; the README states its size.
func TestBundleBudget(t *testing.T) {
	raw, gz := Handler(api).Size()
	t.Logf("console bundle: %d bytes, %d gzipped", raw, gz)
	if gz > 20<<10 {
		t.Errorf("console bundle is %d bytes gzipped, over the 20 KiB budget", gz)
	}
}
