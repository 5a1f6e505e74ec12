package gateway

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestProjectionSlots: projector processes sharing a data directory (a
// compose volume every replica mounts) each take a slot of their own; one
// more than the slots is refused with a clear error; a slot freed (a
// replica stopped) is taken again by the next, which finds its store. The
// default single slot is claimed as well.
func TestProjectionSlots(t *testing.T) {
	data := t.TempDir()
	one, releaseOne, err := projectionDir(data, 1)
	if err != nil || one != filepath.Join(data, "projection") {
		t.Fatalf("one slot: %q %v, want %s/projection as always", one, err, data)
	}
	// The one slot is claimed too: a second claim (another process on
	// this data directory) is refused, saying so, until it is freed.
	if _, _, err := projectionDir(data, 1); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("a second claim of the one slot: %v, want refused as in use", err)
	}
	if err := releaseOne(); err != nil {
		t.Fatal(err)
	}
	if _, release, err := projectionDir(data, 1); err != nil || release() != nil {
		t.Fatalf("the one slot after it was freed: %v", err)
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
