package leaderread_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/schemas/streams"
)

// TestSubjectReadsEveryMessage: Subject and SubjectOnLeader read every
// message of a subject in stream order, across several batches of the
// batched direct get, and none of a subject beside it; a subject without
// messages reads nothing. Subject from a time reads what was stored from
// then on, SubjectOnLeader from a sequence what was stored from there.
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
	var mid time.Time
	for i := range n {
		if i == n/2 {
			time.Sleep(5 * time.Millisecond) // the broker's clock: a timestamp between the halves
			mid = time.Now()
			time.Sleep(5 * time.Millisecond)
		}
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
	fromStart := func(ctx context.Context, subject string, fn func(*jetstream.RawStreamMsg) error) error {
		return r.Subject(ctx, subject, time.Time{}, fn)
	}
	onLeader := func(ctx context.Context, subject string, fn func(*jetstream.RawStreamMsg) error) error {
		return r.SubjectOnLeader(ctx, subject, 0, time.Time{}, fn)
	}
	for name, read := range map[string]func(context.Context, string, func(*jetstream.RawStreamMsg) error) error{
		"Subject": fromStart, "SubjectOnLeader": onLeader,
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

	for name, read := range map[string]func(func(*jetstream.RawStreamMsg) error) error{
		"Subject since the middle": func(fn func(*jetstream.RawStreamMsg) error) error { return r.Subject(ctx, mine, mid, fn) },
		"SubjectOnLeader from the middle": func(fn func(*jetstream.RawStreamMsg) error) error {
			return r.SubjectOnLeader(ctx, mine, want[n/2], time.Time{}, fn)
		},
		"SubjectOnLeader since the middle": func(fn func(*jetstream.RawStreamMsg) error) error {
			return r.SubjectOnLeader(ctx, mine, 0, mid, fn)
		},
	} {
		var got []uint64
		if err := read(func(m *jetstream.RawStreamMsg) error { got = append(got, m.Sequence); return nil }); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != n-n/2 || got[0] != want[n/2] {
			t.Fatalf("%s: %d messages from %v, want %d from %d", name, len(got), got[:min(1, len(got))], n-n/2, want[n/2])
		}
	}
}
