package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pushgo/gateway/broker"
)

// TestRunKeepsAndExplains: a second run changes nothing; a seed file that
// is not a seed (an interrupted older run) is refused with the way out,
// and the seeds are written whole (no temporary file left behind).
func TestRunKeepsAndExplains(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(filepath.Join(dir, "nkeys.env"))
	if err != nil {
		t.Fatal(err)
	}
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "nkeys.env")); string(again) != string(first) {
		t.Fatalf("a second run changed nkeys.env:\n%s\nthen\n%s", first, again)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("a temporary file left behind: %s", e.Name())
		}
	}
	seed := broker.CredentialsFile(dir, broker.Roles[0])
	if err := os.WriteFile(seed, []byte("SUA"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(dir); err == nil || !strings.Contains(err.Error(), "delete it and run again") {
		t.Fatalf("a truncated seed: %v, want an error saying to delete it", err)
	}
}

// TestStrayArgumentRefused: an argument that is no flag is refused, where
// flag stopped at it and the keys went to the default directory.
func TestStrayArgumentRefused(t *testing.T) {
	if _, err := parseArgs([]string{"deploy/keys2"}); err == nil {
		t.Fatal("a stray argument was accepted")
	}
	if dir, err := parseArgs([]string{"-dir", "x"}); err != nil || dir != "x" {
		t.Fatalf("-dir x: %q %v", dir, err)
	}
}
