// Package livestream follows one channel's operations in the log: the
// history from a resume point, then live operations as they are appended.
// It reads PUSHGO_OPS directly with an ordered consumer filtered to the
// channel's subjects, so a live stream never waits for a projection.
package livestream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
	"github.com/pushgo/gateway/schemas/streams"
)

// Follower follows channels. It is safe for concurrent use.
type Follower struct {
	js jetstream.JetStream
}

// New returns a Follower over js.
func New(js jetstream.JetStream) *Follower { return &Follower{js: js} }

// Follow calls fn with the sequence, name and history item JSON, in log
// order, of every operation of channelID with a
// sequence greater than after, first the retained history and then live
// ones, until ctx ends (it then returns nil) or fn returns an error.
func (f *Follower) Follow(ctx context.Context, channelID string, after uint64, fn func(seq uint64, op ops.Name, item []byte) error) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{streams.ChannelSubjects(channelID)}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	cons, err := f.js.OrderedConsumer(ctx, streams.Ops, cfg)
	if err != nil {
		return fmt.Errorf("follow %s: %w", channelID, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow %s: %w", channelID, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("follow %s: %w", channelID, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		op := ops.Name(m.Headers().Get(streams.HeaderOp))
		raw := reads.AppendItem(nil, md.Sequence.Stream, op.Kind(), m.Data())
		if err := fn(md.Sequence.Stream, op, raw); err != nil {
			return err
		}
	}
}
