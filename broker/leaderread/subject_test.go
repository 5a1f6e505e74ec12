package leaderread_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestSubjectReadsEveryMessage: Subject and SubjectOnLeader read every
// message of a subject in stream order, across several batches of the
// batched direct get, and none of a subject beside it; a subject without
// messages reads nothing.
func TestSubjectReadsEveryMessage(t *testing.T) {
	br := brokertest.Start(t)
	ctx := context.Background()
	r, err := leaderread.Open(ctx, br.JS, streams.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	mine, other := streams.InboxSubject("device-a"), streams.InboxSubject("device-b")
	const n = 1300 // more than two batches
	var want []uint64
	for i := range n {
		ack, err := br.JS.Publish(ctx, mine, fmt.Appendf(nil, "%d", i))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, ack.Sequence)
		if i%3 == 0 {
			if _, err := br.JS.Publish(ctx, other, []byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, read := range map[string]func(context.Context, string, func(*jetstream.RawStreamMsg) error) error{
		"Subject": r.Subject, "SubjectOnLeader": r.SubjectOnLeader,
	} {
		var got []uint64
		err := read(ctx, mine, func(m *jetstream.RawStreamMsg) error {
			if m.Subject != mine || string(m.Data) != fmt.Sprint(len(got)) {
				return fmt.Errorf("message %d: %s %q", len(got), m.Subject, m.Data)
			}
			got = append(got, m.Sequence)
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != n || got[0] != want[0] || got[n-1] != want[n-1] {
			t.Fatalf("%s: %d messages (%v..), want %d (%d..%d)", name, len(got), got[:min(3, len(got))], n, want[0], want[n-1])
		}
		none := 0
		if err := read(ctx, streams.InboxSubject("device-c"), func(*jetstream.RawStreamMsg) error { none++; return nil }); err != nil || none != 0 {
			t.Fatalf("%s of an empty subject: %d messages, %v", name, none, err)
		}
	}
}
