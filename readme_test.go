package main

import (
	"os"
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
	for _, e := range apierr.Catalog() {
		row := "| " + itoa(e.Status) + " | `" + string(e.Code) + "` |"
		if !strings.Contains(readme, row) {
			t.Errorf("README.md has no row %q", row)
		}
	}
}

func itoa(n int) string {
	s := ""
	for ; n > 0; n /= 10 {
		s = string(rune('0'+n%10)) + s
	}
	return s
}
