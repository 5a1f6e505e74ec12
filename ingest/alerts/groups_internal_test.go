package alerts

import (
	"fmt"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
)

// TestGroupRecordFitsABrokerMessage: the record of a group of 20,000
// alerts (an outage's, within the Alertmanager route's 16 MiB body), or of
// 3,000 whose hand-made fingerprints are 256 control characters (6 bytes
// each encoded), is cut to the most recently named that fit under the
// broker's 1 MiB message; written whole, every notification of the group
// would be refused by the broker, answered 503, and resent by the sender
// for good.
func TestGroupRecordFitsABrokerMessage(t *testing.T) {
	for _, c := range []struct {
		name     string
		n, least int
		value    func(i int) string
	}{
		{"16-digit fingerprints", 20_000, 6_000, func(i int) string { return fmt.Sprintf("%016x", i) }},
		{"256 control characters", 3_000, 400, func(i int) string { return fmt.Sprintf("%08x", i) + strings.Repeat("\x01", 248) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			var g Group
			for i := range c.n {
				g.Members = append(g.Members, Member{Value: c.value(i), EventID: fmt.Sprintf("%032x", i), Severity: "critical"})
			}
			old := groupRecord{Members: map[string]groupMember{}}
			for i := range 100 {
				old.Members[fmt.Sprintf("old%013x", i)] = groupMember{Seen: 1_700_000_000_000, Severity: "critical", Event: fmt.Sprintf("%032x", i)}
			}
			// Truncated: nothing gone, the old members kept if they fit.
			next, gone := old.next(g, 1_800_000_000_000, 0)
			if len(gone) != 0 {
				t.Fatalf("gone %d", len(gone))
			}
			b, err := json.Marshal(groupRecord{Members: next}, json.Deterministic(true))
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > maxGroupRecordBytes || len(next) < c.least {
				t.Fatalf("record of %d members in %d bytes, want at least %d within %d", len(next), len(b), c.least, maxGroupRecordBytes)
			}
			for v, m := range next {
				if m.Seen != 1_800_000_000_000 {
					t.Fatalf("kept %q, named at %d, over members named now", v, m.Seen)
				}
			}
		})
	}
}

// TestAStaleResolveKeepsTheAlertsRecord: a lagging peer of an Alertmanager
// pair resolves an occurrence another notification superseded (its Close
// applied to nothing: Absent); the group's record keeps the alert with the
// Event it names, which the alert's own resolve, or its leaving the group,
// closes later. It dropped the alert, and nothing closed that Event if its
// resolve never came. A resolve that applied still drops it.
func TestAStaleResolveKeepsTheAlertsRecord(t *testing.T) {
	const then, now = 1_700_000_000_000, 1_800_000_000_000
	old := groupRecord{Members: map[string]groupMember{"A": {Seen: then, Severity: "critical", Event: "e2"}}}
	next, gone := old.next(Group{Complete: true, Members: []Member{{Value: "A", Resolved: true, Stale: true}}}, now, now)
	if len(gone) != 0 || next["A"] != old.Members["A"] {
		t.Fatalf("after a stale resolve: record %v, gone %v; want A kept naming e2", next, gone)
	}
	next, gone = old.next(Group{Complete: true, Members: []Member{{Value: "A", Resolved: true}}}, now, now)
	if _, kept := next["A"]; kept || len(gone) != 0 {
		t.Fatalf("after a resolve that applied: record %v, gone %v; want A dropped", next, gone)
	}
}
