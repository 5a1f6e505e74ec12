package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"
)

// streamIdle is how long tail waits for a byte (an operation or the
// gateway's keep-alive, sent every 15 s) before it takes the connection
// for dead and reconnects: three keep-alives missed.
const streamIdle = 45 * time.Second

// Reconnect back-off of tail: doubling from the first to the last.
const (
	reconnectFirst = 250 * time.Millisecond
	reconnectMax   = 5 * time.Second
)

func tailCommand(env Env, g *globals) *cobra.Command {
	t := &tailer{env: env, g: g}
	cmd := &cobra.Command{
		Use:   "tail [--after SEQ] [--state FILE] [--count N]",
		Short: "Follow the channel's operations as they are appended (GET /channel/stream)",
		Long: `Print the channel's operations (events, things, messages) in log order, then
follow new ones as they are appended (GET /channel/stream, Server-Sent Events).

Each operation is printed once, in order, with no gap: tail remembers the last
sequence number it printed and reconnects after a drop or a gateway restart with
Last-Event-ID, the gateway answering from the operation after it. It retries
for ever (--max-outage bounds it) and says on stderr when the stream is lost
and when it is back, and which operations it lost when some aged out of the
gateway's log (its retention) before it could print them.

Where it starts: after --after SEQ; else after the sequence in the --state file
when the file exists; else at the start of the channel's retained history.
--state FILE is written (mode 600, replaced atomically) after each batch printed
and when tail stops, so the next "pushgo tail --state FILE" goes on where this
one stopped. A tail killed with SIGKILL may print again the operations of its
last batch; stopped with SIGINT or SIGTERM, or by --count, it repeats nothing.

Output: one line per operation, "SEQ TIME OP ENTITY_ID SUMMARY" (tab-separated);
with --json the history item as the gateway sent it, one JSON object per line
({seq, entity_type, v, op, channel_id, op_id, entity_id, accepted_at, body_hash,
payload}). Ends with 0 on SIGINT/SIGTERM or after --count operations.`,
		Example: `  pushgo tail
  pushgo tail --json --state ~/.cache/pushgo/home.tail | jq -c 'select(.entity_type == "event")'
  pushgo tail --after 1200 --count 1    # wait for the next operation after 1200`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error { return t.run(cmd.Context(), cmd) },
	}
	f := cmd.Flags()
	f.Uint64Var(&t.after, "after", 0, "start after this sequence number (the SSE id / history seq)")
	f.StringVar(&t.statePath, "state", "", "state file: where to resume from, updated as operations are printed")
	f.IntVar(&t.count, "count", 0, "exit after printing this many operations (0: follow until interrupted)")
	f.DurationVar(&t.maxOutage, "max-outage", 0, "give up (exit 3) when the gateway stays unreachable this long (0: never)")
	return cmd
}

// tailer is one run of pushgo tail.
type tailer struct {
	env       Env
	g         *globals
	after     uint64
	statePath string
	count     int
	maxOutage time.Duration

	s       *session
	out     *bufio.Writer
	last    uint64 // the last sequence printed (or the start)
	saved   uint64 // the last sequence written to the state file
	printed int
}

// tailState is the --state file.
type tailState struct {
	ChannelID   string `json:"channel_id"`
	LastEventID uint64 `json:"last_event_id"`
}

// errCountReached ends a follow once --count operations are printed.
var errCountReached = errors.New("count reached")

func (t *tailer) run(ctx context.Context, cmd *cobra.Command) error {
	if t.count < 0 {
		return usagef("--count %d: want 0 or more", t.count)
	}
	s, err := open(t.env, t.g, needChannel, needPassword)
	if err != nil {
		return err
	}
	t.s = s
	if t.statePath != "" {
		st, ok, err := readTailState(t.statePath)
		if err != nil {
			return err
		}
		if ok && st.ChannelID != s.creds.ChannelID {
			return usagef("--state %s is channel %s's, not %s's", t.statePath, st.ChannelID, s.creds.ChannelID)
		}
		if ok {
			t.last = st.LastEventID
		}
	}
	if cmd.Flags().Changed("after") {
		t.last = t.after
	}
	t.saved = t.last
	t.out = bufio.NewWriterSize(t.env.Stdout, 64<<10)
	err = t.followForever(ctx)
	if ferr := t.flush(); err == nil || errors.Is(err, errCountReached) || ctx.Err() != nil {
		if ferr != nil {
			return ferr
		}
		return nil
	}
	return err
}

// followForever follows the stream, reconnecting after every end that is
// not a refusal, until ctx ends, --count is reached, or an outage outlasts
// --max-outage.
func (t *tailer) followForever(ctx context.Context) error {
	backoff := reconnectFirst
	var lostAt time.Time
	var lostErr error
	for {
		connected, err := t.follow(ctx, func() {
			if !lostAt.IsZero() {
				fmt.Fprintf(t.env.Stderr, "pushgo tail: reconnected; resuming after %d\n", t.last)
			}
			lostAt, lostErr, backoff = time.Time{}, nil, reconnectFirst
		})
		if ctx.Err() != nil || errors.Is(err, errCountReached) {
			return err
		}
		// The output or --state could not be written: no reconnect
		// changes that (exit 1, as the README says).
		if f := (*failure)(nil); errors.As(err, &f) {
			return err
		}
		var ae *apiError
		wait := backoff
		if errors.As(err, &ae) && ae.Status != 0 {
			if ae.exitCode() == ExitRefused {
				return err
			}
			if ae.Status == http.StatusOK {
				return err // not an event stream: not a gateway, or not this route
			}
			if ae.RetryAfter > 0 {
				wait = min(ae.RetryAfter, 30*time.Second)
			}
		}
		if err == nil {
			err = errors.New("the gateway ended the stream")
		}
		if lostAt.IsZero() {
			lostAt, lostErr = time.Now(), err
			if !connected {
				fmt.Fprintf(t.env.Stderr, "pushgo tail: cannot connect (%v); retrying\n", err)
			} else {
				fmt.Fprintf(t.env.Stderr, "pushgo tail: stream lost (%v); reconnecting after %d\n", err, t.last)
			}
		}
		if t.maxOutage > 0 && time.Since(lostAt) > t.maxOutage {
			return &apiError{Err: fmt.Errorf("unreachable for more than %s (first: %v)", t.maxOutage, lostErr)}
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return nil
		}
		backoff = min(backoff*2, reconnectMax)
	}
}

// streamEndedPrefix begins the comment with which the gateway ends a
// stream, giving its reason (": stream ended: the log is unavailable; …").
var streamEndedPrefix = []byte(": stream ended")

// follow is one connection: it prints every operation after t.last until
// the stream ends. connected says whether the gateway answered 200;
// onConnect is called at the stream's first line.
func (t *tailer) follow(ctx context.Context, onConnect func()) (connected bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := *t.s.client.base
	u.Path += "/channel/stream"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, &apiError{Err: err}
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", "pushgo-cli")
	req.Header.Set("X-PushGo-Channel", t.s.creds.ChannelID)
	req.Header.Set("X-PushGo-Password", t.s.creds.Password)
	if t.last > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(t.last, 10))
	}
	if t.s.creds.Token != "" {
		req.Header.Set("Authorization", "Bearer "+t.s.creds.Token)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: t.g.timeout, KeepAlive: 15 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = t.g.timeout
	hc := &http.Client{Transport: tr, CheckRedirect: noRedirects}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return false, &apiError{Err: transportError(err)}
	}
	defer resp.Body.Close()
	if aerr := redirectError(resp, t.s.client.base); aerr != nil {
		return false, aerr
	}
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_, aerr := decodeEnvelope(resp.StatusCode, resp.Header, raw)
		return false, aerr
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, &apiError{Status: http.StatusOK, Message: fmt.Sprintf("answered %q, not an event stream", ct)}
	}
	// The outage ends at the stream's first line, not at the 200: a
	// proxy that answers 200 and ends at once is still an outage
	// (--max-outage, and the back-off, go on).
	streaming := false
	// A connection that goes silent (a dead peer, a cut network) is
	// dropped after streamIdle without a byte; the gateway's keep-alives
	// keep a live one well inside it.
	idle := time.AfterFunc(streamIdle, cancel)
	defer idle.Stop()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var id, event string
	var data []byte
	// ended is the reason the gateway gave for ending the stream (its
	// closing comment), the end's error.
	var ended string
	for {
		line, rerr := br.ReadSlice('\n')
		idle.Reset(streamIdle)
		// Its closing comment (and the blank line after it) is no
		// connection: a gateway that answers
		// every stream with one (its log unavailable) would reset the
		// outage and the back-off at each, reconnecting four times a
		// second for ever, --max-outage never reached.
		if !streaming && rerr == nil && len(bytes.TrimSpace(line)) > 0 && !bytes.HasPrefix(line, streamEndedPrefix) {
			streaming = true
			onConnect()
		}
		if rerr != nil {
			if errors.Is(rerr, bufio.ErrBufferFull) {
				// A line longer than the buffer (a large history item):
				// read the rest of it.
				rest, err := br.ReadBytes('\n')
				line, rerr = append(append([]byte(nil), line...), rest...), err
			}
			if rerr != nil {
				// The caller sees whether tail is stopping (its own
				// context); here the end is the stream's.
				switch {
				case errors.Is(rerr, io.EOF) && ended != "":
					return true, &apiError{Err: errors.New(ended)}
				case errors.Is(rerr, io.EOF):
					return true, nil
				case ctx.Err() != nil:
					return true, &apiError{Err: fmt.Errorf("no byte from the gateway for %s", streamIdle)}
				default:
					return true, &apiError{Err: fmt.Errorf("read the stream: %w", rerr)}
				}
			}
		}
		text := strings.TrimRight(string(line), "\r\n")
		if text == "" {
			if len(data) > 0 || id != "" {
				if err := t.emit(id, event, data); err != nil {
					return true, err
				}
				if t.count > 0 && t.printed >= t.count {
					return true, errCountReached
				}
			}
			id, event, data = "", "", data[:0]
			if br.Buffered() == 0 {
				if err := t.flush(); err != nil {
					return true, err
				}
			}
			continue
		}
		if text[0] == ':' {
			if strings.HasPrefix(text, string(streamEndedPrefix)) {
				ended = strings.TrimSpace(text[1:])
			}
			continue // a keep-alive, or the gateway saying why it ends the stream
		}
		name, value, _ := strings.Cut(text, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "id":
			id = value
		case "event":
			event = value
		case "data":
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, value...)
		}
	}
}

// emit prints one operation unless it is at or before t.last (the gateway
// resumes after Last-Event-ID; a repeat is dropped all the same). A gap
// event (the operations after the resume point aged out of the log while
// tail was away) is said on stderr: they are not printed, and never will.
func (t *tailer) emit(id, event string, data []byte) error {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return &apiError{Status: http.StatusBadGateway, Message: fmt.Sprintf("stream event without a sequence number (id %q)", id)}
	}
	if event == "gap" {
		var gap struct {
			After    uint64 `json:"after"`
			FirstSeq uint64 `json:"first_seq"`
		}
		if json.Unmarshal(data, &gap) == nil && gap.FirstSeq > gap.After+1 && gap.FirstSeq-1 > t.last {
			if err := t.out.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(t.env.Stderr, "pushgo tail: the gateway's log no longer holds its operations after %d and before %d (its retention): "+
				"any of this channel's among them were not printed and never will be\n", gap.After, gap.FirstSeq)
			// Its position moves past what is gone (saved with the next
			// batch), so the next reconnect does not say it again.
			t.last = gap.FirstSeq - 1
		}
		return nil
	}
	if seq <= t.last {
		return nil
	}
	if t.g.json {
		t.out.Write(data)
		t.out.WriteByte('\n')
	} else {
		t.out.WriteString(humanItem(seq, event, data))
	}
	t.last = seq
	t.printed++
	return nil
}

// humanItem is one operation as a line: SEQ TIME OP ENTITY_ID SUMMARY.
func humanItem(seq uint64, event string, data []byte) string {
	var item struct {
		Op         string         `json:"op"`
		EntityType string         `json:"entity_type"`
		EntityID   string         `json:"entity_id"`
		AcceptedAt int64          `json:"accepted_at"`
		Payload    map[string]any `json:"payload"`
	}
	_ = json.Unmarshal(data, &item)
	op := event
	if op == "" {
		op = item.EntityType + "." + item.Op
	}
	var summary []string
	for _, k := range []string{"title", "status", "message", "body"} {
		if v, ok := item.Payload[k].(string); ok && v != "" {
			summary = append(summary, oneLine(v))
		}
	}
	if attrs, ok := item.Payload["attrs"]; ok && len(summary) == 0 {
		b, _ := json.Marshal(attrs)
		summary = append(summary, "attrs "+string(b))
	}
	when := ""
	if item.AcceptedAt > 0 {
		when = time.UnixMilli(item.AcceptedAt).UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%d\t%s\t%s\t%s\t%s\n", seq, when, oneLine(op), oneLine(item.EntityID), strings.Join(summary, " | "))
}

// oneLine keeps a sender's text on its line and off the terminal's
// controls: a line break, a tab (the line's separator) or another control
// character (an escape sequence would reach the terminal) is written as
// Go writes it in a quoted string (\n, \t, \x1b).
func oneLine(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// flush writes the printed lines out, then records the last one in the
// state file: a line is in the state only once it is printed.
func (t *tailer) flush() error {
	if err := t.out.Flush(); err != nil {
		return &failure{err: fmt.Errorf("write the output: %w", err)}
	}
	if t.statePath == "" || t.saved == t.last {
		return nil
	}
	if err := writeTailState(t.statePath, tailState{ChannelID: t.s.creds.ChannelID, LastEventID: t.last}); err != nil {
		return &failure{err: err}
	}
	t.saved = t.last
	return nil
}

func readTailState(path string) (tailState, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return tailState{}, false, nil
	}
	if err != nil {
		return tailState{}, false, usagef("--state: %v", err)
	}
	var st tailState
	if err := json.Unmarshal(b, &st); err != nil || st.ChannelID == "" {
		return tailState{}, false, usagef("--state %s is not a pushgo tail state file (%v)", path, err)
	}
	return st, true, nil
}

// writeTailState replaces path atomically (a temporary file renamed over
// it), so a crash leaves the old state or the new one.
func writeTailState(path string, st tailState) error {
	b, _ := json.Marshal(st)
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("--state: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(append(b, '\n'))
	if werr == nil {
		// Durable before the rename: else a crash can leave the name
		// pointing at an empty file.
		werr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--state: %w", err)
	}
	return nil
}
