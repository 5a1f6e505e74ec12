package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCheckTokenAgreesWithParseBearer: a token CheckToken passes is one a
// request can present, through a real HTTP round trip, and ParseBearer
// takes; one it refuses never reaches the handler as itself.
func TestCheckTokenAgreesWithParseBearer(t *testing.T) {
	var got string
	var ok bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok = ParseBearer(r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	for _, tok := range []string{"abc", strings.Repeat("x", MaxBearerLen), "abc\r", "abc ", " abc", "a\tb", "a b",
		strings.Repeat("x", MaxBearerLen+1), "a\x00b", "a\x7fb", "tök"} {
		got, ok = "", false
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		arrived := err == nil && ok && got == tok
		if valid := CheckToken(tok) == nil; valid != arrived {
			t.Errorf("%q: CheckToken says usable %v, a request presented it %v (%v)", tok, valid, arrived, err)
		}
	}
}
