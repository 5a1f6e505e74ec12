// Package apidoc serves the gateway's API reference: the OpenAPI 3.1
// document of every route of the binary (openapi.json, embedded) at
// GET /openapi.json, and a self-contained page that renders it (page.html
// at GET /docs and GET /, where PushGo serves its own documentation, with
// its style and script at /docs/page.css and /docs/page.js; embedded: no
// CDN, works offline).
//
// The document is kept true by tests, not by generation: the end-to-end
// suite validates every request it sends and every response it gets
// against it (e2e/openapi_validate_test.go), and the set of routes the
// server registers must equal the set of paths and methods it lists
// (internal/gateway/apidoc_test.go). A route added without its entry here
// fails make test.
package apidoc

import (
	"bytes"
	_ "embed"
	"net/http"
	"strconv"
	"sync"

	"github.com/pushgo/gateway/ingest/httpapi/gzipneg"
	"github.com/pushgo/gateway/schemas/apierr"
)

//go:embed openapi.json
var document []byte

// The reference page, its style and its script: separate files, so that
// the page's Content-Security-Policy admits no inline script or style.
var (
	//go:embed page.html
	page []byte
	//go:embed page.css
	pageStyle []byte
	//go:embed page.js
	pageScript []byte
)

// The paths this package serves. They are open even when PUSHGO_TOKEN is
// set: the document describes the public API and holds no secret, and a
// browser cannot add a bearer token to a page it navigates to. The page
// names its style and script relative to itself as docs/page.css and
// docs/page.js, which resolve to PathStyle and PathScript from / and from
// /docs alike (and under a reverse proxy's prefix).
const (
	PathDocument = "/openapi.json"
	PathPage     = "/docs"
	PathHome     = "/"
	PathStyle    = "/docs/page.css"
	PathScript   = "/docs/page.js"
)

// contentSecurityPolicy is sent with every answer of the package: the page
// runs its own script and style only (no inline ones), fetches
// openapi.json from its own origin, and cannot be framed.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// file is one served file; gz is its gzip form, made at the first request
// that accepts gzip: at package initialization it would cost every
// process, each CLI command included, tens of milliseconds (the document
// is about 290 KB, 22 KB gzipped).
type file struct {
	body        []byte
	contentType string
	gz          func() []byte
}

func newFile(body []byte, contentType string) *file {
	return &file{body: body, contentType: contentType, gz: sync.OnceValue(func() []byte { return gzipneg.Compress(body) })}
}

// files are the served files by path.
var files = func() map[string]*file {
	pageFile := newFile(page, "text/html; charset=utf-8")
	return map[string]*file{
		PathDocument: newFile(document, "application/json"),
		PathPage:     pageFile,
		PathHome:     pageFile,
		PathStyle:    newFile(pageStyle, "text/css; charset=utf-8"),
		PathScript:   newFile(pageScript, "text/javascript; charset=utf-8"),
	}
}()

// Paths lists the paths Handler serves.
func Paths() []string { return []string{PathHome, PathPage, PathDocument, PathStyle, PathScript} }

// Document returns the OpenAPI document (a copy: callers may keep it).
func Document() []byte { return bytes.Clone(document) }

// Handler serves GET and HEAD of Paths; another method is 405
// method_not_allowed and another path 404 route_not_found, in the
// gateway's failure envelope.
func Handler() http.Handler { return http.HandlerFunc(serve) }

func serve(w http.ResponseWriter, r *http.Request) {
	f, ok := files[r.URL.Path]
	if !ok {
		fail(w, apierr.New(apierr.RouteNotFound))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		fail(w, apierr.New(apierr.MethodNotAllowed))
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Vary", "Accept-Encoding")
	body := f.body
	if gzipneg.Accepts(r.Header.Get("Accept-Encoding")) {
		body = f.gz()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// fail answers e in the gateway's failure envelope (English: these
// answers come before any route's locale negotiation matters).
func fail(w http.ResponseWriter, e *apierr.Error) {
	b, err := apierr.EncodeError(e)
	if err != nil {
		http.Error(w, e.Detail, e.Status())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.Status())
	_, _ = w.Write(b)
}
