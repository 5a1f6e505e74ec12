package leaderread

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The headers of the broker's answers without a message (nats.go keeps
// its names of them unexported).
const (
	statusHeader      = "Status"
	descriptionHeader = "Description"
	numPendingHeader  = "Nats-Num-Pending"
)

// subjectBatch is how many messages one batched direct get asks for.
const subjectBatch = 512

// Subject calls fn with every message of subject (no wildcards) stored at
// or after since (the zero time: all of them), in stream order, read
// through batched direct gets (one request answers up to subjectBatch
// messages; fn keeps what it needs of each). A replica behind its leader
// may answer, so a message stored just before the call can be missing:
// where that loses something, the caller asks SubjectOnLeader for what
// came after the last message it read. An error of fn ends the read and is
// returned.
func (s *Stream) Subject(ctx context.Context, subject string, since time.Time, fn func(*jetstream.RawStreamMsg) error) error {
	req := directBatchRequest{Seq: 1, NextFor: subject, Batch: subjectBatch}
	if !since.IsZero() {
		req.Seq, req.StartTime = 0, &since
	}
	for {
		n, last, more, err := s.batch(ctx, req, fn) // each batch within its own timeout
		if err != nil {
			// Not the subject: an inbox's names its device by key, the
			// device's credential; the caller names what it read.
			return fmt.Errorf("read a subject of %s: %w", s.name, err)
		}
		if !more || n == 0 {
			return nil
		}
		req.Seq, req.StartTime = last+1, nil
	}
}

// SubjectOnLeader calls fn with the messages of subject at or after
// sequence from, or when from is 0 stored at or after since (the zero
// time: all of them), as the leader holds the stream: one round trip a
// message, for the rare read that must see a write acknowledged an
// instant before.
func (s *Stream) SubjectOnLeader(ctx context.Context, subject string, from uint64, since time.Time, fn func(*jetstream.RawStreamMsg) error) error {
	req := msgGetRequest{Seq: max(from, 1), NextFor: subject}
	if from == 0 && !since.IsZero() {
		req.Seq, req.StartTime = 0, &since
	}
	for {
		m, err := s.leader(ctx, req)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
		req.Seq, req.StartTime = m.Sequence+1, nil
	}
}

// directBatchRequest is the body of a batched $JS.API.DIRECT.GET.
type directBatchRequest struct {
	Seq       uint64     `json:"seq,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
	NextFor   string     `json:"next_by_subj"`
	Batch     int        `json:"batch"`
}

// batch calls fn with the messages req asks for (of a subject, from a
// sequence or a time, up to subjectBatch), and returns how many, the last one's sequence, and whether
// the subject has more after it. The broker answers each message as a
// message of its own on the reply subject and ends with a status 204 (end
// of batch) that says how many are left (Nats-Num-Pending: a batch also
// ends early, past the server's max_pending bytes), or answers 404 when
// there is none.
//
// Without a deadline of ctx, the batch has the JetStream context's default
// timeout: a batch, not the whole read, so a long subject is read whole.
func (s *Stream) batch(ctx context.Context, req directBatchRequest, fn func(*jetstream.RawStreamMsg) error) (n int, last uint64, more bool, err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.js.Options().DefaultTimeout)
		defer cancel()
	}
	nc := s.js.Conn()
	// A reply subject of its own, not one under the connection's shared
	// request subscription (NewRespInbox), which would receive every
	// answer a second time.
	reply := nc.NewInbox()
	sub, err := nc.SubscribeSync(reply)
	if err != nil {
		return 0, 0, false, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	body, err := json.Marshal(req)
	if err != nil {
		return 0, 0, false, err
	}
	if err := nc.PublishRequest(s.directSubject, reply, body); err != nil {
		return 0, 0, false, err
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return n, last, false, err
		}
		if status := m.Header.Get(statusHeader); status != "" {
			switch status {
			case "204": // end of the batch
				left, err := strconv.ParseUint(m.Header.Get(numPendingHeader), 10, 64)
				if err != nil {
					return n, last, false, fmt.Errorf("direct get: end of batch without the count left: %q", m.Header.Get(numPendingHeader))
				}
				return n, last, left > 0, nil
			case "404": // none at all
				return n, last, false, nil
			case "503":
				return n, last, false, nats.ErrNoResponders
			}
			return n, last, false, fmt.Errorf("direct get: status %s %s", status, m.Header.Get(descriptionHeader))
		}
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return n, last, false, fmt.Errorf("direct get: sequence %q: %w", m.Header.Get(jetstream.SequenceHeader), err)
		}
		n, last = n+1, seq
		// The time the message was stored, as nats.go's own direct get
		// reads it (zero if the header is missing or bad).
		stored, _ := time.Parse(time.RFC3339Nano, m.Header.Get(jetstream.TimeStampHeaer))
		if err := fn(&jetstream.RawStreamMsg{Subject: m.Header.Get(jetstream.SubjectHeader), Sequence: seq, Header: m.Header, Data: m.Data, Time: stored}); err != nil {
			return n, last, false, err
		}
	}
}
