package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/broker/brokertest"
	"github.com/pushgo/gateway/ingest/apitest"
	"github.com/pushgo/gateway/schemas/ids"
)

// post sends a JSON body to base+path and returns the status, the headers
// and the answer decoded, failing t unless it is a JSON object.
func post(t *testing.T, base, path, body string) (int, http.Header, map[string]any) {
	t.Helper()
	r := apitest.New(base).Post(t, path, body)
	return r.Status, r.Header, r.Object(t)
}

// TestExternalBrokerAnd503 runs the gateway against a separate broker over
// TCP (PUSHGO_NATS_URL), then stops that broker: a write answers 503 with
// Retry-After and error_code append_unavailable instead of hanging or
// pretending success.
func TestExternalBrokerAnd503(t *testing.T) {
	b := brokertest.Start(t, brokertest.Listen("127.0.0.1:0"), brokertest.NoEnsure())
	cfg := Defaults()
	cfg.NATSURL, cfg.HTTPAddr, cfg.AppendTimeout, cfg.DataDir = b.ClientURL(), "127.0.0.1:0", time.Second, t.TempDir()
	cfg.NATSCreds = b.CredentialsFile(broker.RoleAll)
	g, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	base := "http://" + g.Addr()

	status, _, m := post(t, base, "/channel/create", `{"channel_name":"ext","password":"correct-horse"}`)
	if status != 200 {
		t.Fatalf("channel create: %d %v", status, m)
	}
	ch := m["data"].(map[string]any)["channel_id"].(string)
	create := `{"channel_id":"` + ch + `","password":"correct-horse","title":"t","status":"s","message":"m","severity":"low","event_time":1713750000}`
	if status, _, m = post(t, base, "/event/create", create); status != 200 {
		t.Fatalf("event create over TCP broker: %d %v", status, m)
	}

	b.Shutdown()
	start := time.Now()
	status, hdr, m := post(t, base, "/event/create", strings.Replace(create, `"title":"t"`, `"title":"u"`, 1))
	if status != 503 || m["error_code"] != "append_unavailable" || hdr.Get("Retry-After") == "" {
		t.Fatalf("with the broker down: %d %v Retry-After=%q", status, m, hdr.Get("Retry-After"))
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("503 took %s, want about the append timeout", took)
	}
	// The append may have landed before the broker went: the answer names
	// the op_id to retry with, the one generated for a create sent
	// without one (its event's id is derived from it), else the client's.
	if opID, _ := m["problem"].(map[string]any)["op_id"].(string); !ids.IsGenerated(opID) {
		t.Fatalf("503 of a create without an op_id: problem.op_id %q, want the one generated for it: %v", opID, m)
	}
	withOpID := strings.Replace(create, `"title":"t"`, `"op_id":"deploy-42","title":"u"`, 1)
	if status, _, m = post(t, base, "/event/create", withOpID); status != 503 || m["problem"].(map[string]any)["op_id"] != "deploy-42" {
		t.Fatalf("503 of a create with op_id deploy-42: %d %v", status, m)
	}
	if r := apitest.New(base).Get(t, "/readyz", nil); r.Status != 503 {
		t.Fatalf("/readyz with the broker down: %d", r.Status)
	}
	// Stopping with the broker gone does not wait on it: a container's stop
	// grace period (10 s in Docker and compose) would otherwise end in a
	// SIGKILL. It took 17 s while the consumers, the read service and the
	// pusher's hand-over each waited out a flush or a timeout first.
	start = time.Now()
	if err := g.Close(context.Background()); err != nil {
		t.Logf("close with the broker down: %v", err)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("close with the broker down took %s, want well within a container's 10 s stop grace period", took)
	}
}

func TestLoadConfig(t *testing.T) {
	env := map[string]string{"PUSHGO_HTTP_ADDR": "0.0.0.0:9000", "PUSHGO_SYNC": "always", "PUSHGO_RETENTION": "7d", "PUSHGO_TOKEN": "t"}
	c, err := Load([]string{"-http-addr", "127.0.0.1:9001"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:9001" || !c.Sync.Always || c.Retention != 7*24*time.Hour || c.Token != "t" || c.DedupWindow != time.Hour {
		t.Fatalf("loaded %+v", c)
	}
	d, err := Load(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if d.HTTPAddr != "127.0.0.1:8080" || d.DataDir != "./data" || d.NATSListen != "127.0.0.1:4222" || d.Target != "all" || d.Sync.String() != DefaultSync ||
		d.APNsConnections != 4 || d.ProjectionCache != 256<<20 || d.SelectionCache != 32<<20 {
		t.Fatalf("defaults %+v", d)
	}
	if c, err := Load(nil, func(k string) string { return map[string]string{"PUSHGO_PROJECTION_CACHE": "1073741824"}[k] }); err != nil || c.ProjectionCache != 1<<30 {
		t.Fatalf("PUSHGO_PROJECTION_CACHE=1073741824: %v %+v", err, c)
	}
	if c, err := Load([]string{"-selection-cache", "0"}, func(string) string { return "" }); err != nil || c.SelectionCache != 0 || c.selectionCacheBytes() >= 0 {
		t.Fatalf("-selection-cache 0 (off: negative for the projector, whose 0 is its default): %v %+v", err, c)
	}
	if got := d.selectionCacheBytes(); got != 32<<20 {
		t.Fatalf("the projector's default selection cache: %d bytes", got)
	}
	if c, err := Load([]string{"-apns-connections", "16"}, func(string) string { return "" }); err != nil || c.APNsConnections != 16 {
		t.Fatalf("-apns-connections 16: %v %+v", err, c)
	}
	if d.InboxPerDevice != 0 || d.StreamOptions().InboxPerDevice != 0 {
		t.Fatalf("default inbox cap %d (streams %d), want 0 (none)", d.InboxPerDevice, d.StreamOptions().InboxPerDevice)
	}
	if c, err := Load(nil, func(k string) string { return map[string]string{"PUSHGO_INBOX_PER_DEVICE": "10000"}[k] }); err != nil || c.StreamOptions().InboxPerDevice != 10_000 {
		t.Fatalf("PUSHGO_INBOX_PER_DEVICE=10000: %v %+v", err, c)
	}
	if d.AlertmanagerAbsentAfter != time.Minute {
		t.Fatalf("default PUSHGO_ALERTMANAGER_ABSENT_AFTER %s, want 1m", d.AlertmanagerAbsentAfter)
	}
	if c, err := Load(nil, func(k string) string { return map[string]string{"PUSHGO_ALERTMANAGER_ABSENT_AFTER": "0s"}[k] }); err != nil || c.AlertmanagerAbsentAfter != 0 {
		t.Fatalf("PUSHGO_ALERTMANAGER_ABSENT_AFTER=0s (at once): %v %+v", err, c)
	}
	if d.AlertmanagerExpireAfter != 0 {
		t.Fatalf("default PUSHGO_ALERTMANAGER_EXPIRE_AFTER %s, want 0 (never)", d.AlertmanagerExpireAfter)
	}
	if c, err := Load(nil, func(k string) string { return map[string]string{"PUSHGO_ALERTMANAGER_EXPIRE_AFTER": "4h30m"}[k] }); err != nil || c.AlertmanagerExpireAfter != 4*time.Hour+30*time.Minute {
		t.Fatalf("PUSHGO_ALERTMANAGER_EXPIRE_AFTER=4h30m: %v %+v", err, c)
	}
	for _, bad := range []map[string]string{
		{"PUSHGO_ALERTMANAGER_EXPIRE_AFTER": "-1h"},
		{"PUSHGO_ALERTMANAGER_EXPIRE_AFTER": "30s"},
		{"PUSHGO_ALERTMANAGER_EXPIRE_AFTER": "later"},
		{"PUSHGO_ALERTMANAGER_ABSENT_AFTER": "-1m"},
		{"PUSHGO_ALERTMANAGER_ABSENT_AFTER": "soon"},
		{"PUSHGO_SYNC": "sometimes"},
		{"PUSHGO_REPLICAS": "0"},
		{"PUSHGO_RETENTION": "-1h"},
		{"PUSHGO_DEDUP_WINDOW": "60d"}, // longer than retention
		{"PUSHGO_TARGET": "everything"},
		{"PUSHGO_TARGET": "mailer"},
		{"PUSHGO_REBUILD": "maybe"},
		{"PUSHGO_LOG_LEVEL": "loud"},
		{"PUSHGO_METADATA_VALUE_MAX": "16385"},
		{"PUSHGO_METADATA_VALUE_MAX": "0"},
		{"PUSHGO_METADATA_VALUE_MAX": "lots"},
		{"PUSHGO_APNS_CONNECTIONS": "0"},
		{"PUSHGO_APNS_CONNECTIONS": "65"},
		{"PUSHGO_PROJECTION_CACHE": "1000"},
		{"PUSHGO_PROJECTION_CACHE": "256MiB"},
		{"PUSHGO_SELECTION_CACHE": "-1"},
		{"PUSHGO_SELECTION_CACHE": "32MiB"},
		{"PUSHGO_SELECTION_CACHE": "4294967296"},
		{"PUSHGO_INBOX_PER_DEVICE": "-1"},
		{"PUSHGO_INBOX_PER_DEVICE": "many"},
		{"PUSHGO_RETENTION": "213504d"}, // a Duration wraps past 106,751 days: 25 minutes
		{"PUSHGO_MAX_STORE": "0"},
		{"PUSHGO_MAX_STORE": "-1"},
		{"PUSHGO_MAX_MEMORY": "0"},
	} {
		if _, err := Load(nil, func(k string) string { return bad[k] }); err == nil {
			t.Errorf("Load accepted %v", bad)
		}
	}
	// A word that is not a flag ends the flags: refused, not the rest
	// silently dropped.
	if c, err := Load([]string{"ingest", "-nats-url", "nats://10.0.0.1:4222"}, func(string) string { return "" }); err == nil {
		t.Errorf("Load accepted a stray argument: target %q, NATS %q", c.Target, c.NATSURL)
	}
}

// TestStreamSettingsErrorsNameTheirVariables: a stream setting out of
// range stops the start with an error naming its variable (they named
// fields: "replicas 7: must be 1..5", "dedup window 960h0m0s: must not
// exceed retention 720h0m0s"), and PUSHGO_REPLICAS above 1 on the embedded
// broker, a single server, is refused by Load (it passed, and the start
// failed later at the streams' creation with the broker's message).
func TestStreamSettingsErrorsNameTheirVariables(t *testing.T) {
	cluster := "nats://10.0.0.1:4222"
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"PUSHGO_REPLICAS": "7", "PUSHGO_NATS_URL": cluster}, "PUSHGO_REPLICAS 7: want 1 to 5"},
		{map[string]string{"PUSHGO_REPLICAS": "3"}, "PUSHGO_REPLICAS 3: the embedded broker (no PUSHGO_NATS_URL) is a single server"},
		{map[string]string{"PUSHGO_DEDUP_WINDOW": "40d"}, "PUSHGO_DEDUP_WINDOW 40d: must not exceed PUSHGO_RETENTION 30d"},
		{map[string]string{"PUSHGO_DEDUP_WINDOW": "2h", "PUSHGO_RETENTION": "90m"}, "PUSHGO_DEDUP_WINDOW 2h0m0s: must not exceed PUSHGO_RETENTION 1h30m0s"},
	} {
		_, err := Load(nil, func(k string) string { return c.env[k] })
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%v: Load: %v, want %q…", c.env, err, c.want)
		}
	}
	if c, err := Load(nil, func(k string) string { return map[string]string{"PUSHGO_REPLICAS": "3", "PUSHGO_NATS_URL": cluster}[k] }); err != nil || c.Replicas != 3 {
		t.Errorf("PUSHGO_REPLICAS=3 with PUSHGO_NATS_URL: %v %+v", err, c)
	}
}

// TestSettingErrorsNameTheirVariables: a setting whose value cannot be
// used is refused by Load with one error naming its variable and what it
// takes (main exits 2 with it, before the broker starts). Found by testers:
// PUSHGO_HTTP_ADDR=notanaddr failed only at the listen ("listen notanaddr:
// … missing port in address", exit 1); PUSHGO_PUBLIC_BASE_URL=notaurl only
// in pusher.Start, after the embedded broker had started; a
// PUSHGO_THING_UPDATE_QUIET that is no channel id was taken without a word
// (and matched nothing); "*" in PUSHGO_THING_UPDATE_ALERTS, which -h
// offered, did nothing; PUSHGO_LIMIT_*=-1 said "want a positive integer or
// off" where 0 is taken too.
func TestSettingErrorsNameTheirVariables(t *testing.T) {
	cases := []struct {
		env  map[string]string
		want string // the error's start
	}{
		{map[string]string{"PUSHGO_HTTP_ADDR": "notanaddr"}, `PUSHGO_HTTP_ADDR "notanaddr": want host:port, such as 127.0.0.1:8080, :8080 or [::1]:8080 (missing port in address)`},
		{map[string]string{"PUSHGO_HTTP_ADDR": "127.0.0.1:99999"}, `PUSHGO_HTTP_ADDR "127.0.0.1:99999": want host:port`},
		{map[string]string{"PUSHGO_HTTP_ADDR": "::1:8080"}, `PUSHGO_HTTP_ADDR "::1:8080": want host:port`},
		{map[string]string{"PUSHGO_NATS_LISTEN": "nowhere"}, `PUSHGO_NATS_LISTEN "nowhere": want host:port, such as 127.0.0.1:4222, or off`},
		// A service name passes net's rule but not the NATS server's: it was
		// found by the broker's start, exit 1, the variable not named.
		{map[string]string{"PUSHGO_NATS_LISTEN": "127.0.0.1:http"}, `PUSHGO_NATS_LISTEN "127.0.0.1:http": want host:port, such as 127.0.0.1:4222, or off`},
		{map[string]string{"PUSHGO_PUBLIC_BASE_URL": "notaurl"}, `PUSHGO_PUBLIC_BASE_URL "notaurl": want an absolute http(s) URL of at most 512 bytes`},
		{map[string]string{"PUSHGO_PUBLIC_BASE_URL": "ftp://push.example.com"}, `PUSHGO_PUBLIC_BASE_URL "ftp://push.example.com": want an absolute http(s) URL`},
		{map[string]string{"PUSHGO_PUBLIC_BASE_URL": "https://"}, `PUSHGO_PUBLIC_BASE_URL "https://": want an absolute http(s) URL`},
		{map[string]string{"PUSHGO_THING_UPDATE_QUIET": "not-a-channel"}, `PUSHGO_THING_UPDATE_QUIET "not-a-channel": "not-a-channel" is not a channel id`},
		{map[string]string{"PUSHGO_THING_UPDATE_QUIET": "3VDNK58JZ14ZV5ZZ19466GK25T,nope"}, `PUSHGO_THING_UPDATE_QUIET "3VDNK58JZ14ZV5ZZ19466GK25T,nope": "nope" is not a channel id`},
		{map[string]string{"PUSHGO_THING_UPDATE_ALERTS": "not-a-channel"}, `PUSHGO_THING_UPDATE_ALERTS "not-a-channel": "not-a-channel" is not a channel id`},
		{map[string]string{"PUSHGO_THING_UPDATE_ALERTS": "*"}, `PUSHGO_THING_UPDATE_ALERTS "*": want channel ids (comma-separated), the channels exempted from PUSHGO_THING_UPDATE_QUIET`},
	}
	// Every limit that 0 or off turns off says so.
	var limitEnvs []string
	d := Defaults()
	for _, s := range d.Limits.Settings() {
		if !strings.HasPrefix(s.Env, "PUSHGO_LIMIT_") || s.Env == "PUSHGO_LIMIT_ALERTMANAGER_BODY" { // a size of at least 1 MiB, never off
			continue
		}
		limitEnvs = append(limitEnvs, s.Env)
		cases = append(cases, struct {
			env  map[string]string
			want string
		}{map[string]string{s.Env: "-1"}, s.Env + ` "-1": want a positive `})
	}
	if len(limitEnvs) < 13 {
		t.Fatalf("only %d PUSHGO_LIMIT_* settings: %v", len(limitEnvs), limitEnvs)
	}
	for _, c := range cases {
		_, err := Load(nil, func(k string) string { return c.env[k] })
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%v: Load: %v, want %q…", c.env, err, c.want)
			continue
		}
		for env := range c.env {
			if strings.HasPrefix(env, "PUSHGO_LIMIT_") && !strings.HasSuffix(err.Error(), ", or 0 or off for no limit") {
				t.Errorf("%v: Load: %v, want it to say that 0 or off turns the limit off", c.env, err)
			}
		}
	}
	// And 0 and off are taken, as the error says.
	for _, env := range limitEnvs {
		for _, off := range []string{"0", "off"} {
			if _, err := Load(nil, func(k string) string { return map[string]string{env: off}[k] }); err != nil {
				t.Errorf("%s=%s: %v", env, off, err)
			}
		}
	}
}

// TestSettingsThatAreTaken: the forms the checks above must not refuse,
// and the channel lists read as the pusher compares them (canonical ids).
func TestSettingsThatAreTaken(t *testing.T) {
	for _, env := range []map[string]string{
		{"PUSHGO_HTTP_ADDR": ":8080"},
		{"PUSHGO_HTTP_ADDR": "[::1]:0"},
		{"PUSHGO_HTTP_ADDR": "localhost:http"},
		{"PUSHGO_NATS_LISTEN": "off"},
		{"PUSHGO_NATS_LISTEN": "nowhere", "PUSHGO_NATS_URL": "nats://10.0.0.1:4222"}, // not used: warned of, not refused
		{"PUSHGO_PUBLIC_BASE_URL": "https://push.example.com/gateway"},
		{"PUSHGO_THING_UPDATE_QUIET": "*"},
	} {
		if _, err := Load(nil, func(k string) string { return env[k] }); err != nil {
			t.Errorf("%v: %v", env, err)
		}
	}
	c, err := Load(nil, func(k string) string {
		return map[string]string{"PUSHGO_THING_UPDATE_QUIET": "*, 01ARZ3NDEKTSV4RRFFQ69G5FAV",
			"PUSHGO_THING_UPDATE_ALERTS": "3vdnk58jz14zv5zz19466gk25t,3VDN-K58J-Z14Z-V5ZZ-1946-6GK2-5T"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	quiet, alerts, err := c.thingUpdateChannels()
	if err != nil || !slices.Equal(quiet, []string{"*", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}) ||
		!slices.Equal(alerts, []string{"3VDNK58JZ14ZV5ZZ19466GK25T", "3VDNK58JZ14ZV5ZZ19466GK25T"}) {
		t.Fatalf("quiet %q, alerts %q, %v", quiet, alerts, err)
	}
}

// TestAlertmanagerDurationsTakeDays: PUSHGO_ALERTMANAGER_ABSENT_AFTER and
// _EXPIRE_AFTER take "<n>d" as every other duration setting does (they
// refused "5d"), and still take 0.
func TestAlertmanagerDurationsTakeDays(t *testing.T) {
	for env, want := range map[[2]string]time.Duration{
		{"PUSHGO_ALERTMANAGER_EXPIRE_AFTER", "5d"}: 5 * 24 * time.Hour,
		{"PUSHGO_ALERTMANAGER_EXPIRE_AFTER", "0"}:  0,
		{"PUSHGO_ALERTMANAGER_ABSENT_AFTER", "1d"}: 24 * time.Hour,
		{"PUSHGO_ALERTMANAGER_ABSENT_AFTER", "0"}:  0,
		{"PUSHGO_ALERTMANAGER_ABSENT_AFTER", "0s"}: 0,
	} {
		c, err := Load(nil, func(k string) string { return map[string]string{env[0]: env[1]}[k] })
		got := c.AlertmanagerAbsentAfter
		if env[0] == "PUSHGO_ALERTMANAGER_EXPIRE_AFTER" {
			got = c.AlertmanagerExpireAfter
		}
		if err != nil || got != want {
			t.Errorf("%s=%s: %v, %s; want %s", env[0], env[1], err, got, want)
		}
	}
	for _, bad := range [][2]string{{"PUSHGO_ALERTMANAGER_EXPIRE_AFTER", "-5d"}, {"PUSHGO_ALERTMANAGER_ABSENT_AFTER", "-1d"}} {
		if _, err := Load(nil, func(k string) string { return map[string]string{bad[0]: bad[1]}[k] }); err == nil || !strings.HasPrefix(err.Error(), bad[0]) {
			t.Errorf("%s=%s: %v", bad[0], bad[1], err)
		}
	}
}

// TestTokenNoRequestCanPresentIsRefused: a PUSHGO_TOKEN that no request's
// Authorization header can carry as ParseBearer takes it stops the start
// with an error naming the variable and why, never quoting the token.
// Before, it was taken as it was: the gateway started "private" and
// answered every request 401 (an env file with CRLF endings left a
// carriage return at its end; HTTP servers trim a header value's spaces).
func TestTokenNoRequestCanPresentIsRefused(t *testing.T) {
	const secret = "s3cretGatewayToken"
	for name, c := range map[string]struct{ token, why string }{
		"CRLF env file":  {secret + "\r", "carriage return"},
		"trailing space": {secret + " ", "space"},
		"leading tab":    {"\t" + secret, "tab"},
		"inner space":    {"s3cret " + secret, "space"},
		"newline":        {secret + "\n", "control character"},
		"too long":       {strings.Repeat("x", 5000), "at most 4096"},
	} {
		_, err := Load(nil, func(k string) string { return map[string]string{"PUSHGO_TOKEN": c.token}[k] })
		if err == nil || !strings.HasPrefix(err.Error(), "PUSHGO_TOKEN: ") || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: Load: %v, want PUSHGO_TOKEN refused (%s)", name, err, c.why)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "xxxx") {
			t.Errorf("%s: the error quotes the token: %v", name, err)
		}
	}
	for _, ok := range []string{secret, strings.Repeat("x", 4096), "tok-with_~+/=.:!chars"} {
		if c, err := Load(nil, func(k string) string { return map[string]string{"PUSHGO_TOKEN": ok}[k] }); err != nil || c.Token != ok {
			t.Errorf("PUSHGO_TOKEN of %d bytes refused: %v", len(ok), err)
		}
	}
}

// TestUsageShowsNoSecret: the flags' usage (-h, or printed after a bad
// flag) shows the built-in defaults, never a value from the environment:
// PUSHGO_TOKEN was printed as the -token flag's default.
func TestUsageShowsNoSecret(t *testing.T) {
	var out strings.Builder
	env := map[string]string{"PUSHGO_TOKEN": "s3cret-gateway-token", "PUSHGO_NATS_URL": "nats://user:hunter2@10.0.0.1:4222"}
	_, err := loadTo(&out, []string{"-no-such-flag"}, func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("a bad flag was accepted")
	}
	if !strings.Contains(out.String(), "-token") {
		t.Fatalf("no usage printed: %q", out.String())
	}
	for _, secret := range []string{"s3cret-gateway-token", "hunter2"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("the usage shows %q:\n%s", secret, out.String())
		}
	}
	c, err := Load(nil, func(k string) string { return env[k] })
	if err != nil || c.Token != "s3cret-gateway-token" {
		t.Fatalf("the environment's token not taken: %v %q", err, c.Token)
	}
}

// TestEmbeddedSettingsOnAClusterAreWarnedOf: PUSHGO_SYNC, PUSHGO_MAX_STORE,
// PUSHGO_MAX_MEMORY and PUSHGO_NATS_LISTEN configure the embedded broker
// only; set (by variable or flag) beside PUSHGO_NATS_URL, the start says
// they do nothing (an operator who set PUSHGO_SYNC=always on a cluster for
// power-loss safety did not get it, and nothing said so). Defaults alone
// are no warning.
func TestEmbeddedSettingsOnAClusterAreWarnedOf(t *testing.T) {
	b := brokertest.Start(t, brokertest.Listen("127.0.0.1:0"), brokertest.NoEnsure())
	env := map[string]string{"PUSHGO_NATS_URL": b.ClientURL(), "PUSHGO_SYNC": "always", "PUSHGO_DATA_DIR": t.TempDir(),
		"PUSHGO_HTTP_ADDR": "127.0.0.1:0", "PUSHGO_NATS_CREDS": b.CredentialsFile(broker.RoleAll)}
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-max-store", "1073741824"}, env, "PUSHGO_SYNC,PUSHGO_MAX_STORE"},
		{nil, map[string]string{"PUSHGO_NATS_URL": env["PUSHGO_NATS_URL"], "PUSHGO_DATA_DIR": t.TempDir(), "PUSHGO_HTTP_ADDR": "127.0.0.1:0",
			"PUSHGO_NATS_CREDS": env["PUSHGO_NATS_CREDS"]}, ""},
	} {
		cfg, err := Load(c.args, func(k string) string { return c.env[k] })
		if err != nil {
			t.Fatal(err)
		}
		var logged bytes.Buffer
		g, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(&logged, nil)))
		if err != nil {
			t.Fatal(err)
		}
		_ = g.Close(context.Background())
		warned := strings.Contains(logged.String(), "have no effect with PUSHGO_NATS_URL")
		if warned != (c.want != "") || (warned && !strings.Contains(logged.String(), "ignored="+c.want)) {
			t.Errorf("args %v: warned %t, want the settings %q:\n%s", c.args, warned, c.want, logged.String())
		}
	}
}
