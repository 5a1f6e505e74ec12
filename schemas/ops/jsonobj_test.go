package ops

import (
	"sync"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
)

// TestObjectValidationConcurrent runs the validators that read a JSON
// object with decodeObject's pooled decoders (attrs, metadata,
// external_ids) on values they accept and values they refuse part-way
// through (a duplicate member name, the decoder's own check; an array; an
// object nested too deep; a number out of range; a value cut short), once
// in turn and then from eight goroutines at once, and requires the same
// outcome every time. A decoder reused after another value, or after an
// aborted read, must carry nothing over: no member name seen (a name would
// read as a duplicate, or a duplicate be missed), no bytes, no position.
// The values go to the validators directly: wire.Decode, which every
// request passes first, would refuse the duplicates before them.
func TestObjectValidationConcurrent(t *testing.T) {
	attrsOf := func(v string) func() *apierr.Error {
		return func() *apierr.Error { _, err := attrs(jsontext.Value(v)); return err }
	}
	metadataOf := func(v string) func() *apierr.Error {
		return func() *apierr.Error { _, err := metadata(jsontext.Value(v), newRules(nil)); return err }
	}
	externalIDsOf := func(v string) func() *apierr.Error {
		return func() *apierr.Error { _, err := externalIDs(jsontext.Value(v)); return err }
	}
	cases := []struct {
		name     string
		validate func() *apierr.Error
		want     apierr.Code // "" when accepted
	}{
		{"attrs", attrsOf(`{"cpu":91.5,"host":"web-1","labels":{"job":"node","up":true},"gone":null}`), ""},
		{"attrs, the names of the last", attrsOf(`{"host":"web-2","labels":{"job":"api"},"cpu":1}`), ""},
		{"attrs duplicate", attrsOf(`{"host":"web-1","cpu":1,"host":"web-2"}`), apierr.AttrsInvalid},
		{"attrs nested duplicate", attrsOf(`{"labels":{"job":"node","job":"api"}}`), apierr.AttrsInvalid},
		{"attrs array", attrsOf(`{"a":1,"b":{"c":[1]}}`), apierr.ExtensionObjectArraysUnsupported},
		{"attrs too deep", attrsOf(`{"a":1,"b":{"c":{"d":1}}}`), apierr.ExtensionObjectNestedObjectUnsupported},
		{"attrs number out of range", attrsOf(`{"a":1,"big":1e999}`), apierr.InvalidJSONData},
		{"attrs cut short", attrsOf(`{"host":"web-1","labels":{"job":`), apierr.AttrsInvalid},
		{"attrs trailing data", attrsOf(`{"host":"web-1"} {}`), apierr.AttrsInvalid},
		{"metadata", metadataOf(`{"team":"sre","tier":"1"}`), ""},
		{"metadata duplicate", metadataOf(`{"team":"sre","team":"ops"}`), apierr.MetadataInvalid},
		{"external_ids", externalIDsOf(`{"github":"nas","jira":"NAS-1"}`), ""},
		{"external_ids duplicate", externalIDsOf(`{"jira":"a","jira":"b"}`), apierr.ExternalIDsValueInvalid},
	}
	outcome := func(i int) apierr.Code {
		if err := cases[i].validate(); err != nil {
			return err.Code
		}
		return ""
	}
	for i, c := range cases {
		if got := outcome(i); got != c.want {
			t.Fatalf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 400 {
				i := (g*7 + n*5) % len(cases)
				if got := outcome(i); got != cases[i].want {
					t.Errorf("%s, validated concurrently: got %q, want %q", cases[i].name, got, cases[i].want)
					return
				}
			}
		})
	}
	wg.Wait()
}
