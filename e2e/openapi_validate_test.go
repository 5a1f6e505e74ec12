package e2e

// Every request the end-to-end suite sends to a pushgo process, and every
// answer it gets, is validated against the OpenAPI document the binary
// serves (ingest/httpapi/apidoc/openapi.json) with kin-openapi's
// openapi3filter, so a route whose code drifts from the document fails
// make test. The HTTP clients of the suite (harness_test.go) send through
// apiValidating; a mismatch fails the test that made the request (its
// *testing.T is the gateway's), and TestMain exits non-zero with the list
// of every mismatch of the run.
//
// What counts as a mismatch:
//   - an answer whose status the operation does not list, or whose body or
//     headers do not match the listed response (the JSON Schema 2020-12
//     validator kin-openapi uses for 3.1 documents);
//   - a request the document says is invalid that the gateway accepted
//     (any answer below 400): the tests send malformed requests on purpose
//     (bad JSON, wrong types, missing fields), and then a documented
//     refusal is what must come, validated like any answer (usually the
//     4xx naming the field; the code may check its rules in another order
//     than the document lists them, e.g. channel_type private is 503
//     private_channel_disabled before a missing provider_token is 400);
//   - a request to a path and method the document does not have, unless
//     it is answered as the gateway answers a route it does not have: 404
//     route_not_found or 405 method_not_allowed in the failure envelope, or
//     401 authentication_failed on a private gateway (its bearer check
//     comes before routing); the tests probe unknown routes on purpose.
//
// Streaming answers (text/event-stream) are checked by status and media
// type only: the stream is passed on unread.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/pushgo/gateway/ingest/httpapi/apidoc"
)

// openAPI is the loaded document and its router, built once per test
// binary.
type openAPI struct {
	doc    *openapi3.T
	router routers.Router
}

var loadOpenAPI = sync.OnceValues(func() (*openAPI, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(apidoc.Document())
	if err != nil {
		return nil, fmt.Errorf("load openapi.json: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi.json is invalid: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("router of openapi.json: %w", err)
	}
	// The pages and the metrics are text: kin-openapi decodes these
	// media types with its plain-text decoder, as it does text/plain.
	for _, mt := range []string{"text/html", "text/css", "text/javascript", "application/openmetrics-text"} {
		if openapi3filter.RegisteredBodyDecoder(mt) == nil {
			openapi3filter.RegisterBodyDecoder(mt, openapi3filter.PlainBodyDecoder)
		}
	}
	return &openAPI{doc: doc, router: router}, nil
})

// apiMismatches are every mismatch of the test binary's run, for TestMain.
var apiMismatches struct {
	sync.Mutex
	list []string
}

// apiExchanges counts the exchanges validated in the run; apiSampledOut
// those left out by apiShapes.
var apiExchanges, apiSampledOut atomic.Int64

// apiShapes counts the exchanges seen per kind: method, route, status,
// media types and the JSON shape (members and value kinds, not values) of
// both bodies. kin-openapi compiles a 3.1 schema again at every
// validation (3 ms an exchange, 16 ms under -race: the load tests' tens of
// thousands of exchanges took minutes of CPU from the gateways under
// test), so an exchange of a kind seen apiShapesFull times is validated
// once in apiShapesEvery. A new shape, route or status is always
// validated: a drift in shape is caught at once, one in values (a pattern,
// an enum) at least once in apiShapesEvery.
var apiShapes struct {
	sync.Mutex
	seen map[string]int
}

const (
	apiShapesFull  = 10
	apiShapesEvery = 20
)

// sampledOut reports whether the exchange of kind key is left out.
func sampledOut(key string) bool {
	apiShapes.Lock()
	defer apiShapes.Unlock()
	if apiShapes.seen == nil {
		apiShapes.seen = map[string]int{}
	}
	apiShapes.seen[key]++
	n := apiShapes.seen[key]
	return n > apiShapesFull && n%apiShapesEvery != 0
}

// jsonShape is the shape of a JSON body: objects by their members' names
// and shapes, arrays by the set of their items' shapes, scalars by kind;
// "text" for a body that is not JSON, "" for none.
func jsonShape(b []byte) string {
	if len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return "text"
	}
	var sb strings.Builder
	writeShape(&sb, v)
	return sb.String()
}

func writeShape(sb *strings.Builder, v any) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		sb.WriteByte('{')
		for _, k := range keys {
			sb.WriteString(strconv.Quote(k))
			sb.WriteByte(':')
			writeShape(sb, v[k])
			sb.WriteByte(',')
		}
		sb.WriteByte('}')
	case []any:
		items := map[string]bool{}
		for _, it := range v {
			var isb strings.Builder
			writeShape(&isb, it)
			items[isb.String()] = true
		}
		shapes := make([]string, 0, len(items))
		for s := range items {
			shapes = append(shapes, s)
		}
		slices.Sort(shapes)
		sb.WriteByte('[')
		sb.WriteString(strings.Join(shapes, "|"))
		sb.WriteByte(']')
	case string:
		sb.WriteByte('s')
	case float64:
		sb.WriteByte('n')
	case bool:
		sb.WriteByte('b')
	case nil:
		sb.WriteByte('0')
	}
}

// reportOpenAPIMismatches prints the run's mismatches and returns how many
// there were (TestMain exits non-zero when any).
func reportOpenAPIMismatches() int {
	apiMismatches.Lock()
	defer apiMismatches.Unlock()
	if n := apiExchanges.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "e2e: %d exchanges against the OpenAPI document: %d validated (%d more of kinds validated %d times each and left out but one in %d), %d mismatches\n",
			n, n-apiSampledOut.Load(), apiSampledOut.Load(), apiShapesFull, apiShapesEvery, len(apiMismatches.list))
	}
	if len(apiMismatches.list) == 0 {
		return 0
	}
	fmt.Fprintf(os.Stderr, "e2e: %d exchange(s) did not match the OpenAPI document (ingest/httpapi/apidoc/openapi.json):\n", len(apiMismatches.list))
	for _, m := range apiMismatches.list {
		fmt.Fprintln(os.Stderr, "  "+m)
	}
	return len(apiMismatches.list)
}

// apiValidating returns next (nil: a new http.Transport) wrapped in the
// validating transport, reporting to t while t runs and to the run's list
// always.
func apiValidating(t *testing.T, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = &http.Transport{}
	}
	v := &validatingTransport{next: next}
	var done atomic.Bool
	t.Cleanup(func() { done.Store(true) })
	v.report = func(m string) {
		apiMismatches.Lock()
		apiMismatches.list = append(apiMismatches.list, t.Name()+": "+m)
		apiMismatches.Unlock()
		if !done.Load() {
			t.Errorf("OpenAPI mismatch: %s", m)
		}
	}
	return v
}

// validatingTransport validates each exchange against the document and
// reports each mismatch (one line each) to report.
type validatingTransport struct {
	next   http.RoundTripper
	report func(mismatch string)
}

// maxValidatedBody bounds the request and answer bodies read for
// validation: the gateway's own limits are 32 KiB and 1 MiB, its largest
// answers (history pages) about 1 MiB.
const maxValidatedBody = 16 << 20

func (v *validatingTransport) CloseIdleConnections() {
	if c, ok := v.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (v *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	api, err := loadOpenAPI()
	if err != nil {
		v.report(err.Error())
		return v.next.RoundTrip(req)
	}
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		reqBody, err = io.ReadAll(io.LimitReader(req.Body, maxValidatedBody))
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read request body for validation: %w", err)
		}
		// The request goes out as the test made it: same bytes, and a
		// body of unknown length stays chunked (ContentLength kept).
		clone := req.Clone(req.Context())
		clone.Body = io.NopCloser(bytes.NewReader(reqBody))
		clone.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(reqBody)), nil }
		req = clone
	}
	resp, err := v.next.RoundTrip(req)
	if err != nil {
		return nil, err // no answer: nothing to validate
	}
	where, secrets := redactedURI(req.URL)
	apiExchanges.Add(1)
	if m := v.check(api, req, reqBody, resp); m != "" {
		m = req.Method + " " + where + " -> " + m
		for _, s := range secrets {
			m = strings.ReplaceAll(m, s, "REDACTED")
		}
		v.report(m)
	}
	return resp, nil
}

// redactedURI is u's path and query for a report, a secret parameter's
// value (GET /message takes the channel password in the query) replaced
// by REDACTED, and the values replaced (to be scrubbed from the rest of
// the report too): reports are printed, and kept in CI logs.
func redactedURI(u *url.URL) (string, []string) {
	q := u.Query()
	var secrets []string
	// A compat key in the path (/bark/<channel>:<password>/…,
	// /ntfy/<key>, /serverchan/[send/]<key>.send): its password.
	r := *u
	segs := strings.Split(r.Path, "/")
	for i := 1; i < len(segs); i++ {
		tool := segs[i-1]
		if tool == "send" && i >= 2 && segs[i-2] == "serverchan" {
			tool = "serverchan"
		}
		if tool != "bark" && tool != "ntfy" && tool != "serverchan" {
			continue
		}
		if ch, pw, ok := strings.Cut(segs[i], ":"); ok && pw != "" {
			pw = strings.TrimSuffix(pw, ".send")
			secrets = append(secrets, pw, url.PathEscape(pw))
			segs[i] = ch + ":REDACTED" + strings.TrimPrefix(segs[i], ch+":"+pw)
		}
	}
	r.Path, r.RawPath = strings.Join(segs, "/"), ""
	for k, vs := range q {
		lk := strings.ToLower(k)
		if lk == "device_key" { // Bark's compat key, <channel>:<password>
			for i, v := range vs {
				if ch, pw, ok := strings.Cut(v, ":"); ok && pw != "" {
					secrets = append(secrets, pw)
					vs[i] = ch + ":REDACTED"
				}
			}
			continue
		}
		if !strings.Contains(lk, "password") && !strings.Contains(lk, "token") && !strings.Contains(lk, "secret") && lk != "auth" {
			continue
		}
		for i, v := range vs {
			if v != "" {
				secrets = append(secrets, v)
				vs[i] = "REDACTED"
			}
		}
	}
	if len(secrets) == 0 {
		return u.RequestURI(), nil
	}
	if q.Encode() != u.Query().Encode() {
		r.RawQuery = q.Encode()
	}
	return r.RequestURI(), secrets
}

// check validates one exchange and returns the mismatch ("" for none). It
// replaces resp.Body with the bytes it read (streams are not read).
func (v *validatingTransport) check(api *openAPI, req *http.Request, reqBody []byte, resp *http.Response) string {
	ctx := context.Background()
	vreq := req.Clone(ctx)
	if vreq.Method == http.MethodHead {
		vreq.Method = http.MethodGet // HEAD is GET without the body
	}
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, pathParams, ferr := api.router.FindRoute(vreq)

	stream := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	var respBody []byte
	if !stream && req.Method != http.MethodHead {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxValidatedBody))
		_ = resp.Body.Close()
		if err != nil {
			// A cut answer is the caller's to see: give it what came.
			resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), errReader{err}))
			return ""
		}
		respBody = b
		resp.Body = io.NopCloser(bytes.NewReader(b))
		// A browser accepts gzip and the proxy passes it on: the
		// document describes the decoded body.
		if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return fmt.Sprintf("%d answer says gzip but is not: %v", resp.StatusCode, err)
			}
			if respBody, err = io.ReadAll(io.LimitReader(zr, maxValidatedBody)); err != nil {
				return fmt.Sprintf("%d answer says gzip but is not: %v", resp.StatusCode, err)
			}
		}
	}

	if ferr != nil {
		return undocumentedRoute(ferr, resp, respBody)
	}
	if !stream {
		key := strings.Join([]string{req.Method, route.Path, strconv.Itoa(resp.StatusCode), req.Header.Get("Content-Type"),
			resp.Header.Get("Content-Type"), jsonShape(reqBody), jsonShape(respBody)}, " ")
		if sampledOut(key) {
			apiSampledOut.Add(1)
			return ""
		}
	}

	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true, MultiError: true}
	opts.WithCustomSchemaErrorFunc(schemaReason)
	switch route.Operation.Extensions["x-pushgo-body-media-type"] {
	case "json":
		// The route reads its body as JSON whatever Content-Type says
		// (integrations: curl --data sends a form type).
		if len(reqBody) > 0 {
			vreq.Header.Set("Content-Type", "application/json")
		}
	case "ignored":
		opts.ExcludeRequestBody = true // the body is the message text, any media type
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: pathParams, Route: route, Options: opts}
	reqErr := openapi3filter.ValidateRequest(ctx, in)

	var respErr error
	if stream {
		respErr = streamAnswer(route, resp)
	} else {
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts}
		if req.Method == http.MethodHead {
			out.Options = &openapi3filter.Options{AuthenticationFunc: opts.AuthenticationFunc, IncludeResponseStatus: true, ExcludeResponseBody: true}
		}
		out.SetBodyBytes(respBody)
		respErr = openapi3filter.ValidateResponse(ctx, out)
	}
	switch {
	case respErr != nil:
		return fmt.Sprintf("%d answer does not match the document: %s (body %s)", resp.StatusCode, oneLine(respErr), clip(respBody))
	case reqErr != nil && resp.StatusCode < 400:
		return fmt.Sprintf("the document says the request is invalid (%s) but it was answered %d (body %s)", oneLine(reqErr), resp.StatusCode, clip(respBody))
	}
	return ""
}

// undocumentedRoute: a request the document has no operation for must be
// answered as the gateway answers a route it does not have.
func undocumentedRoute(ferr error, resp *http.Response, body []byte) string {
	var env struct {
		Success   *bool  `json:"success"`
		ErrorCode string `json:"error_code"`
	}
	_ = json.Unmarshal(body, &env)
	switch {
	case resp.StatusCode == http.StatusNotFound && env.Success != nil && !*env.Success && env.ErrorCode == "route_not_found":
		return ""
	case resp.StatusCode == http.StatusMethodNotAllowed && env.Success != nil && !*env.Success && env.ErrorCode == "method_not_allowed":
		return ""
	case resp.StatusCode == http.StatusUnauthorized && env.Success != nil && !*env.Success && env.ErrorCode == "authentication_failed":
		return ""
	}
	return fmt.Sprintf("no operation of the document (%v), yet answered %d %s", ferr, resp.StatusCode, clip(body))
}

// streamAnswer checks a streaming answer's status and media type against
// the operation's responses, without reading it.
func streamAnswer(route *routers.Route, resp *http.Response) error {
	r := route.Operation.Responses.Status(resp.StatusCode)
	if r == nil || r.Value == nil {
		return fmt.Errorf("status %d is not documented", resp.StatusCode)
	}
	if r.Value.Content.Get(resp.Header.Get("Content-Type")) == nil {
		return fmt.Errorf("media type %q is not documented for %d", resp.Header.Get("Content-Type"), resp.StatusCode)
	}
	return nil
}

// schemaReason is a schema error as reported: where in the value, and
// why (the schema and the value themselves are long; the body is quoted
// beside).
func schemaReason(e *openapi3.SchemaError) string {
	return "/" + strings.Join(e.JSONPointer(), "/") + ": " + e.Reason
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func oneLine(err error) string {
	var me openapi3.MultiError
	if errors.As(err, &me) {
		parts := make([]string, 0, len(me))
		for _, e := range me {
			parts = append(parts, oneLine(e))
		}
		return strings.Join(parts, "; ")
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}

func clip(b []byte) string {
	const max = 300
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// TestValidatorCatchesAWrongResponseShape is the demonstration that the
// validation is not a no-op: a stand-in server answers documented routes
// through the same validating transport the suite's clients use, once in
// the documented shape and once not, and the validator must report
// exactly the wrong ones (to a local list: these are deliberate, so they
// do not fail the run).
func TestValidatorCatchesAWrongResponseShape(t *testing.T) {
	const id = "01J9Z8Q4S6T7V8W9X0Y1Z2A3B4"
	answers := map[string]struct {
		status int
		body   string
	}{
		// Documented: {channel_id, channel_name, created: true}.
		"/channel/create": {200, `{"success":true,"data":{"channel_id":"` + id + `","channel_name":"home","created":true}}`},
		// Wrong shape: channel_name missing, created a string.
		"/channel/rename": {200, `{"success":true,"data":{"channel_id":"` + id + `","created":"yes"}}`},
		// A valid failure envelope for a request the document rejects.
		"/event/create": {400, `{"success":false,"data":null,"error":"title: title is required","error_code":"title_required","problem":{"code":"title_required","category":"validation","status":400,"title":"Validation failed","localized_message":"title is required","locale":"en","retryable":false}}`},
		// The same malformed request accepted: the document is stricter than this server.
		"/message": {200, `{"success":true,"data":{"channel_id":"` + id + `","op_id":"x","message_id":"y","accepted":true}}`},
		// A route the document does not have, served anyway.
		"/admin/secret": {200, `{"ok":true}`},
		// A status the operation does not list.
		"/thing/get": {418, `{"success":false}`},
	}
	srv := newStandIn(t, func(w http.ResponseWriter, r *http.Request) {
		a, ok := answers[r.URL.Path]
		if !ok {
			a.status, a.body = 404, `{"success":false,"data":null,"error":"no such route","error_code":"route_not_found","problem":{"code":"route_not_found","category":"not_found","status":404,"title":"Resource not found","localized_message":"no such route","locale":"en","retryable":false}}`
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "scratch")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	})
	var got []string
	client := &http.Client{Transport: &validatingTransport{next: &http.Transport{}, report: func(m string) { got = append(got, m) }}}
	defer client.CloseIdleConnections()
	send := func(path, body string) {
		t.Helper()
		resp, err := client.Post(srv+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	cred := `"channel_id":"` + id + `","password":"correct-horse"`
	send("/channel/create", `{"channel_name":"home","password":"correct-horse"}`)
	send("/channel/rename", `{`+cred+`,"channel_name":"home"}`)
	send("/event/create", `{`+cred+`,"status":"open","message":"m","severity":"high","event_time":1}`)
	send("/message", `{`+cred+`,"severity":"loud"}`)
	send("/admin/secret", `{}`)
	send("/nowhere", `{}`)
	send("/thing/get", `{`+cred+`,"thing_id":"t1"}`)

	for _, m := range got {
		t.Logf("reported: %s", m)
	}
	want := []string{"POST /channel/rename -> 200 answer does not match the document", "POST /message -> the document says the request is invalid",
		"POST /admin/secret -> no operation of the document", "POST /thing/get -> 418 answer does not match the document"}
	if len(got) != len(want) {
		t.Fatalf("reported %d mismatches, want %d (%v)", len(got), len(want), want)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("mismatch %d: %q, want it to start %q", i, got[i], w)
		}
	}
	if !strings.Contains(got[0], "channel_name") || !strings.Contains(got[0], "created") {
		t.Errorf("the wrong shape's report does not name what is wrong (channel_name missing, created not true): %s", got[0])
	}
}

// newStandIn serves h on a loopback port for the test and returns its URL.
func newStandIn(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := &http.Server{Handler: h}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// apiValidatingProxy serves, for the test, a reverse proxy to the pushgo
// process at base (http://host:port) whose exchanges go through the same
// validation (reported to t), and returns its URL: for the clients the
// suite does not build itself (the pushgo CLI, the browser) to be pointed
// at instead of base. Streams are passed on as they come.
func apiValidatingProxy(t *testing.T, base string) string {
	t.Helper()
	target, err := url.Parse(base)
	if err != nil {
		t.Fatalf("apiValidatingProxy: %v", err)
	}
	return newStandIn(t, validatingProxy(target, apiValidating(t, &http.Transport{})).ServeHTTP)
}

// validatingProxy is a reverse proxy to target sending through tr.
func validatingProxy(target *url.URL, tr http.RoundTripper) *httputil.ReverseProxy {
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = tr
	proxy.FlushInterval = -1 // SSE: every write at once
	return proxy
}

// TestValidatingProxyReportsWhatItPasses: an exchange through
// apiValidatingProxy is validated like one of the suite's own clients: a
// wrong answer is reported (here to a stand-in t), a right one is not, and
// the client gets the answer unchanged either way.
func TestValidatingProxyReportsWhatItPasses(t *testing.T) {
	upstream := newStandIn(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/healthz" {
			_, _ = io.WriteString(w, `{"success":true,"data":{"alive":true}}`)
			return
		}
		_, _ = io.WriteString(w, `{"success":true,"data":{"ready":"yes"}}`) // /readyz: ready must be true
	})
	// The mismatch is deliberate: it is reported to a list, not to t.
	var mu sync.Mutex
	var reports []string
	target, _ := url.Parse(upstream)
	front := newStandIn(t, validatingProxy(target, &validatingTransport{next: &http.Transport{}, report: func(m string) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, m)
	}}).ServeHTTP)
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(front + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), `{"success":true`) {
			t.Errorf("GET %s through the proxy: %d %s, want the upstream's answer unchanged", p, resp.StatusCode, b)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 1 || !strings.HasPrefix(reports[0], "GET /readyz -> 200 answer does not match the document") {
		t.Errorf("reports %q, want exactly the /readyz answer's", reports)
	}
}

// TestMismatchReportHidesThePassword: a mismatch of GET /message, which
// takes the channel password in its query, is reported with the password
// replaced (in the URI and anywhere else in the report), the other
// parameters kept.
func TestMismatchReportHidesThePassword(t *testing.T) {
	const id = "01J9Z8Q4S6T7V8W9X0Y1Z2A3B4"
	const password = "hunter2-s3cret value"
	srv := newStandIn(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "scratch")
		// A wrong shape that echoes the password: the report quotes it.
		_, _ = io.WriteString(w, `{"success":true,"data":{"channel_id":"`+id+`","echo":"`+r.URL.Query().Get("password")+`"}}`)
	})
	var got []string
	client := &http.Client{Transport: &validatingTransport{next: &http.Transport{}, report: func(m string) { got = append(got, m) }}}
	defer client.CloseIdleConnections()
	q := url.Values{"channel_id": {id}, "password": {password}, "title": {"hello"}}
	resp, err := client.Get(srv + "/message?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if len(got) != 1 {
		t.Fatalf("reported %q, want one mismatch", got)
	}
	if strings.Contains(got[0], "hunter2") || strings.Contains(got[0], url.QueryEscape(password)) ||
		!strings.Contains(got[0], "password=REDACTED") || !strings.Contains(got[0], "title=hello") || !strings.HasPrefix(got[0], "GET /message?") {
		t.Errorf("report %q: want GET /message with password=REDACTED, title kept, the password nowhere", got[0])
	}
	// A compat key in the path: its password.
	for _, path := range []string{"/bark/" + id + ":" + url.PathEscape(password) + "/T/B", "/serverchan/" + id + ":" + url.PathEscape(password) + ".send",
		"/bark/push?" + url.Values{"device_key": {id + ":" + password}}.Encode()} {
		got = nil
		resp, err := client.Get(srv + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if len(got) != 1 || strings.Contains(got[0], "hunter2") || !strings.Contains(got[0], id+":REDACTED") && !strings.Contains(got[0], id+"%3AREDACTED") {
			t.Errorf("report %q: want the compat key's password REDACTED", got)
		}
	}
}

// TestShapeSampling: exchanges of one kind (route, status, media types,
// body shapes) are all validated up to apiShapesFull, then one in
// apiShapesEvery; bodies that differ in values only are one kind, a
// member added, removed or of another type makes a new kind (validated).
func TestShapeSampling(t *testing.T) {
	a := jsonShape([]byte(`{"success":true,"data":{"op_id":"a","n":1,"tags":["x","y"]}}`))
	b := jsonShape([]byte(`{"data":{"tags":["z"],"n":2,"op_id":"bbbb"},"success":false}`))
	if a != b {
		t.Fatalf("same shape, other values: %s vs %s", a, b)
	}
	for _, other := range []string{
		`{"success":true,"data":{"op_id":"a","n":1,"tags":["x"],"extra":1}}`,
		`{"success":true,"data":{"op_id":"a","n":"1","tags":["x"]}}`,
		`{"success":true,"data":{"op_id":"a","tags":["x"]}}`,
		`{"success":true,"data":{"op_id":"a","n":1,"tags":[1]}}`,
		`{"success":true,"data":{"op_id":null,"n":1,"tags":["x"]}}`,
	} {
		if jsonShape([]byte(other)) == a {
			t.Errorf("%s has the shape of %s", other, a)
		}
	}
	key := "TestShapeSampling " + t.Name()
	validated := 0
	for range 100 {
		if !sampledOut(key) {
			validated++
		}
	}
	if want := apiShapesFull + 100/apiShapesEvery - apiShapesFull/apiShapesEvery; validated != want {
		t.Fatalf("validated %d of 100 exchanges of one kind, want %d", validated, want)
	}
}
