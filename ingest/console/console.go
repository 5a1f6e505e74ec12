// Package console serves the channel console: a page at /console/ where a
// person signs in with a channel id and password and watches the channel's
// Things and Events change live, pages its history, sends a test Message
// and manages its integration tokens. The page, its script and its style
// are embedded in the binary (no CDN, no external font: it works offline)
// and talk to the gateway's public routes only, as any client would.
//
// The page keeps the credentials in a JavaScript variable and sends them
// in JSON bodies and request headers only (never in a URL, storage or a
// cookie): the read routes take them in the body, /channel/stream in
// X-PushGo-Channel and X-PushGo-Password. Its responses carry a strict
// Content-Security-Policy (same-origin script, style and connections; no
// inline script; no framing) so that a value the page shows can never run.
//
// The console is served in front of the gateway-wide bearer token
// (PUSHGO_TOKEN): the assets are the same for everyone and hold no data, so
// on a private gateway the page loads and asks for the API token beside
// the channel's credentials, and sends it as a bearer token with every
// call.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"

	"github.com/pushgo/gateway/ingest/httpapi/gzipneg"
)

//go:embed assets
var files embed.FS

// Prefix is the path the console is served under; /console itself
// redirects to it, so that the page's relative URLs resolve under any
// path a reverse proxy mounts the gateway at.
const Prefix = "/console/"

// Header values of every console response. The policy allows the page's
// own script, style and connections only (the API is same-origin), no
// inline script or style, no plugin, no base or form target elsewhere, and
// no framing (clickjacking of the token and send buttons).
const (
	contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	// The hashed asset names change with their content: they never
	// need revalidating. The page itself is revalidated on every load
	// (a 304 with its ETag), so a new binary's page is seen at once.
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// asset is one file as served: its bytes, their gzip, and the headers.
type asset struct {
	name        string
	contentType string
	cache       string
	body, gz    []byte
	etag        string // strong, of body; the gzip variant's is etagGz
	etagGz      string
}

// Console serves the console's files and passes every other request on.
type Console struct {
	assets map[string]*asset // by path under Prefix ("" is the page)
	next   http.Handler
}

// Handler serves the console under Prefix (and redirects /console there)
// and passes every other request to api. It panics if the embedded assets
// are malformed, which the package's tests rule out.
func Handler(api http.Handler) *Console {
	c, err := build(files, api)
	if err != nil {
		panic(fmt.Sprintf("console: %v", err))
	}
	return c
}

// build reads the assets of fsys, gives the script and style names with
// their content hash (so they can be cached for good), and writes those
// names into the page.
func build(fsys fs.FS, next http.Handler) (*Console, error) {
	read := func(name string) ([]byte, error) { return fs.ReadFile(fsys, "assets/"+name) }
	page, err := read("index.html")
	if err != nil {
		return nil, err
	}
	c := &Console{assets: map[string]*asset{}, next: next}
	for _, f := range []struct{ name, ext, contentType string }{
		{"app", ".js", "text/javascript; charset=utf-8"},
		{"app", ".css", "text/css; charset=utf-8"},
	} {
		b, err := read(f.name + f.ext)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		hashed := f.name + "." + hex.EncodeToString(sum[:6]) + f.ext
		plain := `"` + f.name + f.ext + `"`
		if bytes.Count(page, []byte(plain)) != 1 {
			return nil, fmt.Errorf("index.html must reference %s exactly once", plain)
		}
		page = bytes.Replace(page, []byte(plain), []byte(`"`+hashed+`"`), 1)
		if c.assets[hashed], err = newAsset(hashed, f.contentType, cacheImmutable, b); err != nil {
			return nil, err
		}
	}
	if c.assets[""], err = newAsset("index.html", "text/html; charset=utf-8", cacheRevalidate, page); err != nil {
		return nil, err
	}
	return c, nil
}

func newAsset(name, contentType, cache string, body []byte) (*asset, error) {
	sum := sha256.Sum256(body)
	tag := hex.EncodeToString(sum[:12])
	return &asset{name: name, contentType: contentType, cache: cache, body: body, gz: gzipneg.Compress(body),
		etag: `"` + tag + `"`, etagGz: `"` + tag + `-gz"`}, nil
}

// Size is the console's download: the bytes of the page, script and style
// as stored, and as sent gzipped.
func (c *Console) Size() (raw, gzipped int) {
	for _, a := range c.assets {
		raw += len(a.body)
		gzipped += len(a.gz)
	}
	return raw, gzipped
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p != "/console" && !strings.HasPrefix(p, Prefix) {
		c.next.ServeHTTP(w, r)
		return
	}
	a, ok := c.assets[strings.TrimPrefix(p, Prefix)]
	if p != "/console" && !ok {
		c.next.ServeHTTP(w, r) // the API's route_not_found
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if p == "/console" {
		// Relative, so that it stays under a proxy's path prefix.
		h.Set("Location", "console/")
		w.WriteHeader(http.StatusPermanentRedirect)
		return
	}
	body, etag := a.body, a.etag
	h.Set("Vary", "Accept-Encoding")
	if gzipneg.Accepts(r.Header.Get("Accept-Encoding")) {
		body, etag = a.gz, a.etagGz
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", a.cache)
	h.Set("ETag", etag)
	if matches(r.Header.Get("If-None-Match"), etag) {
		h.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// matches reports whether an If-None-Match value names etag (weak
// comparison, as RFC 9110 asks for If-None-Match) or is "*".
func matches(inm, etag string) bool {
	for part := range strings.SplitSeq(inm, ",") {
		t := strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
