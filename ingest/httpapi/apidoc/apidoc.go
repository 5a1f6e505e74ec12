// Package apidoc serves the gateway's API reference: the OpenAPI 3.1
// document of every route of the binary (openapi.json, embedded) at
// GET /openapi.json, and a self-contained page that renders it (page.html,
// embedded: no CDN, works offline) at GET /docs and GET / (where PushGo
// serves its own documentation).
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
	"compress/gzip"
	_ "embed"
	"net/http"
	"strconv"
	"strings"

	"github.com/pushgo/gateway/schemas/apierr"
)

//go:embed openapi.json
var document []byte

//go:embed page.html
var page []byte

// The gzip forms, sent to clients that accept them: the document is about
// 290 KB as stored and 22 KB gzipped.
var (
	documentGz = gzipped(document)
	pageGz     = gzipped(page)
)

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // fails only on a bad level
	_, _ = w.Write(b)                                       // a bytes.Buffer does not fail
	_ = w.Close()
	return buf.Bytes()
}

// The paths this package serves. They are open even when PUSHGO_TOKEN is
// set: the document describes the public API and holds no secret, and a
// browser cannot add a bearer token to a page it navigates to.
const (
	PathDocument = "/openapi.json"
	PathPage     = "/docs"
	PathHome     = "/"
)

// Paths lists the paths Handler serves.
func Paths() []string { return []string{PathHome, PathPage, PathDocument} }

// Document returns the OpenAPI document (a copy: callers may keep it).
func Document() []byte { return bytes.Clone(document) }

// Handler serves GET and HEAD of Paths; another method is 405
// method_not_allowed and another path 404 route_not_found, in the
// gateway's failure envelope.
func Handler() http.Handler { return http.HandlerFunc(serve) }

func serve(w http.ResponseWriter, r *http.Request) {
	var body, gz []byte
	var contentType string
	switch r.URL.Path {
	case PathDocument:
		body, gz, contentType = document, documentGz, "application/json"
	case PathPage, PathHome:
		body, gz, contentType = page, pageGz, "text/html; charset=utf-8"
	default:
		fail(w, apierr.New(apierr.RouteNotFound))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		fail(w, apierr.New(apierr.MethodNotAllowed))
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Vary", "Accept-Encoding")
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		body = gz
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	// The page loads nothing from elsewhere; say so to the browser.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reports whether an Accept-Encoding value admits gzip: named
// (or "*") without q=0.
func acceptsGzip(v string) bool {
	for _, part := range strings.Split(v, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.ToLower(params), " ", "")
		if q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000" {
			continue
		}
		return true
	}
	return false
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
