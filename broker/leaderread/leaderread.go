// Package leaderread reads a JetStream stream's messages, and a key-value
// bucket's entries, as the stream's leader holds them.
//
// Why it exists: the gateway's streams and buckets allow direct gets
// (AllowDirect), which every replica of a stream answers, and a client's
// direct get is answered by the replica on the server it is attached to. A
// follower applies a write only after the leader has acknowledged it (at
// quorum), so right after a write acknowledged through one process a direct
// get through another may answer from a follower that does not hold it yet:
// "not found" for an entity or a channel created a moment ago, a
// subject's previous last message, a sequence the consumer just
// delivered. Measured on a 3-node cluster: about half of the direct gets
// made right after the write's acknowledgement missed it.
//
// The contract:
//
//   - LastForSubject (Stream) and Latest (Bucket) are the leader's answer:
//     they hold every write acknowledged before the call. They ask the
//     non-direct $JS.API.STREAM.MSG.GET, which only the stream's leader
//     answers.
//   - Msg and NextForSubject (Stream) and Get (Bucket) are direct gets
//     whose "not found" is confirmed by the leader before it is returned.
//     A message found by sequence is the same on every replica, so Msg's
//     content is exact; NextForSubject's found message is too (a follower
//     holds a prefix of the leader's log). But a follower applies a delete
//     after the leader has answered it, so a message found through a
//     replica (Msg, NextForSubject, Subject) may be one deleted an instant
//     before: OnLeader says which of them the leader still holds. Get's found entry may be a revision
//     older than the leader's: use it only where a compare-and-swap on its
//     revision catches that (the broker's leader checks the revision), or
//     where an older value decides nothing.
//   - When the stream has one replica, its server is the leader and a
//     direct get is the leader's answer: every read is then a direct get,
//     with no second round trip. Replicated reports which case holds,
//     from the stream's configured replicas, read again every
//     replicasRecheck (a deployment scaled from one replica to three is
//     noticed without a restart).
//
// A read the leader cannot answer (no leader during an election, the
// broker away) returns an error: callers answer 503, never a guess.
//
// A leader's answer is not linearizable. The non-direct get is answered by
// whichever server believes it leads the stream, and a deposed leader
// believes so until it hears of the new term: a server stopped (SIGSTOP, a
// stalled VM) or cut off while another was elected, and resumed, answers
// from its stale store, "not found" for what the new leader stored, until
// it hears of the new term and steps down (measured on three nats-server
// 2.15.2 processes, e2e's TestDeposedLeaderNotFoundIsNotA404: from a few
// milliseconds to 1.1 s after the resume; direct gets through its server
// and non-direct gets of a stream without AllowDirect alike). A stale
// "found" is an older message, which a compare-and-swap catches; a stale
// "none" that decides an answer on its own (a 404) is confirmed first:
// ConfirmNone.
package leaderread

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// replicasRecheck is how long a stream's configured replicas are trusted
// before the stream's info is read again.
const replicasRecheck = 30 * time.Second

// Stream reads one stream. It is safe for concurrent use.
type Stream struct {
	js      jetstream.JetStream
	direct  jetstream.Stream
	name    string
	subject string // the stream's $JS.API.STREAM.MSG.GET subject
	// infoSubject is the stream's $JS.API.STREAM.INFO subject.
	infoSubject string
	// directSubject is the stream's $JS.API.DIRECT.GET subject.
	directSubject string

	replicas   atomic.Pointer[replicaCount]
	refreshing atomic.Bool

	// stalls, when WatchStalls started it, watches the stalls of the
	// server the reads go through, for ConfirmNone.
	stalls atomic.Pointer[stallWatch]

	// gets bounds OnLeader's gets in flight through this Stream, all its
	// callers together (leaderGetsPerStream).
	gets chan struct{}
}

type replicaCount struct {
	n  int
	at time.Time
	// trimmed: the stream's first sequence was above 1 when read (it has
	// lost operations to its limits or a purge); it never goes back.
	trimmed bool
}

// Open opens stream name of js.
func Open(ctx context.Context, js jetstream.JetStream, name string) (*Stream, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", name, err)
	}
	return New(js, s), nil
}

// New reads the stream s, opened from js: its configured replicas are
// taken from s.CachedInfo().
func New(js jetstream.JetStream, s jetstream.Stream) *Stream {
	info := s.CachedInfo()
	prefix := apiPrefix(js.Options())
	r := &Stream{js: js, direct: s, name: info.Config.Name, subject: prefix + "STREAM.MSG.GET." + info.Config.Name,
		directSubject: prefix + "DIRECT.GET." + info.Config.Name, infoSubject: prefix + "STREAM.INFO." + info.Config.Name, gets: make(chan struct{}, leaderGetsPerStream)}
	r.replicas.Store(&replicaCount{n: info.Config.Replicas, at: time.Now(), trimmed: info.State.FirstSeq > 1})
	return r
}

// apiPrefix is the JetStream API prefix js sends its requests under, as
// jetstream.New, NewWithAPIPrefix and NewWithDomain make it.
func apiPrefix(o jetstream.JetStreamOptions) string {
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		if !strings.HasSuffix(o.APIPrefix, ".") {
			return o.APIPrefix + "."
		}
		return o.APIPrefix
	}
	return jetstream.DefaultAPIPrefix
}

// Direct is the stream handle whose gets any replica answers: for reads
// whose staleness is caught by a compare-and-swap or decides nothing.
func (s *Stream) Direct() jetstream.Stream { return s.direct }

// Replicated reports whether a direct get may be answered by a follower:
// the stream has more than one replica, or its info could not be read
// (then the leader is asked, which costs a round trip and risks nothing).
func (s *Stream) Replicated(ctx context.Context) bool {
	rc, ok := s.info(ctx)
	return !ok || rc.n != 1 // unread: asked again by the next call
}

// Trimmed reports whether the stream has lost operations (its first
// sequence is above 1: its limits, PUSHGO_RETENTION for the log, or a
// purge removed some), as read at most replicasRecheck ago; true when the
// stream's info could not be read. A stream that was trimmed stays so, so
// a stale answer errs only in the first moments after its first loss.
func (s *Stream) Trimmed(ctx context.Context) bool {
	rc, ok := s.info(ctx)
	return !ok || rc.trimmed
}

// info is the stream's configured replicas and whether it was trimmed,
// read again from the broker when older than replicasRecheck (by one
// caller at a time; the others take the last reading). ok is false when
// that read failed.
func (s *Stream) info(ctx context.Context) (rc *replicaCount, ok bool) {
	rc = s.replicas.Load()
	if time.Since(rc.at) < replicasRecheck || !s.refreshing.CompareAndSwap(false, true) {
		return rc, true
	}
	defer s.refreshing.Store(false)
	info, err := s.direct.Info(ctx)
	if err != nil {
		return rc, false
	}
	rc = &replicaCount{n: info.Config.Replicas, at: time.Now(), trimmed: rc.trimmed || info.State.FirstSeq > 1}
	s.replicas.Store(rc)
	return rc, true
}

// LastForSubject returns the last message of subject (which may hold
// wildcards), as the leader holds it: jetstream.ErrMsgNotFound when the
// stream has none.
func (s *Stream) LastForSubject(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	if !s.Replicated(ctx) {
		return s.direct.GetLastMsgForSubject(ctx, subject)
	}
	return s.leader(ctx, msgGetRequest{LastFor: subject})
}

// ErrUnconfirmed is ConfirmNone's answer when the "none" could not be
// confirmed: the read is to be answered 503 and retried, never taken.
var ErrUnconfirmed = errors.New("a leader's \"none\" not confirmed")

// leaseBound is how recently the stream's leader must have heard from a
// quorum of its replicas (counting itself) for ConfirmNone to take its
// answer. A live leader hears from each follower at every append and at
// least at every heartbeat (each second, nats-server's hbInterval); a
// deposed one last heard from the new term's voters before they voted,
// and they vote only after their election timeout (4 to 9 s) passed
// without it, or, deposed while in contact, it steps down at their first
// answer. Twice the heartbeat, as nats-server's own "current" of a
// follower's leader.
const leaseBound = 2 * time.Second

// ConfirmNone confirms LastForSubject's jetstream.ErrMsgNotFound for
// subject (no wildcards) before a caller answers on it alone, a 404 for an
// entity a client may have created through another process: nil when the
// stream has one replica (its server is the stream), or when one answer of
// the stream's leader says both that it holds no message of subject and
// that it heard from a quorum of the stream's replicas within leaseBound,
// which a leader deposed by an election it did not see cannot say (see
// the package's comment), and, when WatchStalls watches the stream's
// connection, its server has not stalled within stallWindow (a resumed
// leader says it heard from its replicas just now: see stalls.go).
// Otherwise an error: ErrUnconfirmed when the answer says the subject has
// messages (the first "none" was a deposed leader's), that the leader is
// out of contact, or that the server stalled; the request's error when
// none answered. One stream info request (its state filtered to subject)
// and a ping, asked only on a "none": a read that finds costs nothing
// more.
//
// A bound on time, not a proof: nats-server offers no linearizable read,
// and grants a vote without asking whether the voter heard from a leader
// a moment before, so a leader deposed within leaseBound of its last
// contact (an election forced by a candidate the leader could not reach
// while a follower could) answers "in contact" for an instant.
func (s *Stream) ConfirmNone(ctx context.Context, subject string) error {
	if !s.Replicated(ctx) {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.js.Options().DefaultTimeout)
		defer cancel()
	}
	replicas := s.replicas.Load().n
	cerr := s.askNone(ctx, subject, replicas)
	if errors.Is(cerr, errLeaseLapsed) {
		// A live leader that appended nothing for a while hears from its
		// followers only at its heartbeat, a second after its last append
		// and checked each second: up to 1.9 s measured (leaseBound 2 s).
		// Asked again after a heartbeat's interval, a live leader has
		// heard from them; a deposed one has not.
		select {
		case <-time.After(leaseRetry):
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", cerr, ctx.Err())
		}
		cerr = s.askNone(ctx, subject, replicas)
	}
	if cerr == nil {
		if w := s.stalls.Load(); w != nil {
			cerr = w.check(ctx)
		}
	}
	return cerr
}

// leaseRetry is how long ConfirmNone waits to ask once more a leader
// whose contact with its replicas lapsed: a little over nats-server's
// heartbeat interval (1 s).
const leaseRetry = 1100 * time.Millisecond

// errLeaseLapsed marks ConfirmNone's refusal of a leader that had not
// heard from a quorum within leaseBound (and nothing else).
var errLeaseLapsed = fmt.Errorf("%w: the leader's contact with its replicas lapsed", ErrUnconfirmed)

// askNone is one STREAM.INFO of ConfirmNone: nil when its answer says the
// subject is empty and its leader in contact with a quorum of the
// stream's replicas (of replicas configured).
func (s *Stream) askNone(ctx context.Context, subject string, replicas int) error {
	body, err := json.Marshal(streamInfoRequest{SubjectsFilter: subject})
	if err != nil {
		return err
	}
	reply, err := s.js.Conn().RequestWithContext(ctx, s.infoSubject, body)
	if err != nil {
		return fmt.Errorf("confirm a \"none\" of %s with its leader: %w", s.name, err)
	}
	var resp streamInfoResponse
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return fmt.Errorf("confirm a \"none\" of %s with its leader: %w", s.name, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("confirm a \"none\" of %s with its leader: %w", s.name, resp.Error)
	}
	return resp.confirmsNone(replicas)
}

// streamInfoRequest is the body of $JS.API.STREAM.INFO.
type streamInfoRequest struct {
	SubjectsFilter string `json:"subjects_filter,omitempty"`
}

// streamInfoResponse is what ConfirmNone reads of a stream info answer.
type streamInfoResponse struct {
	Error *jetstream.APIError `json:"error,omitempty"`
	// Total is how many subjects matched the filter (the answer pages
	// them).
	Total int `json:"total"`
	State struct {
		Subjects map[string]uint64 `json:"subjects"`
	} `json:"state"`
	Cluster *struct {
		Leader   string     `json:"leader"`
		Replicas []peerInfo `json:"replicas"`
	} `json:"cluster"`
}

// peerInfo is what ConfirmNone reads of a replica in a stream info answer.
type peerInfo struct {
	Name    string `json:"name"`
	Offline bool   `json:"offline"`
	// Pending: in the assignment but not (or no longer) a peer of the
	// raft group (a migration, a change of replicas).
	Pending bool `json:"pending"`
	// Active is how long ago the leader last heard from the replica, in
	// nanoseconds; 0 when never.
	Active int64 `json:"active"`
}

// confirmsNone reports (nil) whether the answer says the filtered subject
// has no message and its leader is in contact with a quorum of the
// stream's replicas (configured: the answer lists the leader's peers, and
// during a migration the peers to be as well).
func (r *streamInfoResponse) confirmsNone(replicas int) error {
	var held uint64
	for _, n := range r.State.Subjects {
		held += n
	}
	if held > 0 || r.Total > 0 {
		return fmt.Errorf("%w: the leader holds %d messages of the subject", ErrUnconfirmed, held)
	}
	if r.Cluster == nil || r.Cluster.Leader == "" {
		return fmt.Errorf("%w: the stream has no leader", ErrUnconfirmed)
	}
	// A quorum of replicas is the leader and half of the others (rounded
	// down: of 3, one; of 5, two).
	need, have := replicas/2, 0
	for _, p := range r.Cluster.Replicas {
		if !p.Offline && !p.Pending && p.Active > 0 && time.Duration(p.Active) <= leaseBound {
			have++
		}
	}
	if have < need {
		return fmt.Errorf("%w: leader %s heard from %d of %d replicas within %s, a quorum needs %d", errLeaseLapsed, r.Cluster.Leader, have, len(r.Cluster.Replicas), leaseBound, need)
	}
	return nil
}

// Msg returns the message at seq: jetstream.ErrMsgNotFound only when the
// leader has none there (never stored, deleted or aged out).
func (s *Stream) Msg(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	m, err := s.direct.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) && s.Replicated(ctx) {
		return s.leader(ctx, msgGetRequest{Seq: seq})
	}
	return m, err
}

// NextForSubject returns the first message of subject at or after
// sequence from: jetstream.ErrMsgNotFound only when the leader has none.
func (s *Stream) NextForSubject(ctx context.Context, subject string, from uint64) (*jetstream.RawStreamMsg, error) {
	m, err := s.direct.GetMsg(ctx, from, jetstream.WithGetMsgSubject(subject))
	if errors.Is(err, jetstream.ErrMsgNotFound) && s.Replicated(ctx) {
		return s.leader(ctx, msgGetRequest{Seq: from, NextFor: subject})
	}
	return m, err
}

// OnLeader returns the messages at seqs as the leader holds them, in the
// order of seqs, nil where it holds none (deleted or aged out): for a read
// through a replica that must not answer what a delete acknowledged
// before it removed. The gets go out together, at most leaderGetsInFlight
// at a time, so a page of messages costs about one round trip, not one a
// message. When the stream has one replica its direct gets are the
// leader's answers. An error of any get (the first) is returned, with no
// messages.
func (s *Stream) OnLeader(ctx context.Context, seqs []uint64) ([]*jetstream.RawStreamMsg, error) {
	// The first error ends the gets: those not sent are not, and those
	// waiting stop waiting (the leader's server gone would otherwise hold
	// each wave of them for the whole timeout).
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	get := func(seq uint64) (*jetstream.RawStreamMsg, error) { return s.leader(ctx, msgGetRequest{Seq: seq}) }
	if !s.Replicated(ctx) {
		get = func(seq uint64) (*jetstream.RawStreamMsg, error) { return s.direct.GetMsg(ctx, seq) }
	}
	out := make([]*jetstream.RawStreamMsg, len(seqs))
	inFlight := make(chan struct{}, leaderGetsInFlight)
	var wg sync.WaitGroup
	for i, seq := range seqs {
		select {
		case inFlight <- struct{}{}:
		case <-ctx.Done():
		}
		taken := false
		if ctx.Err() == nil {
			select {
			case s.gets <- struct{}{}:
				taken = true
			case <-ctx.Done():
			}
		}
		// Decided once: a place taken is either handed to the get below,
		// which gives it back, or given back here. Left to a second look at
		// ctx (ended between the two by a failed get's cancel), each such
		// race lost one of the stream's places for good, until the stream's
		// reads all waited.
		if !taken || ctx.Err() != nil {
			if taken {
				<-s.gets
			}
			break
		}
		wg.Go(func() {
			defer func() { <-s.gets; <-inFlight }()
			m, err := get(seq)
			switch {
			case errors.Is(err, jetstream.ErrMsgNotFound):
			case err != nil:
				cancel(err) // the first cause is kept
			default:
				out[i] = m
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// leaderGetsInFlight bounds one OnLeader call's gets waiting for their
// answers at once: a page of the largest inbox pull (200 items) in a few
// round trips.
const leaderGetsInFlight = 64

// leaderGetsPerStream bounds them for every call through one Stream (one
// process's inbox, say): a leader get is a JetStream API request, and the
// broker drops every request queued in its API queue when more than 10,000
// wait. Without it, 160 apps pulling at once through one ingest replica
// would have reached that.
const leaderGetsPerStream = 256

// msgGetRequest is the body of $JS.API.STREAM.MSG.GET.
type msgGetRequest struct {
	Seq       uint64     `json:"seq,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
	LastFor   string     `json:"last_by_subj,omitempty"`
	NextFor   string     `json:"next_by_subj,omitempty"`
}

type msgGetResponse struct {
	Error   *jetstream.APIError `json:"error,omitempty"`
	Message *struct {
		Subject  string    `json:"subject"`
		Sequence uint64    `json:"seq"`
		Header   []byte    `json:"hdrs,omitempty"`
		Data     []byte    `json:"data,omitempty"`
		Time     time.Time `json:"time"`
	} `json:"message,omitempty"`
}

// errCodeNoMessage is the JetStream API's "no message found".
const errCodeNoMessage = jetstream.JSErrCodeMessageNotFound

// leader asks the stream's leader for one message.
func (s *Stream) leader(ctx context.Context, req msgGetRequest) (*jetstream.RawStreamMsg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.js.Options().DefaultTimeout)
		defer cancel()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	reply, err := s.js.Conn().RequestWithContext(ctx, s.subject, body)
	if err != nil {
		return nil, fmt.Errorf("read %s from its leader: %w", s.name, err)
	}
	var resp msgGetResponse
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return nil, fmt.Errorf("read %s from its leader: %w", s.name, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == errCodeNoMessage:
		return nil, jetstream.ErrMsgNotFound
	case resp.Error != nil:
		return nil, fmt.Errorf("read %s from its leader: %w", s.name, resp.Error)
	case resp.Message == nil:
		return nil, fmt.Errorf("read %s from its leader: %w", s.name, jetstream.ErrInvalidJetStreamResponse)
	}
	m := &jetstream.RawStreamMsg{Subject: resp.Message.Subject, Sequence: resp.Message.Sequence, Data: resp.Message.Data, Time: resp.Message.Time}
	if len(resp.Message.Header) > 0 {
		if m.Header, err = nats.DecodeHeadersMsg(resp.Message.Header); err != nil {
			return nil, fmt.Errorf("read %s from its leader: headers: %w", s.name, err)
		}
	}
	return m, nil
}
