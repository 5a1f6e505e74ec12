package limits

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pushgo/gateway/schemas/apierr"
)

// clock is a settable clock for the limits.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTest(t *testing.T, cfg Config) (*Limits, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return New(cfg, Options{Now: c.now}), c
}

func from(addr string) context.Context { return WithClient(context.Background(), addr) }

func refusals(l *Limits, lim Limit) float64 {
	return testutil.ToFloat64(l.refusals.WithLabelValues(string(lim)))
}

// wantRefused fails unless e is a 429 too_many_password_failures asking
// to wait wait.
func wantRefused(t *testing.T, what string, e *apierr.Error, wait int) {
	t.Helper()
	if e == nil || e.Code != apierr.TooManyPasswordFailures || e.Status() != 429 || e.RetryAfter != wait {
		t.Fatalf("%s: got %v, want 429 too_many_password_failures with Retry-After %d", what, e, wait)
	}
}

// TestPasswordBackoffDoubles: an address's failures are free up to the
// budget, then each one doubles the back-off up to the maximum; during a
// back-off every check of the address is refused before hashing, the
// right password too; a quiet hour forgets the failures.
func TestPasswordBackoffDoubles(t *testing.T) {
	l, clk := newTest(t, Config{PasswordFailuresPerAddr: 3, PasswordFailuresPerChannel: -1, PasswordBackoffMax: 8 * time.Second})
	g, a := l.Passwords(), from("198.51.100.1")
	fail := func() {
		t.Helper()
		if e := g.Admit(a, "CH", false); e != nil {
			t.Fatalf("admit: %v", e)
		}
		g.Checked(a, "CH", false, false)
	}
	fail()
	fail()
	if e := g.Admit(a, "CH", false); e != nil {
		t.Fatalf("two failures of three: %v", e)
	}
	fail() // the third spends the budget
	wantRefused(t, "budget spent", g.Admit(a, "CH", false), 1)
	wantRefused(t, "the right password, cached", g.Admit(a, "CH", true), 1)
	wantRefused(t, "another channel", g.Admit(a, "OTHER", false), 1)
	if e := g.Admit(from("198.51.100.2"), "CH", false); e != nil {
		t.Fatalf("another address: %v", e)
	}
	for _, want := range []int{2, 4, 8, 8} {
		clk.advance(8 * time.Second)
		fail()
		wantRefused(t, "next failure", g.Admit(a, "CH", false), want)
	}
	clk.advance(8 * time.Second)
	if e := g.Admit(a, "CH", false); e != nil {
		t.Fatalf("after the back-off: %v", e)
	}
	g.Checked(a, "CH", false, true) // the right password works
	clk.advance(time.Hour + time.Second)
	fail()
	if e := g.Admit(a, "CH", false); e != nil {
		t.Fatalf("an hour later the count starts again: %v", e)
	}
	if got := refusals(l, PasswordAddr); got != 7 {
		t.Errorf("password_address refusals %v, want 7", got)
	}
	if got := testutil.ToFloat64(l.checks.WithLabelValues("mismatch")); got != 8 {
		t.Errorf("mismatch checks %v, want 8", got)
	}
}

// TestChannelBackoffSparesProvenAddresses: guesses from many addresses
// put the channel in back-off; an address that proved the password keeps
// passing, an unproven one is refused even with the right (cached)
// password, which would otherwise tell a guesser it guessed right.
func TestChannelBackoffSparesProvenAddresses(t *testing.T) {
	l, clk := newTest(t, Config{PasswordFailuresPerAddr: 100, PasswordFailuresPerChannel: 3})
	g := l.Passwords()
	sender := from("203.0.113.10")
	if e := g.Admit(sender, "CH", false); e != nil {
		t.Fatal(e)
	}
	g.Checked(sender, "CH", false, true)
	for _, a := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
		if e := g.Admit(from(a), "CH", false); e != nil {
			t.Fatalf("%s: %v", a, e)
		}
		g.Checked(from(a), "CH", false, false)
	}
	wantRefused(t, "new address", g.Admit(from("198.51.100.4"), "CH", false), 1)
	wantRefused(t, "new address, right password", g.Admit(from("198.51.100.4"), "CH", true), 1)
	if e := g.Admit(sender, "CH", true); e != nil {
		t.Fatalf("proven sender, cached: %v", e)
	}
	if e := g.Admit(sender, "CH", false); e != nil {
		t.Fatalf("proven sender, to be hashed: %v", e)
	}
	if e := g.Admit(from("198.51.100.4"), "OTHER", false); e != nil {
		t.Fatalf("another channel: %v", e)
	}
	if got := refusals(l, PasswordChannel); got != 2 {
		t.Errorf("password_channel refusals %v, want 2", got)
	}
	// Proof lasts a day.
	clk.advance(trustFor + time.Second)
	for range 3 {
		g.Checked(from("198.51.100.5"), "CH", false, false)
	}
	wantRefused(t, "proof expired", g.Admit(sender, "CH", true), 1)
}

// TestBucketsPerAddress: an address gets a minute's worth of calls at
// once, then one every 60/n seconds; another address has its own bucket;
// an IPv6 /64 is one address.
func TestBucketsPerAddress(t *testing.T) {
	l, clk := newTest(t, Config{DeviceRegisterPerMinute: 3})
	a := from("198.51.100.1")
	for i := range 3 {
		if e := l.DeviceRegister(a); e != nil {
			t.Fatalf("call %d: %v", i, e)
		}
	}
	e := l.DeviceRegister(a)
	if e == nil || e.Code != apierr.RateLimited || e.RetryAfter != 20 {
		t.Fatalf("fourth call: %v, want rate_limited after 20 s", e)
	}
	if e := l.DeviceRegister(from("198.51.100.2")); e != nil {
		t.Fatalf("another address: %v", e)
	}
	clk.advance(20 * time.Second)
	if e := l.DeviceRegister(a); e != nil {
		t.Fatalf("20 s later: %v", e)
	}
	for i := range 3 {
		if e := l.DeviceRegister(from("2001:db8:1:2::" + string(rune('a'+i)))); e != nil {
			t.Fatalf("v6 call %d: %v", i, e)
		}
	}
	if e := l.DeviceRegister(from("2001:db8:1:2:ffff::1")); e == nil {
		t.Fatal("the same /64 got a fourth call")
	}
	if e := l.DeviceRegister(from("2001:db8:1:3::1")); e != nil {
		t.Fatalf("another /64: %v", e)
	}
	if got := refusals(l, DeviceRegister); got != 2 {
		t.Errorf("device_register refusals %v, want 2", got)
	}
	if e := l.ChannelCreate(context.Background()); e != nil {
		t.Fatalf("no client address: %v", e)
	}
}

// TestBucketsPerNetwork: the /64s of one IPv6 /48 share NetworkFactor
// times an address's budget of channel creations (a subscriber's /56 held
// 256 budgets); another /48 has its own, IPv4 addresses stay each on their
// own, and failed token checks stay per address.
func TestBucketsPerNetwork(t *testing.T) {
	l, clk := newTest(t, Config{ChannelCreatePerMinute: 2, AuthFailuresPerMinute: 1})
	budget := 2 * NetworkFactor
	for i := range budget {
		// Each /64 of the /56 2001:db8:0:100::/56 within its own budget.
		if e := l.ChannelCreate(from(fmt.Sprintf("2001:db8:0:1%02x::1", i/2))); e != nil {
			t.Fatalf("create %d: %v", i, e)
		}
	}
	e := l.ChannelCreate(from("2001:db8:0:1ff::1")) // a /64 of the same /48 not used yet
	if e == nil || e.Code != apierr.RateLimited || e.RetryAfter != 2 || !strings.Contains(e.Detail, "/48") {
		t.Fatalf("a fresh /64 of a spent /48: %v, want rate_limited after 2 s naming the /48", e)
	}
	if e := l.ChannelCreate(from("2001:db8:1::1")); e != nil {
		t.Fatalf("another /48: %v", e)
	}
	for i := range budget + 1 {
		if e := l.ChannelCreate(from(fmt.Sprintf("198.51.100.%d", i))); e != nil {
			t.Fatalf("IPv4 address %d: %v", i, e)
		}
	}
	clk.advance(2 * time.Second)
	if e := l.ChannelCreate(from("2001:db8:0:1ff::1")); e != nil {
		t.Fatalf("2 s later: %v", e)
	}
	// Failed token checks stay per address: refused before any check, a
	// /48's bucket would lock every other home of the /48 out.
	for i := range NetworkFactor + 1 {
		ctx := from(fmt.Sprintf("2001:db8:2:%x::1", i))
		if e := l.AuthCheck(ctx); e != nil {
			t.Fatalf("check %d: %v", i, e)
		}
		l.AuthFailed(ctx)
	}
	if e := l.AuthCheck(from("2001:db8:2:ffff::1")); e != nil {
		t.Fatalf("a fresh /64 of a /48 whose other /64s failed checks: %v", e)
	}
	if e := l.AuthCheck(from("2001:db8:2:0::2")); e == nil || e.Code != apierr.RateLimited {
		t.Fatalf("a /64 that spent its failures: %v, want rate_limited", e)
	}
}

// TestSlotsFairPerKey: one key takes at most its share; the total bounds
// every key together; a release gives the place back once.
func TestSlotsFairPerKey(t *testing.T) {
	l, _ := newTest(t, Config{IntegrationPerToken: 2})
	s := l.IntegrationSlots(3)
	r1, ok1 := s.Take("a")
	_, ok2 := s.Take("a")
	if _, ok := s.Take("a"); !ok1 || !ok2 || ok {
		t.Fatalf("token a: %v %v, third %v", ok1, ok2, ok)
	}
	if _, ok := s.Take("b"); !ok {
		t.Fatal("token b refused while places are free")
	}
	if _, ok := s.Take("c"); ok {
		t.Fatal("token c admitted over the total")
	}
	r1()
	r1()
	if _, ok := s.Take("c"); !ok {
		t.Fatal("token c refused after a release")
	}
	if _, ok := s.Take("d"); ok {
		t.Fatal("a double release gave two places back")
	}
	if refusals(l, IntegrationToken) != 1 || refusals(l, IntegrationTotal) != 2 {
		t.Errorf("refusals: token %v, total %v", refusals(l, IntegrationToken), refusals(l, IntegrationTotal))
	}
	if d := New(Config{}, Options{}).IntegrationSlots(1024); d.perKey != 256 {
		t.Errorf("default share %d, want a quarter of 1024", d.perKey)
	}
}

// TestSlotsFairPerChannel: the tokens of one channel together take at most
// one token's share, whatever their number; another channel's token is
// admitted beside them.
func TestSlotsFairPerChannel(t *testing.T) {
	l, _ := newTest(t, Config{IntegrationPerToken: 2})
	s := l.IntegrationSlots(8)
	r1, ok1 := s.TakeIn("ch-a", "tok-1")
	_, ok2 := s.TakeIn("ch-a", "tok-2")
	if _, ok := s.TakeIn("ch-a", "tok-3"); !ok1 || !ok2 || ok {
		t.Fatalf("channel a's tokens: %v %v, a third token %v", ok1, ok2, ok)
	}
	if _, ok := s.TakeIn("ch-b", "tok-4"); !ok {
		t.Fatal("channel b's token refused beside channel a's")
	}
	r1()
	if _, ok := s.TakeIn("ch-a", "tok-3"); !ok {
		t.Fatal("channel a's third token refused after a release")
	}
	if refusals(l, IntegrationChannel) != 1 {
		t.Errorf("channel refusals %v, want 1", refusals(l, IntegrationChannel))
	}
}

// TestSizes: sizes read in bytes and binary units, and print in the
// largest unit that divides them.
func TestSizes(t *testing.T) {
	for in, want := range map[string]int{"1048576": 1 << 20, "16MiB": 16 << 20, "16 MiB": 16 << 20, "512k": 512 << 10,
		"2GB": 2 << 30, "7B": 7, "0": 0} {
		if n, err := ParseSize(in); err != nil || n != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, n, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1.5MiB", "1TiB", "-1", "x1"} {
		if n, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, n)
		}
	}
	for n, want := range map[int]string{16 << 20: "16MiB", 1536 << 10: "1536KiB", 3 << 30: "3GiB", 1000: "1000"} {
		if s := FormatSize(n); s != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, s, want)
		}
	}
}

// TestBudget: amounts are taken up to the total, never waiting, and up to
// half of it for one key; one larger than the total (or the key's half) is
// taken alone; release gives back once.
func TestBudget(t *testing.T) {
	l := New(Config{LargeBodies: 10}, Options{})
	b := l.LargeBodies()
	r1, ok1 := b.Take("a", 6)
	_, ok2 := b.Take("b", 5)
	r3, ok3 := b.Take("b", 4)
	if !ok1 || ok2 || !ok3 {
		t.Fatalf("6, 5, 4 of 10: %v %v %v", ok1, ok2, ok3)
	}
	if _, ok := b.Take("c", 20); ok {
		t.Fatal("20 taken while 10 are held")
	}
	r1()
	r1() // once only
	r3()
	r4, ok := b.Take("a", 20)
	if !ok {
		t.Fatal("20 refused with nothing held")
	}
	if _, ok := b.Take("b", 1); ok {
		t.Fatal("1 taken beside an amount over the total")
	}
	r4()
	// One key holds at most half the total, but for a single amount.
	r5, ok5 := b.Take("a", 6)
	_, ok6 := b.Take("a", 1)
	r7, ok7 := b.Take("b", 4)
	if !ok5 || ok6 || !ok7 {
		t.Fatalf("a 6 (alone), a 1 beside it, b 4: %v %v %v", ok5, ok6, ok7)
	}
	r5()
	r7()
	if refusals(l, LargeBodies) != 4 {
		t.Errorf("refusals %v, want 4", refusals(l, LargeBodies))
	}
	if _, ok := New(Off(), Options{}).LargeBodies().Take("a", 1<<40); !ok {
		t.Error("off refused")
	}
}

// TestSettings: every limit reads from its variable; "off" and "0" turn
// it off, "" keeps the default, junk is an error.
func TestSettings(t *testing.T) {
	c := Defaults()
	set := map[string]string{}
	for _, s := range c.Settings() {
		set[s.Env] = s.Get()
	}
	if set["PUSHGO_LIMIT_TOKENS_PER_CHANNEL"] != "100" || set["PUSHGO_LIMIT_BODY_READ"] != "10s" || set["PUSHGO_LIMIT_INTEGRATION_PER_TOKEN"] != "" ||
		set["PUSHGO_LIMIT_ALERTMANAGER_BODY"] != "16MiB" || set["PUSHGO_LIMIT_LARGE_BODIES"] != "32MiB" {
		t.Fatalf("defaults as text: %v", set)
	}
	apply := func(env, v string) error {
		for _, s := range c.Settings() {
			if s.Env == env {
				return s.Set(v)
			}
		}
		t.Fatalf("no setting %s", env)
		return nil
	}
	for env, v := range map[string]string{"PUSHGO_LIMIT_DEVICES": "5", "PUSHGO_LIMIT_DEVICE_REGISTER": "off", "PUSHGO_LIMIT_CHANNEL_CREATE": "0",
		"PUSHGO_LIMIT_PASSWORD_BACKOFF_MAX": "1m", "PUSHGO_LIMIT_BODY_READ": "", "PUSHGO_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.1",
		"PUSHGO_LIMIT_ALERTMANAGER_BODY": "32MiB", "PUSHGO_LIMIT_LARGE_BODIES": "off"} {
		if err := apply(env, v); err != nil {
			t.Fatalf("%s=%s: %v", env, v, err)
		}
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")}
	if c.Devices != 5 || c.DeviceRegisterPerMinute != -1 || c.ChannelCreatePerMinute != -1 || c.PasswordBackoffMax != time.Minute ||
		c.BodyRead != 10*time.Second || len(c.TrustedProxies) != 2 || c.TrustedProxies[0] != want[0] || c.TrustedProxies[1] != want[1] ||
		c.AlertmanagerBody != 32<<20 || c.LargeBodies != -1 {
		t.Fatalf("applied: %+v", c)
	}
	for _, bad := range [][2]string{{"PUSHGO_LIMIT_DEVICES", "-3"}, {"PUSHGO_LIMIT_BODY_READ", "soon"}, {"PUSHGO_TRUSTED_PROXIES", "proxy.local"},
		{"PUSHGO_LIMIT_ALERTMANAGER_BODY", "512KiB"}, {"PUSHGO_LIMIT_ALERTMANAGER_BODY", "off"}, {"PUSHGO_LIMIT_LARGE_BODIES", "12 parsecs"},
		{"PUSHGO_LIMIT_LARGE_BODIES", "-1MiB"}, {"PUSHGO_LIMIT_LARGE_BODIES", "99999999999GiB"}} {
		if err := apply(bad[0], bad[1]); err == nil {
			t.Errorf("%s=%s accepted", bad[0], bad[1])
		}
	}
	if l := New(Off(), Options{}); l.Passwords() != nil || l.register != nil || l.create != nil || !l.DeviceRoom(context.Background()) {
		t.Error("Off left a limit on")
	}
}
