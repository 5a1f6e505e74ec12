package alerts

import (
	"fmt"
	"testing"

	"github.com/go-json-experiment/json"
)

// TestGroupRecordFitsABrokerMessage: the record of a group of 20,000
// alerts (an outage's, within the Alertmanager route's 16 MiB body) is
// cut to the most recently named that fit well under the broker's 1 MiB
// message; written whole, every notification of the group would be
// refused by the broker, answered 503, and resent by Alertmanager for
// good.
func TestGroupRecordFitsABrokerMessage(t *testing.T) {
	var g Group
	for i := range 20_000 {
		g.Members = append(g.Members, Member{Value: fmt.Sprintf("%016x", i), EventID: fmt.Sprintf("%032x", i), Severity: "critical"})
	}
	old := groupRecord{Members: map[string]groupMember{}}
	for i := range 100 {
		old.Members[fmt.Sprintf("old%013x", i)] = groupMember{Seen: 1, Severity: "critical", Event: fmt.Sprintf("%032x", i)}
	}
	next, gone := old.next(g, 1_000, 0) // truncated: nothing gone, the old members kept if they fit
	if len(gone) != 0 {
		t.Fatalf("gone %d", len(gone))
	}
	b, err := json.Marshal(groupRecord{Members: next}, json.Deterministic(true))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > maxGroupRecordBytes || len(next) < 6_000 {
		t.Fatalf("record of %d members in %d bytes, want at least 6,000 within %d", len(next), len(b), maxGroupRecordBytes)
	}
	for v, m := range next {
		if m.Seen != 1_000 {
			t.Fatalf("kept %s, named at %d, over members named now", v, m.Seen)
		}
	}
}
