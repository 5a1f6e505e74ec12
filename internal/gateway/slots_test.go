package gateway

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestProjectionSlots: projector processes sharing a data directory (a
// compose volume every replica mounts) each take a slot of their own; one
// more than the slots is refused with a clear error; a slot freed (a
// replica stopped) is taken again by the next, which finds its store.
func TestProjectionSlots(t *testing.T) {
	data := t.TempDir()
	if dir, release, err := projectionDir(data, 1); err != nil || dir != filepath.Join(data, "projection") || release() != nil {
		t.Fatalf("one slot: %q %v, want %s/projection as always", dir, err, data)
	}
	a, releaseA, err := projectionDir(data, 2)
	if err != nil {
		t.Fatal(err)
	}
	b, releaseB, err := projectionDir(data, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseB()
	if a == b || a != filepath.Join(data, "projection-0") || b != filepath.Join(data, "projection-1") {
		t.Fatalf("two claims: %q and %q, want projection-0 and projection-1", a, b)
	}
	if _, _, err := projectionDir(data, 2); err == nil || !strings.Contains(err.Error(), "all 2 projection slots") {
		t.Fatalf("a third claim of two slots: %v, want refused", err)
	}
	if err := releaseA(); err != nil {
		t.Fatal(err)
	}
	c, releaseC, err := projectionDir(data, 2)
	if err != nil || c != a {
		t.Fatalf("after the first was freed: %q %v, want %q", c, err, a)
	}
	_ = releaseC()
}
