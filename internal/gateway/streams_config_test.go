package gateway

import (
	"strings"
	"testing"

	"github.com/pushgo/gateway/ingest/livestream"
)

// TestStreamCapsConfig: PUSHGO_STREAMS_MAX and PUSHGO_STREAMS_PER_CHANNEL_MAX
// (and their flags) set the caps on open GET /channel/stream streams; by
// default they are on; a value that is not a positive integer is refused.
func TestStreamCapsConfig(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	c, err := Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxStreams != livestream.DefaultMaxStreams || c.MaxStreamsPerChannel != livestream.DefaultMaxPerChannel {
		t.Fatalf("defaults %d, %d", c.MaxStreams, c.MaxStreamsPerChannel)
	}
	c, err = Load([]string{"-streams-per-channel-max", "4"}, env(map[string]string{"PUSHGO_STREAMS_MAX": "70", "PUSHGO_STREAMS_PER_CHANNEL_MAX": "3"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxStreams != 70 || c.MaxStreamsPerChannel != 4 {
		t.Fatalf("got %d, %d, want 70 (env) and 4 (flag)", c.MaxStreams, c.MaxStreamsPerChannel)
	}
	for _, bad := range []map[string]string{{"PUSHGO_STREAMS_MAX": "0"}, {"PUSHGO_STREAMS_PER_CHANNEL_MAX": "many"}} {
		if _, err := Load(nil, env(bad)); err == nil || !strings.Contains(err.Error(), "PUSHGO_STREAMS_") {
			t.Fatalf("%v: %v, want a refusal naming the variable", bad, err)
		}
	}
}
