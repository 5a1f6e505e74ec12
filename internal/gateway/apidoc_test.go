package gateway

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/ingest/console"
	"github.com/pushgo/gateway/ingest/httpapi/apidoc"
)

// TestOpenAPIDocumentIsValid: the served document loads and validates as
// OpenAPI 3.1 with kin-openapi (the validator the end-to-end suite holds
// the routes to), every $ref resolving.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadOpenAPI(t)
	if !doc.IsOpenAPI31OrLater() || doc.IsOpenAPI32OrLater() {
		t.Fatalf("openapi %q: want 3.1", doc.OpenAPI)
	}
}

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(apidoc.Document())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// TestEveryRouteIsDocumented: the routes the binary serves and the
// operations of the OpenAPI document are the same set of method and path,
// both ways: a route registered without its entry in openapi.json fails
// here, and so does an entry whose route is gone. The served routes are
// read from where they are registered: the API's router (echo's route
// table: the PushGo routes, reads, devices, tokens, integrations, compat),
// the process's ops server (the paths its ServeHTTP switch answers, read
// from ops.go: the probes, /metrics, /deadletters, the API reference) and
// the console's paths (under console.Prefix).
func TestEveryRouteIsDocumented(t *testing.T) {
	doc := loadOpenAPI(t)
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}

	cfg := Defaults()
	// A private gateway: /deadletters lists only to the token's holder.
	cfg.HTTPAddr, cfg.DataDir, cfg.NATSListen, cfg.Token = "127.0.0.1:0", t.TempDir(), "off", "apidoc-token"
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())

	served := map[string]bool{}
	param := regexp.MustCompile(`:([A-Za-z0-9_]+)`)
	for _, r := range g.ingest.HTTP().Echo().Router().Routes() {
		served[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	opsPaths := opsServerPaths(t)
	if !slices.Contains(opsPaths, "/healthz") || !slices.Contains(opsPaths, "/openapi.json") {
		t.Fatalf("ops.go's ServeHTTP switch read as %v: the reading is broken", opsPaths)
	}
	for _, p := range opsPaths {
		served[http.MethodGet+" "+p] = true // the ops server answers GET (and HEAD) on each
	}
	for _, p := range []string{strings.TrimSuffix(console.Prefix, "/"), console.Prefix, console.Prefix + "{asset}"} {
		served[http.MethodGet+" "+p] = true
	}

	var undocumented, gone []string
	for k := range served {
		if !documented[k] {
			undocumented = append(undocumented, k)
		}
	}
	for k := range documented {
		if !served[k] {
			gone = append(gone, k)
		}
	}
	slices.Sort(undocumented)
	slices.Sort(gone)
	if len(undocumented) > 0 {
		t.Errorf("routes the server registers that ingest/httpapi/apidoc/openapi.json does not describe:\n  %s", strings.Join(undocumented, "\n  "))
	}
	if len(gone) > 0 {
		t.Errorf("operations of openapi.json that no route serves:\n  %s", strings.Join(gone, "\n  "))
	}

	// The paths read from ops.go and the console's page and assets (named
	// by the page) answer as the document says: what the switch names is
	// what the process serves, and the console's asset names fit
	// /console/{asset}.
	api := apitest.New("http://" + g.Addr())
	api.Bearer = cfg.Token
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	paths := append(slices.Clone(opsPaths), console.Prefix)
	page := api.Get(t, console.Prefix, nil)
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"/:]+)"`).FindAllStringSubmatch(string(page.Body), -1) {
		paths = append(paths, console.Prefix+m[1])
	}
	if len(paths) < len(opsPaths)+3 {
		t.Fatalf("the console page names no script and style: %s", page.Body)
	}
	for _, p := range paths {
		r := api.Get(t, p, http.Header{"Accept-Encoding": {"identity"}})
		if r.Status != http.StatusOK && p != "/readyz" { // ready or not, as documented
			t.Errorf("GET %s: %s", p, r)
			continue
		}
		if err := answersAsDocumented(router, p, r); err != nil {
			t.Errorf("GET %s: %v", p, err)
		}
	}
}

// answersAsDocumented validates a GET of path and its answer r against the
// document.
func answersAsDocumented(router routers.Router, path string, r *apitest.Reply) error {
	req, err := http.NewRequest(http.MethodGet, "http://gateway"+path, nil)
	if err != nil {
		return err
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("no operation of the document: %w", err)
	}
	for _, mt := range []string{"text/html", "text/css", "text/javascript"} {
		if openapi3filter.RegisteredBodyDecoder(mt) == nil {
			openapi3filter.RegisterBodyDecoder(mt, openapi3filter.PlainBodyDecoder)
		}
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: r.Status, Header: r.Header, Options: opts}
	out.SetBodyBytes(r.Body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	return nil
}

// opsServerPaths reads the paths (*opsServer).ServeHTTP answers itself:
// the case values of its switch on r.URL.Path, string literals or
// apidoc's path constants.
func opsServerPaths(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "ops.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{"PathHome": apidoc.PathHome, "PathPage": apidoc.PathPage, "PathDocument": apidoc.PathDocument,
		"PathStyle": apidoc.PathStyle, "PathScript": apidoc.PathScript}
	var paths []string
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Name.Name != "ServeHTTP" || fn.Recv == nil {
			continue
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			cc, ok := n.(*ast.CaseClause)
			if !ok {
				return true
			}
			for _, e := range cc.List {
				switch v := e.(type) {
				case *ast.BasicLit:
					if s, err := strconv.Unquote(v.Value); err == nil {
						paths = append(paths, s)
					}
				case *ast.SelectorExpr:
					if x, ok := v.X.(*ast.Ident); ok && x.Name == "apidoc" {
						if s, ok := consts[v.Sel.Name]; ok {
							paths = append(paths, s)
						} else {
							t.Fatalf("ops.go names apidoc.%s: add it to opsServerPaths", v.Sel.Name)
						}
					}
				default:
					t.Fatalf("ops.go's ServeHTTP switch has a case this test cannot read: %T", e)
				}
			}
			return true
		})
	}
	return paths
}
