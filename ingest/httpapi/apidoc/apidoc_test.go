package apidoc

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
)

// TestDocumentListsEveryErrorCode: the document's ErrorCode enum is the
// catalog, code for code, so a client generated from the document knows
// every error_code the gateway answers and none it never does.
func TestDocumentListsEveryErrorCode(t *testing.T) {
	var doc struct {
		OpenAPI    string `json:"openapi"`
		Components struct {
			Schemas map[string]struct {
				Enum []string `json:"enum"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(Document(), &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	var want []string
	for _, e := range apierr.Catalog() {
		want = append(want, string(e.Code))
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(doc.Components.Schemas["ErrorCode"].Enum))
	if !slices.Equal(got, want) {
		t.Errorf("ErrorCode enum differs from the catalog:\n only in the document: %v\n only in the catalog: %v", minus(got, want), minus(want, got))
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestHandlerServesTheDocumentAndThePage: GET /openapi.json is the
// embedded document as JSON; GET /docs and GET / are the page; HEAD
// answers the headers only; another method is 405 in the failure
// envelope, another path 404.
func TestHandlerServesTheDocumentAndThePage(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	get := func(method, path string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.Header.Set("Accept-Encoding", "identity") // as stored; gzip: TestGzipWhenAccepted
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := get(http.MethodGet, "/openapi.json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || string(b) != string(document) {
		t.Errorf("GET /openapi.json: %d %q, %d bytes (want the %d of the document)", resp.StatusCode, resp.Header.Get("Content-Type"), len(b), len(document))
	}
	for _, p := range []string{"/docs", "/"} {
		resp, b = get(http.MethodGet, p)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(b), `<script src="docs/page.js" defer></script>`) || !strings.Contains(string(b), `<link rel="stylesheet" href="docs/page.css">`) {
			t.Errorf("GET %s: %d %q, want the page with its script and style", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	// docs/page.js and docs/page.css, relative to / and to /docs alike.
	resp, b = get(http.MethodGet, "/docs/page.js")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || !strings.Contains(string(b), `fetch("openapi.json"`) {
		t.Errorf("GET /docs/page.js: %d %q, want the script that loads openapi.json", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, b = get(http.MethodGet, "/docs/page.css")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/css; charset=utf-8" || !bytes.Equal(b, pageStyle) {
		t.Errorf("GET /docs/page.css: %d %q, want the style", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	resp, b = get(http.MethodHead, "/docs")
	if resp.StatusCode != 200 || len(b) != 0 || resp.Header.Get("Content-Length") != itoa(len(page)) {
		t.Errorf("HEAD /docs: %d, %d body bytes, Content-Length %q", resp.StatusCode, len(b), resp.Header.Get("Content-Length"))
	}
	resp, b = get(http.MethodPost, "/openapi.json")
	if resp.StatusCode != 405 || !strings.Contains(string(b), `"error_code":"method_not_allowed"`) {
		t.Errorf("POST /openapi.json: %d %s, want 405 method_not_allowed", resp.StatusCode, b)
	}
	resp, b = get(http.MethodGet, "/nowhere")
	if resp.StatusCode != 404 || !strings.Contains(string(b), `"error_code":"route_not_found"`) {
		t.Errorf("GET /nowhere: %d %s, want 404 route_not_found", resp.StatusCode, b)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestPageLoadsNothingFromElsewhere: the page works offline: no script,
// style, font or image from another origin (the only URL its script
// fetches is the relative openapi.json). It has no inline script, style or
// event handler, and every answer carries a Content-Security-Policy that
// admits none: same-origin script, style and connections, no framing.
func TestPageLoadsNothingFromElsewhere(t *testing.T) {
	for name, b := range map[string][]byte{"page.html": page, "page.css": pageStyle, "page.js": pageScript} {
		if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`).FindString(string(b)); m != "" {
			t.Errorf("%s references another origin: %q", name, m)
		}
		if m := regexp.MustCompile(`(?i)@import|url\(\s*["']?(https?:)?//|fetch\(\s*["'](https?:)?//`).FindString(string(b)); m != "" {
			t.Errorf("%s loads from elsewhere: %q", name, m)
		}
	}
	for _, m := range regexp.MustCompile(`(?is)<script[^>]*>(.*?)</script>|<style|\sstyle\s*=|\son[a-z]+\s*=`).FindAllStringSubmatch(string(page), -1) {
		if !strings.HasPrefix(m[0], "<script") || strings.TrimSpace(m[1]) != "" {
			t.Errorf("page.html has an inline script, style or handler, which the policy forbids: %.60q", m[0])
		}
	}
	const want = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
		"img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	for _, p := range Paths() {
		rec := httptest.NewRecorder()
		Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if csp := rec.Header().Get("Content-Security-Policy"); rec.Code != 200 || csp != want {
			t.Errorf("GET %s: %d, Content-Security-Policy %q, want %q", p, rec.Code, csp, want)
		}
	}
}

// TestGzipWhenAccepted: a client that accepts gzip gets the document, the
// page, its script and its style gzipped (smaller; under half the bytes
// of those over 4 KB), which
// decompress to them; one that does not (or refuses it with q=0, an
// explicit gzip entry deciding over "*") gets them as stored.
func TestGzipWhenAccepted(t *testing.T) {
	for _, tc := range []struct {
		path   string
		stored []byte
	}{{"/openapi.json", document}, {"/docs", page}, {"/", page}, {"/docs/page.js", pageScript}, {"/docs/page.css", pageStyle}} {
		for _, ae := range []string{"gzip, deflate, br", "*", "identity", "gzip;q=0", "", "gzip;q=0, *", "*;q=0, gzip"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, tc.path, nil)
			req.Header.Set("Accept-Encoding", ae)
			Handler().ServeHTTP(rec, req)
			body := rec.Body.Bytes()
			wantGzip := ae == "gzip, deflate, br" || ae == "*" || ae == "*;q=0, gzip"
			if got := rec.Header().Get("Content-Encoding") == "gzip"; got != wantGzip {
				t.Errorf("GET %s, Accept-Encoding %q: gzipped %v, want %v", tc.path, ae, got, wantGzip)
				continue
			}
			if wantGzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("GET %s: not gzip: %v", tc.path, err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
				if 2*rec.Body.Len() > len(tc.stored) && len(tc.stored) > 4096 || rec.Body.Len() >= len(tc.stored) {
					t.Errorf("GET %s gzipped: %d bytes of %d", tc.path, rec.Body.Len(), len(tc.stored))
				}
			}
			if !bytes.Equal(body, tc.stored) || rec.Header().Get("Vary") != "Accept-Encoding" {
				t.Errorf("GET %s, Accept-Encoding %q: %d bytes (Vary %q), want the %d stored", tc.path, ae, len(body), rec.Header().Get("Vary"), len(tc.stored))
			}
		}
	}
}
