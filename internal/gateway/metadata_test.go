package gateway

import (
	"fmt"
	"strings"
	"testing"
)

// TestMetadataValueMax: a 4 KiB metadata value (a task plugin's card) is
// refused with PushGo's default limit and accepted, and kept whole, with
// PUSHGO_METADATA_VALUE_MAX=16384.
func TestMetadataValueMax(t *testing.T) {
	card := strings.Repeat("x", 4096)
	msg := func(it *integ) (int, map[string]any) {
		s, _, m := it.pushgo("/message", map[string]any{"channel_id": it.channel, "password": it.password, "title": "card",
			"metadata": map[string]any{"card": card}})
		return s, m
	}
	def := startIntegrations(t, "meta-default")
	if s, m := msg(def); s != 400 || m["error_code"] != "metadata_value_too_long" {
		t.Fatalf("default limit: %d %v", s, m)
	}
	wide := startIntegrations(t, "meta-wide", func(c *Config) { c.MetadataValueMax = 16 << 10 })
	if s, m := msg(wide); s != 200 {
		t.Fatalf("16 KiB limit: %d %v", s, m)
	}
	hist := wide.history()
	if len(hist) != 1 || !strings.Contains(fmt.Sprint(hist[0]), card) {
		t.Fatalf("history does not hold the whole value: %d items", len(hist))
	}
}
