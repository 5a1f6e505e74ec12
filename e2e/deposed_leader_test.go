package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/broker/leaderread"
	"github.com/pushgo/gateway/broker/provision"
	"github.com/pushgo/gateway/ingest/oplog"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
	"github.com/pushgo/gateway/schemas/wire"
)

// TestDeposedLeaderNotFoundIsNotA404: three nats-server processes on
// deploy/nats/nats.conf; PUSHGO_OPS's leader L is stopped (SIGSTOP) long
// enough for the others to elect a leader and for their routes to L to be
// dropped (nats.conf: 2 s pings, 3 missed), events are created through a
// writer attached to another node, and L is resumed before its own
// lost-quorum check (10 s) would step it down. Until its routes are back
// and it hears of the new term, L believes it leads the stream and answers
// the leader's get ($JS.API.STREAM.MSG.GET) from its stale store: "no
// message" for every event created after it stopped. A writer attached to
// L updates those events around the resume, with the same op_id until it
// gets an answer other than 503, as a client retries: none may answer 404
// event_not_found, and every one is stored in the end. Before, about all
// the updates answered in that window were 404s (39 of 40 in the round
// the stale answers showed). A raw leader get through L counts the stale
// answers, to tell a round that provoked them from one L left at once.
//
// A round provokes them when the election came early enough (the
// followers' election timeouts are random, 4 to 9 s) and L missed its
// lost-quorum check; rounds go on until one did, six at most.
func TestDeposedLeaderNotFoundIsNotA404(t *testing.T) {
	t.Parallel()
	c := startCluster(t)
	admin := dialJS(t, c.url)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	so := streams.DefaultOptions()
	so.Replicas = 3
	if err := provision.EnsureWhenReady(ctx, admin.js, so, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	seed := credsFile(t, c.url, "admin")
	connect := func(url string) jetstream.JetStream {
		creds, err := nats.NkeyOptionFromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		// nats.go's default pings (2 minutes): the connection stays on
		// the stopped server, as a gateway process's did.
		nc, err := nats.Connect(url, creds, nats.Timeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	const rounds, events = 6, 40
	provoked := 0
	for round := range rounds {
		c.waitReplicasCurrent(admin, streams.Ops, 2*time.Minute)
		leaderName := c.leader(admin, streams.Ops)
		L := c.node(leaderName)
		other := c.nodes[(slices.Index(c.nodes, L)+1)%len(c.nodes)]
		jsL, jsO := connect(L.url()), connect(other.url())
		octx, ocancel := context.WithTimeout(context.Background(), 10*time.Second)
		raw, err := leaderread.Open(octx, jsL, streams.Ops)
		if err != nil {
			t.Fatal(err)
		}
		wL, err := oplog.New(octx, jsL, oplog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		wO, err := oplog.New(octx, jsO, oplog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		// An append just before the stop: L heard from its followers a
		// moment before it, so its lost-quorum check passes if it is
		// resumed within 10 s.
		channelID := ids.NewChannelID()
		if _, aerr := wL.Append(octx, deposedEvent(t, ops.EventCreate, channelID, fmt.Sprintf("warm-%d", round), "")); aerr != nil {
			t.Fatal(aerr)
		}
		ocancel()

		c.pause(L)
		stoppedAt := time.Now()
		next := c.waitLeaderElected(&jsConn{js: jsO}, streams.Ops, leaderName, 30*time.Second)
		elected := time.Since(stoppedAt)
		var created, subjects []string
		for i := range events {
			actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
			res, aerr := wO.Append(actx, deposedEvent(t, ops.EventCreate, channelID, fmt.Sprintf("create-%d-%d", round, i), ""))
			acancel()
			if aerr != nil {
				t.Fatalf("create %d through %s: %v", i, other.name, aerr)
			}
			created = append(created, res.EntityID)
			subjects = append(subjects, streams.OpSubject(channelID, ops.KindEvent, res.EntityID))
		}
		// Resumed 9.3 s after the stop (the routes to L are gone by then),
		// or 1 s after the creates when the election came late.
		resumeAt := stoppedAt.Add(9300 * time.Millisecond)
		if time.Until(resumeAt) < time.Second {
			resumeAt = time.Now().Add(time.Second)
		}
		end := resumeAt.Add(5 * time.Second)

		var (
			mu        sync.Mutex
			resumedAt time.Time
			stale     []time.Duration // the raw leader gets' "none"s, after the resume
			rawErrs   int
			answers   = map[string]int{} // the updates' final answers
			retried   int                // their 503s
			why503    []string
		)
		since := func() time.Duration {
			if resumedAt.IsZero() {
				return -1
			}
			return time.Since(resumedAt)
		}
		var wg sync.WaitGroup
		// The raw leader gets start before the resume: their requests wait
		// in L's socket and are among the first it answers.
		time.Sleep(time.Until(resumeAt.Add(-2 * time.Second)))
		for g := range 4 {
			wg.Go(func() {
				for i := g; time.Now().Before(end); i++ {
					rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
					_, err := raw.LastForSubject(rctx, subjects[i%len(subjects)])
					rcancel()
					mu.Lock()
					switch {
					case errors.Is(err, jetstream.ErrMsgNotFound):
						stale = append(stale, since())
					case err != nil:
						rawErrs++
					}
					mu.Unlock()
				}
			})
		}
		// The updates through the writer attached to L, each retried
		// with its op_id after a 503, as a client does.
		for g := range len(created) {
			wg.Go(func() {
				time.Sleep(time.Until(resumeAt.Add(-time.Second)))
				for i := g; i < len(created); i += len(created) {
					opID := fmt.Sprintf("update-%d-%d", round, i)
					for {
						actx, acancel := context.WithTimeout(context.Background(), 5*time.Second)
						_, aerr := wL.Append(actx, deposedEvent(t, ops.EventUpdate, channelID, opID, created[i]))
						acancel()
						mu.Lock()
						if aerr != nil && aerr.Status() == 503 && time.Now().Before(end.Add(20*time.Second)) {
							retried++
							if len(why503) < 3 {
								why503 = append(why503, aerr.Error())
							}
							mu.Unlock()
							time.Sleep(100 * time.Millisecond)
							continue
						}
						code := "200"
						if aerr != nil {
							code = string(aerr.Code)
						}
						answers[code]++
						mu.Unlock()
						break
					}
				}
			})
		}
		time.Sleep(time.Until(resumeAt))
		mu.Lock()
		c.resume(L)
		resumedAt = time.Now()
		mu.Unlock()
		wg.Wait()
		wL.Close()
		wO.Close()

		mu.Lock()
		t.Logf("round %d: %s stopped; %s elected after %s; resumed after %s: the leader's get through %s answered %d stale \"none\"s %s (%d errors); updates through %s: %v, after %d 503s (%q)",
			round, leaderName, next, elected.Round(time.Millisecond), resumedAt.Sub(stoppedAt).Round(time.Millisecond),
			leaderName, len(stale), window(stale), rawErrs, leaderName, answers, retried, why503)
		if answers["200"] != len(created) {
			t.Errorf("round %d: %d of %d updates of events whose create was acknowledged were stored (answers %v)", round, answers["200"], len(created), answers)
		}
		if n := answers[string(apierr.EventNotFound)]; n > 0 {
			t.Errorf("round %d: %d updates answered 404 %s for an event whose create was acknowledged", round, n, apierr.EventNotFound)
		}
		if len(stale) > 0 {
			provoked++
		}
		mu.Unlock()
		if provoked > 0 || t.Failed() {
			break
		}
	}
	// Bad input is still refused: an event nobody created, through a
	// writer on each node.
	c.waitReplicasCurrent(admin, streams.Ops, 2*time.Minute)
	channelID := ids.NewChannelID()
	for _, n := range c.nodes {
		w, err := oplog.New(ctx, connect(n.url()), oplog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		// As a client does: a 503 (the cluster still settling after the
		// rounds: a lapsed lease, a stalled server) is asked again after
		// its Retry-After, until the 404 or the bound.
		var aerr *apierr.Error
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Second) {
			_, aerr = w.Append(ctx, deposedEvent(t, ops.EventUpdate, channelID, "unknown", ids.DeriveEntityID(channelID, string(ops.EventCreate), "never-sent")))
			if aerr == nil || aerr.Code != apierr.AppendUnavailable || time.Now().After(deadline) {
				break
			}
		}
		w.Close()
		if aerr == nil || aerr.Code != apierr.EventNotFound {
			t.Errorf("an update of an unknown event through %s: %v, want 404 %s (within a minute of 503s)", n.name, aerr, apierr.EventNotFound)
		}
	}
	if provoked == 0 {
		t.Skipf("no round of %d provoked a stale answer of the resumed leader: nothing shown", rounds)
	}
}

func deposedEvent(t *testing.T, op ops.Name, channelID, opID, eventID string) *ops.Validated {
	t.Helper()
	at := wire.Millis(1_800_000_000_000)
	p := func(s string) *string { return &s }
	r := &ops.EventRequest{ChannelID: p(channelID), Status: p("open"), Message: p("m"), Severity: p("high"), EventTime: &at, OpID: p(opID)}
	if op == ops.EventCreate {
		r.Title = p("disk full")
	} else {
		r.EventID = p(eventID)
	}
	v, aerr := ops.ValidateIntegrationEvent(op, r)
	if aerr != nil {
		t.Fatalf("validate %s: %v", op, aerr)
	}
	return v
}

// window describes when the stale answers came, relative to the resume
// (negative: before it, which cannot be).
func window(ds []time.Duration) string {
	if len(ds) == 0 {
		return ""
	}
	return fmt.Sprintf("between %s and %s after the resume", slices.Min(ds).Round(time.Millisecond), slices.Max(ds).Round(time.Millisecond))
}
