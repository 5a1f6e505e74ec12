package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
)

// TestReadmeListsEveryCode keeps the README's error table in step with the
// catalog: a new code must be documented, with its status.
func TestReadmeListsEveryCode(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	known := map[string]bool{}
	for _, e := range apierr.Catalog() {
		row := "| " + itoa(e.Status) + " | `" + string(e.Code) + "` |"
		known[row] = true
		if !strings.Contains(readme, row) {
			t.Errorf("README.md has no row %q", row)
		}
	}
	// And the reverse: a row for a code the catalog no longer has (or with
	// another status) is a promise the gateway does not keep.
	for _, m := range errorRow.FindAllStringSubmatch(readme, -1) {
		if !known[m[1]] {
			t.Errorf("README.md has a row %q for a code the catalog does not have with that status", m[1])
		}
	}
}

// errorRow matches the start of a row of the README's error table.
var errorRow = regexp.MustCompile("(?m)^(\\| [1-5][0-9][0-9] \\| `[a-z0-9_]+` \\|)")

func itoa(n int) string {
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}
