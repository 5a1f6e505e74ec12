// Package e2e runs the pushgo binary as a user would: it builds it once,
// starts real processes on free loopback ports with their own data
// directories, talks to them over HTTP, and reads what they appended to
// PUSHGO_OPS through the embedded broker's NATS port.
package e2e

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/pushgo/gateway/ingest/apitest"
)

// Names of the black-box contract (schemas/streams), restated here on
// purpose: the tests must notice if the code renames them.
const (
	opsStream      = "PUSHGO_OPS"
	channelsStream = "KV_PUSHGO_CHANNELS"
	headerOp       = "Pushgo-Op"
	headerOpID     = "Pushgo-Op-Id"
)

var (
	pushgoBin string // built once by TestMain
	hex32     = regexp.MustCompile(`^[0-9a-f]{32}$`)
	channelID = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: module root not found next to the e2e package:", err)
		return 1
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go not on PATH:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "pushgo-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	pushgoBin = filepath.Join(dir, "pushgo")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goBin, "build", "-o", pushgoBin, "github.com/pushgo/gateway")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build failed: %v\n%s", err, out)
		return 1
	}
	// An all-in-one binary runs one P more than the CPUs unless GOMAXPROCS
	// is set (gateway.TuneProcs). The tests start a dozen gateway processes
	// at once on a machine of two cores, where the extra P of each only adds
	// spinning (make test: 13.6 against 11.4 minutes of CPU), so they run
	// them at the runtime's default, as the README advises for a host
	// shared by several gateway processes; TestBinaryRunsOnePMoreThanTheCPUs
	// starts one without it.
	if os.Getenv("GOMAXPROCS") == "" {
		os.Setenv("GOMAXPROCS", strconv.Itoa(runtime.GOMAXPROCS(0)))
	}
	code := m.Run()
	// Every exchange with a pushgo process was validated against the
	// OpenAPI document (openapi_validate_test.go): any mismatch fails the
	// run, also one no test could be told of.
	if reportOpenAPIMismatches() > 0 && code == 0 {
		code = 1
	}
	return code
}

// ---------------------------------------------------------------------------
// Processes

// syncBuffer collects a process's output; it is written by exec's copier and
// read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type gwConfig struct {
	DataDir  string // required: reuse it to restart on the same store
	Token    string // PUSHGO_TOKEN; "" means public
	LogLevel string // PUSHGO_LOG_LEVEL; default info
	// Target is PUSHGO_TARGET; "" leaves the default (all). A single
	// service is waited for on /healthz (an ingest's /readyz needs a
	// projector); the default target on /readyz.
	Target string
	// NATSURL is PUSHGO_NATS_URL (another process's broker); "" starts the
	// embedded broker listening on a free port.
	NATSURL string
	// Env holds extra KEY=VALUE entries, e.g. PUSHGO_REBUILD=true.
	Env []string
	// HTTPAddr and NATSAddr (host:port) restart a process on the addresses
	// of one that ended; "" takes a free loopback port.
	HTTPAddr, NATSAddr string
	// Args are the command's arguments (compose's command, e.g.
	// ["-target", "ingest"]).
	Args []string
	// WaitPath is the route waited for at start ("" decides by Target).
	WaitPath string
}

// gateway is one running pushgo process. Its API client (Do, Send, Post,
// Get) sends the gateway's token, if any, as a bearer token unless a
// request's headers set Authorization.
type gateway struct {
	*apitest.Client
	t       *testing.T
	name    string
	cfg     gwConfig
	base    string // http://127.0.0.1:port
	natsURL string // nats://127.0.0.1:port
	cmd     *exec.Cmd
	output  *syncBuffer
	done    chan struct{}
	waitErr error
}

var startCount struct {
	sync.Mutex
	n int
}

// freePort returns a loopback port that was free a moment ago.
// The kernel may hand a port it just gave out (and that was closed again)
// to the next caller: a process's HTTP and NATS ports once came out equal.
// Every port is handed out once per test binary.
func freePort(t *testing.T) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
	t.Fatal("free port: every port offered was handed out before")
	return 0
}

// handedOut is every port freePort returned.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// startGateway starts pushgo, waits until /readyz answers 200, and kills it
// at cleanup. Its output is logged when the test fails. A process that
// could not listen on a port freePort chose (another process took it in
// between) is started again on new ones, twice at most.
func startGateway(t *testing.T, cfg gwConfig) *gateway {
	t.Helper()
	if cfg.DataDir == "" {
		t.Fatal("startGateway: DataDir is required")
	}
	var g *gateway
	onNewPorts(t, "it", func() (err error) {
		g, err = launchGateway(t, cfg)
		return err
	})
	return g
}

// portAttempts bounds how often onNewPorts starts something.
const portAttempts = 3

// onNewPorts calls start until it returns nil, portAttempts times at
// most, and fails t with its last error. start fails t itself for
// anything but a port it chose taken in between (another test process
// listening on it), which it returns: start chooses new ports each call.
func onNewPorts(t *testing.T, what string, start func() error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		err := start()
		if err == nil {
			return
		}
		if attempt == portAttempts {
			t.Fatal(err)
		}
		t.Logf("%v; starting %s again on other ports", err, what)
	}
}

// launchGateway is one attempt of startGateway. It fails t, except when
// the process exits before it is ready because a port it was to listen
// on is taken: that it returns.
func launchGateway(t *testing.T, cfg gwConfig) (*gateway, error) {
	t.Helper()
	startCount.Lock()
	startCount.n++
	name := fmt.Sprintf("pushgo#%d", startCount.n)
	startCount.Unlock()

	httpAddr := cmp.Or(cfg.HTTPAddr, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	natsAddr := cmp.Or(cfg.NATSAddr, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	g := &gateway{
		t: t, name: name, cfg: cfg,
		base: "http://" + httpAddr, natsURL: "nats://" + natsAddr,
		output: &syncBuffer{}, done: make(chan struct{}),
		Client: &apitest.Client{Base: "http://" + httpAddr, Bearer: cfg.Token,
			HTTP: &http.Client{Timeout: 15 * time.Second, Transport: apiValidating(t, &http.Transport{MaxIdleConnsPerHost: 32})}},
	}
	env := make([]string, 0, len(os.Environ())+8)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PUSHGO_") {
			env = append(env, kv)
		}
	}
	logLevel := cfg.LogLevel
	if logLevel == "" {
		logLevel = "info"
	}
	env = append(env,
		"PUSHGO_DATA_DIR="+cfg.DataDir,
		"PUSHGO_HTTP_ADDR="+httpAddr,
		"PUSHGO_NATS_LISTEN="+natsAddr,
		"PUSHGO_LOG_LEVEL="+logLevel,
		// As a scaled deployment sets it (compose.yaml): the tests run
		// several pusher replicas; a new single node gets 2 ("auto").
		"PUSHGO_DELIVERY_PARTITIONS="+strconv.Itoa(deliveryPartitions),
	)
	if cfg.Token != "" {
		env = append(env, "PUSHGO_TOKEN="+cfg.Token)
	}
	if cfg.Target != "" {
		env = append(env, "PUSHGO_TARGET="+cfg.Target)
	}
	if cfg.NATSURL != "" {
		env = append(env, "PUSHGO_NATS_URL="+cfg.NATSURL)
		g.natsURL = cfg.NATSURL
		// The broker admits its roles' credentials only: the process
		// presents its target's, unless the test gives it others.
		if !slices.ContainsFunc(cfg.Env, func(kv string) bool { return strings.HasPrefix(kv, "PUSHGO_NATS_CREDS=") }) {
			env = append(env, "PUSHGO_NATS_CREDS="+credsFile(t, cfg.NATSURL, cmp.Or(cfg.Target, "all")))
		}
	} else {
		brokerCreds.Store(g.natsURL, filepath.Join(cfg.DataDir, "credentials"))
	}
	env = append(env, cfg.Env...)
	g.cmd = exec.Command(pushgoBin, cfg.Args...)
	g.cmd.Env = env
	g.cmd.Stdout = g.output
	g.cmd.Stderr = g.output
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("%s: start: %v", name, err)
	}
	go func() {
		g.waitErr = g.cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		g.kill()
		g.HTTP.CloseIdleConnections()
		if t.Failed() {
			t.Logf("---- %s (http %s, nats %s) output ----\n%s---- end of %s ----", name, httpAddr, g.natsURL, g.output.String(), name)
		}
	})
	path := "/readyz"
	switch {
	case cfg.WaitPath != "":
		path = cfg.WaitPath
	case cfg.Target == "projector", cfg.Target == "pusher", cfg.Target == "ingest":
		// Every target serves /healthz; only a process with a projector
		// (or one reachable) can answer /readyz 200.
		path = "/healthz"
	}
	if err := g.waitUp(path, 20*time.Second); err != nil {
		// Only a port freePort chose can be asked for again.
		for _, chosen := range []struct{ given, addr string }{{cfg.HTTPAddr, httpAddr}, {cfg.NATSAddr, natsAddr}} {
			if g.exited() && chosen.given == "" && strings.Contains(g.output.String(), "listen tcp "+chosen.addr+": bind: address already in use") {
				return nil, fmt.Errorf("%w (port %s taken)", err, chosen.addr)
			}
		}
		t.Fatal(err)
	}
	return g, nil
}

// brokerCreds maps the client URL of a process's embedded broker to the
// directory of its credentials: <data dir>/credentials, one nkey seed
// file per role (<role>.nk), generated on the broker's first start.
var brokerCreds sync.Map

// credsFile is the seed file of role (a target, or admin) for the broker
// at natsURL, which a process of this test binary started.
func credsFile(t *testing.T, natsURL, role string) string {
	t.Helper()
	dir, ok := brokerCreds.Load(natsURL)
	if !ok {
		t.Fatalf("no pushgo process started here runs the broker at %s", natsURL)
	}
	return filepath.Join(dir.(string), role+".nk")
}

func (g *gateway) waitReady(bound time.Duration) {
	g.t.Helper()
	g.waitPath("/readyz", bound)
}

// waitPath polls a GET route of g until it answers 200, and fails the
// test if it does not within bound.
func (g *gateway) waitPath(path string, bound time.Duration) {
	g.t.Helper()
	if err := g.waitUp(path, bound); err != nil {
		g.t.Fatal(err)
	}
}

// waitUp is waitPath, returning its failure.
func (g *gateway) waitUp(path string, bound time.Duration) error {
	g.t.Helper()
	deadline := time.Now().Add(bound)
	probe := &http.Client{Timeout: time.Second, Transport: apiValidating(g.t, nil)}
	defer probe.CloseIdleConnections()
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-g.done:
			return fmt.Errorf("%s exited before it was ready: %v", g.name, g.waitErr)
		default:
		}
		resp, err := probe.Get(g.base + path)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			// Only once the process says it listens: another process that
			// took the port freePort chose answered 200 too, and the test
			// went on with a gateway that had exited (bind: address
			// already in use). The harness's processes log at info or
			// finer.
			if resp.StatusCode == http.StatusOK && strings.Contains(g.output.String(), `msg="pushgo serving"`) {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: %s not 200 within %s (last: %s)", g.name, path, bound, last)
}

// exited reports whether the process has ended.
func (g *gateway) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be reaped.
func (g *gateway) kill() {
	if g.exited() {
		return
	}
	_ = g.cmd.Process.Kill()
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		g.t.Errorf("%s: not reaped 10s after SIGKILL", g.name)
	}
}

// terminate sends SIGTERM and waits for a graceful exit; it returns the
// process's exit error (nil on status 0).
func (g *gateway) terminate() error {
	if g.exited() {
		return g.waitErr
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
		return g.waitErr
	case <-time.After(15 * time.Second):
		g.kill()
		return errors.New("did not exit within 15s of SIGTERM; killed")
	}
}

// ---------------------------------------------------------------------------
// HTTP

// apiResp is one HTTP answer of the gateway.
type apiResp = apitest.Reply

// mustJSON marshals a request body built by the test; it is safe to call
// from any goroutine (a failure is a bug in the test and panics).
func mustJSON(_ *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("e2e: marshal %T: %v", v, err))
	}
	return b
}

// envelope decodes the response envelope, requiring exactly the
// documented members: {success, data} on success, {success, data, error,
// error_code, problem} on failure. (A success used to carry "error": null
// and "error_code": null too; the Android app reads them with org.json's
// optString, which turns null into "null", and fails the call:
// app/src/main/java/io/ethan/pushgo/data/ChannelSubscriptionService.kt,
// execute. So they are absent, as in PushGo's StatusResponse.)
func envelope(r *apiResp) (map[string]json.RawMessage, error) {
	var env map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &env); err != nil {
		return nil, fmt.Errorf("response is not a JSON object: %v", err)
	}
	want := []string{"data", "error", "error_code", "problem", "success"}
	if string(env["success"]) == "true" {
		want = []string{"data", "success"}
	}
	if got := slices.Sorted(maps.Keys(env)); !slices.Equal(got, want) {
		return nil, fmt.Errorf("envelope keys %v, want %v", got, want)
	}
	return env, nil
}

func decodeObject(raw []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// okData checks a documented success (HTTP 200, success true, no error
// members) whose data has exactly keys, and returns data.
func okData(r *apiResp, keys ...string) (map[string]any, error) {
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("want 200: %s", r)
	}
	env, err := envelope(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", r, err)
	}
	if string(env["success"]) != "true" {
		return nil, fmt.Errorf("success is %s, want true: %s", env["success"], r)
	}
	data, err := decodeObject(env["data"])
	if err != nil || data == nil {
		return nil, fmt.Errorf("data is not an object (%v): %s", err, r)
	}
	want := slices.Sorted(slices.Values(keys))
	if got := slices.Sorted(maps.Keys(data)); !slices.Equal(got, want) {
		return nil, fmt.Errorf("data keys %v, want exactly %v: %s", got, want, r)
	}
	if _, ok := data["accepted"]; ok && data["accepted"] != true {
		return nil, fmt.Errorf("accepted is %v, want true: %s", data["accepted"], r)
	}
	return data, nil
}

func mustOK(t *testing.T, r *apiResp, keys ...string) map[string]any {
	t.Helper()
	data, err := okData(r, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Key sets of the write routes' data (spec sections 4, 5, 6).
var (
	eventKeys   = []string{"channel_id", "op_id", "event_id", "accepted"}
	thingKeys   = []string{"channel_id", "op_id", "thing_id", "accepted"}
	messageKeys = []string{"channel_id", "op_id", "message_id", "accepted"}
)

// mustFail checks a documented failure: the status, success false, data
// null, a non-empty error message, the error_code and the problem object
// with the same code and status.
func mustFail(t *testing.T, r *apiResp, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("want %d %s: %s", status, code, r)
		return
	}
	env, err := envelope(r)
	if err != nil {
		t.Errorf("%s: %v", r, err)
		return
	}
	var msg, gotCode string
	if string(env["success"]) != "false" || string(env["data"]) != "null" ||
		json.Unmarshal(env["error"], &msg) != nil || msg == "" ||
		json.Unmarshal(env["error_code"], &gotCode) != nil {
		t.Errorf("want failure envelope {success:false, data:null, error:\"...\", error_code:%q}: %s", code, r)
		return
	}
	if gotCode != code {
		t.Errorf("error_code %q, want %q: %s", gotCode, code, r)
	}
	var p struct {
		Code   string `json:"code"`
		Status int    `json:"status"`
	}
	if json.Unmarshal(env["problem"], &p) != nil || p.Code != code || p.Status != status {
		t.Errorf("problem %s, want code %q status %d: %s", env["problem"], code, status, r)
	}
}

func str(t *testing.T, data map[string]any, key string) string {
	t.Helper()
	s, ok := data[key].(string)
	if !ok {
		t.Fatalf("data.%s is %T %v, want a string", key, data[key], data[key])
	}
	return s
}

// createIngestToken creates an integration token of channel ch with scope
// events.ingest and returns it.
func createIngestToken(t *testing.T, g *gateway, ch, password, name string) string {
	t.Helper()
	return str(t, mustOK(t, g.Post(t, "/channel/token/create", mustJSON(t, map[string]any{
		"channel_id": ch, "password": password, "name": name, "scopes": []string{"events.ingest"}})),
		"channel_id", "token_id", "token", "name", "scopes", "created_at"), "token")
}

// createChannel creates a channel and returns its id.
func createChannel(t *testing.T, g *gateway, name, password string) string {
	t.Helper()
	r := g.Post(t, "/channel/create", mustJSON(t, map[string]string{"channel_name": name, "password": password}))
	data := mustOK(t, r, "channel_id", "channel_name", "created")
	id := str(t, data, "channel_id")
	if !channelID.MatchString(id) {
		t.Fatalf("channel_id %q is not 26 Crockford base32 symbols", id)
	}
	if data["channel_name"] != name || data["created"] != true {
		t.Fatalf("channel/create data %v, want channel_name %q, created true", data, name)
	}
	return id
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ---------------------------------------------------------------------------
// Seeds

// seedBody returns a seed request body from testdata/seeds with only the
// placeholders replaced: each key of repl is a JSON string value in the
// seed (e.g. YOUR_CHANNEL_ID), which must occur.
func seedBody(t *testing.T, name string, repl map[string]string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "seeds", name))
	if err != nil {
		t.Fatalf("seed %s: %v", name, err)
	}
	for from, to := range repl {
		old := []byte(`"` + from + `"`)
		if !bytes.Contains(b, old) {
			t.Fatalf("seed %s has no %s", name, old)
		}
		b = bytes.ReplaceAll(b, old, mustJSON(t, to))
	}
	if !json.Valid(b) {
		t.Fatalf("seed %s is not valid JSON after substitution", name)
	}
	return b
}

// ---------------------------------------------------------------------------
// The log

// opMsg is one message of PUSHGO_OPS.
type opMsg struct {
	Seq     uint64
	Subject string
	Header  nats.Header
	Data    []byte
	// From the envelope in Data.
	Op, OpID, EntityID, ChannelID string
	Payload                       map[string]any
}

// readStream returns every message of stream, in sequence order, read from
// the gateway's NATS port. It also checks the stream's message count.
func readStream(t *testing.T, natsURL, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := dialJS(t, natsURL).js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s info: %v", stream, err)
	}
	var out []*jetstream.RawStreamMsg
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		// Bounded per read, not in all: thousands of reads on a loaded
		// machine can take longer than any total bound.
		gctx, gcancel := context.WithTimeout(context.Background(), 20*time.Second)
		m, err := s.GetMsg(gctx, seq)
		gcancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("stream %s: get seq %d: %v", stream, seq, err)
		}
		out = append(out, m)
	}
	if uint64(len(out)) != info.State.Msgs {
		t.Fatalf("stream %s: read %d messages, info says %d", stream, len(out), info.State.Msgs)
	}
	return out
}

// readOps reads PUSHGO_OPS and decodes each envelope.
func readOps(t *testing.T, natsURL string) []opMsg {
	t.Helper()
	var out []opMsg
	for _, m := range readStream(t, natsURL, opsStream) {
		var env struct {
			Op        string          `json:"op"`
			OpID      string          `json:"op_id"`
			EntityID  string          `json:"entity_id"`
			ChannelID string          `json:"channel_id"`
			Payload   json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(m.Data, &env); err != nil {
			t.Fatalf("seq %d: envelope is not JSON: %v: %s", m.Sequence, err, m.Data)
		}
		payload, err := decodeObject(env.Payload)
		if err != nil {
			t.Fatalf("seq %d: payload is not an object: %v: %s", m.Sequence, err, m.Data)
		}
		if h := m.Header.Get(headerOpID); h != env.OpID {
			t.Errorf("seq %d: header %s %q differs from envelope op_id %q", m.Sequence, headerOpID, h, env.OpID)
		}
		if h := m.Header.Get(headerOp); h != env.Op {
			t.Errorf("seq %d: header %s %q differs from envelope op %q", m.Sequence, headerOp, h, env.Op)
		}
		out = append(out, opMsg{
			Seq: m.Sequence, Subject: m.Subject, Header: m.Header, Data: m.Data,
			Op: env.Op, OpID: env.OpID, EntityID: env.EntityID, ChannelID: env.ChannelID, Payload: payload,
		})
	}
	return out
}

// byOpID indexes ops by op_id; an op_id may occur more than once (that is
// what the tests look for).
func byOpID(msgs []opMsg) map[string][]opMsg {
	m := make(map[string][]opMsg, len(msgs))
	for _, o := range msgs {
		m[o.OpID] = append(m[o.OpID], o)
	}
	return m
}

// num returns a payload number as int64.
func num(t *testing.T, payload map[string]any, key string) int64 {
	t.Helper()
	n, ok := payload[key].(json.Number)
	if !ok {
		t.Fatalf("payload.%s is %T %v, want a number", key, payload[key], payload[key])
	}
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("payload.%s = %s: %v", key, n, err)
	}
	return v
}
