package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The real Alertmanager: its released source, built from the module proxy
// the first time a test needs it, notifying a gateway process through its
// webhook receiver, as a user's would.

// alertmanagerVersion is the Alertmanager built (the newest the module
// proxy served when this was written).
const alertmanagerVersion = "v0.35.0"

var alertmanagerBin struct {
	once sync.Once
	path string
	err  error
}

// buildAlertmanager builds cmd/alertmanager at alertmanagerVersion, once
// per test binary. Its web UI is built by its Makefile and is not in the
// module, so the build gets an empty one; outside this workspace
// (GOWORK=off), with the module's own go.mod and go.sum, so none of its
// requirements reach the gateway's.
func buildAlertmanager(t *testing.T) string {
	t.Helper()
	alertmanagerBin.once.Do(func() {
		alertmanagerBin.path, alertmanagerBin.err = buildAlertmanagerOnce()
	})
	if alertmanagerBin.err != nil {
		t.Fatal(alertmanagerBin.err)
	}
	return alertmanagerBin.path
}

func buildAlertmanagerOnce() (string, error) {
	// Built once per machine: the binary is kept in the user's cache
	// directory under its version, so a later run only finds it (the
	// build cache would still link 50 MB each time).
	var kept string
	if cache, err := os.UserCacheDir(); err == nil {
		kept = filepath.Join(cache, "pushgo-e2e", "alertmanager-"+alertmanagerVersion)
		if fi, err := os.Stat(kept); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o100 != 0 {
			return kept, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	work, err := os.MkdirTemp("", "pushgo-e2e-alertmanager-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	dl := exec.CommandContext(ctx, "go", "mod", "download", "-json", "github.com/prometheus/alertmanager@"+alertmanagerVersion)
	dl.Dir, dl.Env = work, env
	out, err := dl.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download alertmanager: %v\n%s", err, out)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("go mod download alertmanager: no directory in %s (%v)", out, err)
	}
	src := filepath.Join(work, "src")
	if err := os.CopyFS(src, os.DirFS(mod.Dir)); err != nil {
		return "", fmt.Errorf("copy the alertmanager module: %w", err)
	}
	for _, ui := range []string{"elm", "mantine"} {
		dir := filepath.Join(src, "ui", "app", "dist", ui)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "index.html"), nil, 0o644); err != nil {
			return "", err
		}
	}
	bin := kept
	if bin == "" {
		bin = filepath.Join(os.TempDir(), fmt.Sprintf("pushgo-e2e-alertmanager-%s-%d", alertmanagerVersion, os.Getpid()))
	} else if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	// Built beside its place and renamed into it: a test binary of another
	// package building at once never finds half a file.
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", tmp, "./cmd/alertmanager") // -trimpath: the copy's directory stays out of the build cache's keys
	build.Dir, build.Env = src, env
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build alertmanager %s: %v\n%s", alertmanagerVersion, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// alertmanagerProc is one Alertmanager process.
type alertmanagerProc struct {
	base   string
	output *syncBuffer
}

// amReceiver is how Alertmanager notifies: send_resolved, the
// repeat_interval of a group whose alerts have not changed, and
// max_alerts (0: every alert of a group).
type amReceiver struct {
	sendResolved   bool
	repeatInterval string
	maxAlerts      int
}

// notifyResolved is the receiver's usual setting (the webhook's default).
var notifyResolved = amReceiver{sendResolved: true, repeatInterval: "1h"}

// startAlertmanager starts Alertmanager with one route to the gateway's
// Alertmanager route (token as its Api-Token), grouping by alertname,
// and waits until it is ready; it is killed at cleanup, its output
// logged if the test failed.
func startAlertmanager(t *testing.T, g *gateway, token string, rcv amReceiver) *alertmanagerProc {
	t.Helper()
	bin := buildAlertmanager(t)
	dir := t.TempDir()
	conf := `route:
  receiver: pushgo
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: ` + rcv.repeatInterval + `
receivers:
  - name: pushgo
    webhook_configs:
      - url: ` + g.base + `/integrations/alertmanager
        send_resolved: ` + strconv.FormatBool(rcv.sendResolved) + `
        max_alerts: ` + strconv.Itoa(rcv.maxAlerts) + `
        http_config:
          authorization:
            type: Api-Token
            credentials: ` + token + `
`
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	am := &alertmanagerProc{base: "http://" + addr, output: &syncBuffer{}}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "alertmanager.yml"), "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=debug")
	cmd.Stdout, cmd.Stderr = am.output, am.output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("alertmanager output:\n%s", am.output.String())
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		if resp, err := http.Get(am.base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return am
			}
		}
		select {
		case <-done:
			t.Fatalf("alertmanager exited:\n%s", am.output.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager not ready within a minute:\n%s", am.output.String())
		}
	}
}

// post sends alerts to Alertmanager's API, as Prometheus does.
func (am *alertmanagerProc) post(t *testing.T, alerts []map[string]any) {
	t.Helper()
	body, err := json.Marshal(alerts)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(am.base+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK {
		t.Fatalf("alertmanager /api/v2/alerts: %d %s", resp.StatusCode, b)
	}
}

// instanceDown is n alerts of one group (alertname InstanceDown), with
// the labels and annotations of a Kubernetes monitoring stack's rule:
// about 900 bytes each in a webhook notification. A zero endsAt leaves
// them firing; one in the past resolves them.
func instanceDown(n int, startsAt, endsAt time.Time) []map[string]any {
	alerts := make([]map[string]any, n)
	for i := range alerts {
		host := fmt.Sprintf("node-%04d", i)
		a := map[string]any{
			"labels": map[string]string{
				"alertname": "InstanceDown", "severity": "critical", "job": "node-exporter", "instance": host + ":9100",
				"namespace": "monitoring", "pod": "node-exporter-" + host, "container": "node-exporter",
				"endpoint": "https", "service": "node-exporter", "prometheus": "monitoring/k8s", "cluster": "prod-eu-west-1",
			},
			"annotations": map[string]string{
				"summary":     host + " is down",
				"description": host + ":9100 of job node-exporter has not answered a scrape for more than 5 minutes; the node may be gone, or its exporter stopped.",
				"runbook_url": "https://runbooks.example.com/runbooks/node/instancedown",
			},
			"startsAt":     startsAt.UTC().Format(time.RFC3339Nano),
			"generatorURL": "http://prometheus-k8s-0:9090/graph?g0.expr=up%7Bjob%3D%22node-exporter%22%7D+%3D%3D+0&g0.tab=1",
		}
		if !endsAt.IsZero() {
			a["endsAt"] = endsAt.UTC().Format(time.RFC3339Nano)
		}
		alerts[i] = a
	}
	return alerts
}

// countEvents pages /channel/events of state and counts its items.
func countEvents(t *testing.T, g *gateway, channel, password, state string) int {
	t.Helper()
	n, cursor := 0, ""
	for range 100 {
		body := map[string]any{"channel_id": channel, "password": password, "state": state, "limit": 1000}
		if cursor != "" {
			body["cursor"] = cursor
		}
		data := mustOK(t, g.Post(t, "/channel/events", mustJSON(t, body)), "items", "next_cursor", "has_more")
		items, _ := data["items"].([]any)
		n += len(items)
		if cursor, _ = data["next_cursor"].(string); cursor == "" {
			return n
		}
	}
	t.Fatal("/channel/events: more than 100 pages")
	return 0
}

// metricValue is the value of the sample of name with labels (as
// written, e.g. `{limit="x"}`, or "") in g's /metrics, or -1 when absent.
func metricValue(t *testing.T, g *gateway, name, labels string) float64 {
	t.Helper()
	code, body := getPath(t, g, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+labels+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("/metrics %s%s: %q", name, labels, v)
			}
			return f
		}
	}
	return -1
}

// TestAlertmanagerLargeGroup: the real Alertmanager notifies the gateway
// of one group of 3,000 firing alerts, a notification of about 2.7 MiB,
// then of their resolution. Until 4 December every notification over
// 1 MiB was answered 413, which Alertmanager never resends: an outage
// large enough to fill a group reached nobody, and its alerts never
// resolved. The notification also first finds the budget of large bodies
// taken (PUSHGO_LIMIT_LARGE_BODIES, by a body that is slow to arrive):
// it is answered 503, and Alertmanager resends it once the budget is free.
func TestAlertmanagerLargeGroup(t *testing.T) {
	t.Parallel()
	buildAlertmanager(t) // before the slow body's deadline runs
	// The slow body's deadline is a minute per started MiB: room for a
	// slow machine between its start and the notification's refusal.
	g := startGateway(t, gwConfig{DataDir: t.TempDir(), Env: []string{"PUSHGO_LIMIT_LARGE_BODIES=2MiB", "PUSHGO_LIMIT_BODY_READ=1m"}})
	const password = "correct-horse"
	channel := createChannel(t, g, "outage", password)
	token := createIngestToken(t, g, channel, password, "alertmanager")

	// A body of 1.5 MiB, announced and slow to arrive, holds that much of
	// the 2 MiB budget: the notification does not fit beside it.
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest(http.MethodPost, g.base+"/integrations/alertmanager", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 3 << 19
	req.Header.Set("Authorization", "Api-Token "+token)
	req.Header.Set("Content-Type", "application/json")
	held := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	waitFor(t, "the slow body holds its place", 30*time.Second, func() bool {
		return metricValue(t, g, "pushgo_limit_large_body_bytes", "") == 3<<19
	}, g)

	am := startAlertmanager(t, g, token, notifyResolved)
	const n = 3000
	started := time.Now().Add(-10 * time.Minute)
	firing := instanceDown(n, started, time.Time{})
	if b, _ := json.Marshal(firing); len(b) < 2<<20 {
		t.Fatalf("the alerts are %d bytes: the notification would not pass 2 MiB", len(b))
	}
	am.post(t, firing)

	refused := `{limit="integration_large_bodies"}`
	waitFor(t, "the notification refused while the budget is taken", time.Minute, func() bool {
		return metricValue(t, g, "pushgo_limit_refusals_total", refused) >= 1
	}, g)
	pw.CloseWithError(io.ErrUnexpectedEOF) // the slow body ends unfinished
	if s := <-held; s == http.StatusOK {
		t.Fatalf("the unfinished body was answered %d", s)
	}
	waitFor(t, fmt.Sprintf("%d ongoing events", n), 2*time.Minute, func() bool {
		return countEvents(t, g, channel, password, "ONGOING") == n
	}, g)

	am.post(t, instanceDown(n, started, time.Now().Add(-time.Second)))
	waitFor(t, fmt.Sprintf("%d closed events", n), 2*time.Minute, func() bool {
		return countEvents(t, g, channel, password, "CLOSED") == n
	}, g)
	if open := countEvents(t, g, channel, password, "ONGOING"); open != 0 {
		t.Errorf("%d events still ongoing after the resolution", open)
	}
	if b := metricValue(t, g, "pushgo_limit_large_body_bytes", ""); b != 0 {
		t.Errorf("%v bytes of large bodies still held after every answer", b)
	}
}

// TestAlertmanagerRefiresWithoutResolves: with send_resolved: false,
// Alertmanager never tells the gateway that an alert resolved; when the
// alert fires again (a new startsAt), it sends the new occurrence once
// its repeat_interval has passed. The gateway closes the Event of the
// first occurrence and opens one for the new, which alerts again. Until
// 4 December the new occurrence was an unchanged resend of the open
// Event: nobody was told of it.
func TestAlertmanagerRefiresWithoutResolves(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gwConfig{DataDir: t.TempDir()})
	const password = "correct-horse"
	channel := createChannel(t, g, "refires", password)
	token := createIngestToken(t, g, channel, password, "alertmanager")
	am := startAlertmanager(t, g, token, amReceiver{sendResolved: false, repeatInterval: "2s"})

	ongoing := func() []map[string]any {
		data := mustOK(t, g.Post(t, "/channel/events", mustJSON(t, map[string]any{"channel_id": channel, "password": password,
			"state": "ONGOING"})), "items", "next_cursor", "has_more")
		var out []map[string]any
		for _, it := range data["items"].([]any) {
			out = append(out, it.(map[string]any))
		}
		return out
	}
	first := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	am.post(t, instanceDown(1, first, time.Time{}))
	var firstID string
	waitFor(t, "the first occurrence's event", time.Minute, func() bool {
		evs := ongoing()
		if len(evs) == 1 {
			firstID, _ = evs[0]["event_id"].(string)
		}
		return firstID != ""
	}, g)

	// Resolved (Alertmanager tells nobody), then firing again, after the
	// end (Alertmanager merges an alert into the one it holds when their
	// times overlap, keeping the earlier start).
	am.post(t, instanceDown(1, first, time.Now().Add(-30*time.Second)))
	second := time.Now().Add(-10 * time.Second).Truncate(time.Second)
	// Resolved in its dispatcher, not only in its store: the alerts API
	// answers from the store at once, and Alertmanager's dispatch
	// workers take what was posted in any order, so a re-fire posted then
	// could reach the group before the resolve, which then replaced it:
	// the group flushed a resolve nobody is told of, and dropped the
	// alert (reproduced against the binary under load; the test failed
	// once in about twenty make test runs). Prometheus sends a firing
	// alert again every minute; the test sends it once.
	waitFor(t, "Alertmanager has the alert resolved", 30*time.Second, func() bool { return am.firing(t) == 0 && am.groups(t) == 0 }, g)
	am.post(t, instanceDown(1, second, time.Time{}))
	var seen []map[string]any
	t.Cleanup(func() {
		if t.Failed() { // what the gateway held when the wait gave up (Alertmanager's debug log shows what it sent)
			t.Logf("ongoing events last seen (the first %s, the second's start %d): %v", firstID, second.UnixMilli(), seen)
		}
	})
	waitFor(t, "the second occurrence's event, the first closed", time.Minute, func() bool {
		evs := ongoing()
		seen = evs
		return len(evs) == 1 && evs[0]["event_id"] != firstID && num(t, evs[0], "started_at") == second.UnixMilli()
	}, g)
	e := mustOK(t, g.Post(t, "/event/get", mustJSON(t, map[string]any{"channel_id": channel, "password": password, "event_id": firstID})),
		"channel_id", "event_id", "title", "status", "message", "severity", "state", "event_time", "started_at", "ended_at", "attrs",
		"created_at", "updated_at", "version", "last_seq", "last_op_id")
	if e["state"] != "CLOSED" || num(t, e, "ended_at") != second.UnixMilli() {
		t.Fatalf("the first occurrence's event: %v", e)
	}
}

// groups is how many alert groups Alertmanager's dispatcher holds with an
// active alert: a group whose alerts are all resolved drops out.
func (am *alertmanagerProc) groups(t *testing.T) int {
	t.Helper()
	return am.count(t, "/api/v2/alerts/groups")
}

// firing is how many alerts Alertmanager holds as active.
func (am *alertmanagerProc) firing(t *testing.T) int {
	t.Helper()
	return am.count(t, "/api/v2/alerts")
}

// count is how many active items (unsilenced, uninhibited) the list
// Alertmanager answers at path holds.
func (am *alertmanagerProc) count(t *testing.T, path string) int {
	t.Helper()
	resp, err := http.Get(am.base + path + "?active=true&silenced=false&inhibited=false")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var items []json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&items); err != nil {
		t.Fatalf("alertmanager %s: %v", path, err)
	}
	return len(items)
}

// TestAlertmanagerResolveCutByMaxAlerts: with max_alerts 2, node-0001 and
// node-0002 fire; then node-0000 fires as node-0002 resolves. Alertmanager
// sorts a group's alerts by instance and cuts node-0002's resolve from the
// notification, then forgets it (a resolved alert is dropped after any
// notification that succeeded); its next notification names node-0000
// and node-0001 only, complete. The gateway closes node-0002's Event then.
// Until 4 December it stayed open for good: its resolve never came.
func TestAlertmanagerResolveCutByMaxAlerts(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gwConfig{DataDir: t.TempDir(), Env: []string{"PUSHGO_ALERTMANAGER_ABSENT_AFTER=0s"}})
	const password = "correct-horse"
	channel := createChannel(t, g, "max-alerts", password)
	token := createIngestToken(t, g, channel, password, "alertmanager")
	am := startAlertmanager(t, g, token, amReceiver{sendResolved: true, repeatInterval: "2s", maxAlerts: 2})

	// ongoing is the channel's open Events by message ("node-0002 is down").
	ongoing := func() map[string]string {
		data := mustOK(t, g.Post(t, "/channel/events", mustJSON(t, map[string]any{"channel_id": channel, "password": password,
			"state": "ONGOING"})), "items", "next_cursor", "has_more")
		out := map[string]string{}
		for _, it := range data["items"].([]any) {
			e := it.(map[string]any)
			out[e["message"].(string)] = e["event_id"].(string)
		}
		return out
	}
	start := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	am.post(t, instanceDown(3, start, time.Time{})[1:])
	var cut string
	waitFor(t, "node-0001's and node-0002's events", time.Minute, func() bool {
		evs := ongoing()
		cut = evs["node-0002 is down"]
		return len(evs) == 2 && cut != ""
	}, g)

	am.post(t, []map[string]any{instanceDown(3, start, time.Time{})[0], instanceDown(3, start, time.Now().Add(-30*time.Second))[2]})
	waitFor(t, "node-0000 and node-0001 open, node-0002 closed", time.Minute, func() bool {
		evs := ongoing()
		return len(evs) == 2 && evs["node-0000 is down"] != "" && evs["node-0001 is down"] != ""
	}, g)
	e := mustOK(t, g.Post(t, "/event/get", mustJSON(t, map[string]any{"channel_id": channel, "password": password, "event_id": cut})),
		"channel_id", "event_id", "title", "status", "message", "severity", "state", "event_time", "started_at", "ended_at", "attrs",
		"created_at", "updated_at", "version", "last_seq", "last_op_id")
	if e["state"] != "CLOSED" || e["status"] != "resolved" || e["severity"] != "critical" ||
		!strings.HasPrefix(e["message"].(string), "Resolved: no longer in its group") {
		t.Fatalf("node-0002's event: %v", e)
	}
	// The premise: Alertmanager did cut the resolve (the gateway logs each
	// truncated notification), so the close came from the group's record.
	if out := g.output.String(); !strings.Contains(out, "notification truncated by the sender") || !strings.Contains(out, "truncated_alerts=1") {
		t.Fatalf("no notification with one alert cut in the gateway's log:\n%s", out)
	}
	// And so do its metrics.
	if gone, cut := metricValue(t, g, "pushgo_alertmanager_alerts_total", `{outcome="gone"}`),
		metricValue(t, g, "pushgo_alertmanager_truncated_notifications_total", ""); gone != 1 || cut < 1 {
		t.Fatalf("/metrics: %v alerts gone, want 1; %v notifications truncated, want at least 1", gone, cut)
	}
}
