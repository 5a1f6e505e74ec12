// Package cas holds what every compare-and-swap writer of the gateway
// shares: telling a lost race from a failure, and waiting a jittered while
// before trying again, so a burst of writers of one record spreads out
// instead of colliding again at once.
package cas

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrExhausted is returned by Retry when every attempt lost its race.
var ErrExhausted = errors.New("concurrent update conflict: retries exhausted")

// Lost reports whether err says a compare-and-swap lost its race: the key
// existed (KeyValue.Create), the key's revision moved (Update, Delete with
// LastRevision), or the subject's last sequence moved (a publish with
// ExpectLastSequencePerSubject). Any other error is a failure, not a race.
func Lost(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

// Backoff waits before retry attempt (1-based) of a lost race: a random
// duration up to min(attempt, 10) steps, so the spread grows with
// contention but stays bounded. It returns ctx.Err() if ctx ends first.
func Backoff(ctx context.Context, attempt int, step time.Duration) error {
	d := time.Duration(rand.Int64N(int64(min(max(attempt, 1), 10))*int64(step) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Retry calls try (with its 0-based attempt number) until it returns an
// error for which Lost is false, backing off by step between attempts. It
// returns ErrExhausted after attempts lost races, and ctx.Err() if ctx
// ends while it waits.
func Retry(ctx context.Context, attempts int, step time.Duration, try func(attempt int) error) error {
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			if err := Backoff(ctx, attempt, step); err != nil {
				return err
			}
		}
		if err := try(attempt); !Lost(err) {
			return err
		}
	}
	return ErrExhausted
}
