package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// historyOp is one POST /channel/history of `limit` operations after a
// random sequence in [0, last-limit], so that every page is full; the
// answer must hold exactly `limit` items.
func (t *target) historyOp(last uint64, limit int) opFunc {
	itemStart := []byte(`{"seq":`)
	return func(ctx context.Context, w *worker) error {
		after := uint64(w.rng.Int64N(int64(last) - int64(limit) + 1))
		w.buf = t.bodies.history(w.buf[:0], after, limit)
		b, err := t.call(ctx, t.light, w, "/channel/history", w.buf)
		if err != nil {
			return err
		}
		if n := bytes.Count(b, itemStart); n != limit {
			return fmt.Errorf("/channel/history after %d: %d items, want %d", after, n, limit)
		}
		return nil
	}
}

// thingGet is one POST /thing/get of a random thing; the answer must be
// that thing.
func (t *target) thingGet(ctx context.Context, w *worker) error {
	id := t.thingIDs[w.rng.IntN(len(t.thingIDs))]
	w.buf = t.bodies.thingGet(w.buf[:0], id)
	b, err := t.call(ctx, t.reader, w, "/thing/get", w.buf)
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte(id)) {
		return fmt.Errorf("/thing/get %s: answer is another thing", id)
	}
	return nil
}

var errNotReady = errors.New("projector not caught up")

// waitReady polls GET /readyz until the projector reports lag 0 and its
// applied sequence has stopped moving, and returns that sequence.
func (t *target) waitReady(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, settleLimit)
	defer cancel()
	var prev uint64
	stable := 0
	for {
		applied, lag, err := t.readyz(ctx)
		if err == nil && lag == 0 && applied == prev && applied > 0 {
			if stable++; stable >= 5 { // 50 ms without a new operation
				return applied, nil
			}
		} else {
			stable = 0
		}
		prev = applied
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("/readyz: %w (applied %d, lag %d, last error %v)", errNotReady, applied, lag, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (t *target) readyz(ctx context.Context) (applied, lag uint64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+"/readyz", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("/readyz %d %s", resp.StatusCode, errorCode(b))
	}
	var env struct {
		Data struct {
			Applied *uint64 `json:"projector_applied"`
			Lag     *uint64 `json:"projector_lag"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return 0, 0, err
	}
	if env.Data.Applied == nil || env.Data.Lag == nil {
		return 0, 0, fmt.Errorf("/readyz without projector_applied and projector_lag: %s", b)
	}
	return *env.Data.Applied, *env.Data.Lag, nil
}

// history appends a POST /channel/history body to dst.
func (b *bodies) history(dst []byte, after uint64, limit int) []byte {
	dst = append(dst, `{"channel_id":"`...)
	dst = append(dst, b.channelID...)
	dst = append(dst, `","password":"`...)
	dst = append(dst, b.password...)
	dst = append(dst, `","after":`...)
	dst = strconv.AppendUint(dst, after, 10)
	dst = append(dst, `,"limit":`...)
	dst = strconv.AppendInt(dst, int64(limit), 10)
	return append(dst, '}')
}

// thingGet appends a POST /thing/get body to dst.
func (b *bodies) thingGet(dst []byte, thingID string) []byte {
	dst = append(dst, `{"channel_id":"`...)
	dst = append(dst, b.channelID...)
	dst = append(dst, `","password":"`...)
	dst = append(dst, b.password...)
	dst = append(dst, `","thing_id":"`...)
	dst = append(dst, thingID...)
	return append(dst, `"}`...)
}
