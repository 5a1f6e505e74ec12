// Package limits bounds what one client can make the gateway do (the
// spec's 429): failed password checks back off exponentially per client
// address and per channel, anonymous routes (/device/register,
// /channel/create) are rate limited per client address, integration
// requests are admitted fairly per token, and the stores have caps
// (integration tokens per channel, devices). Every refusal is counted in
// pushgo_limit_refusals_total{limit}.
//
// The state is in memory, per ingest process: a client spreading its
// requests over N replicas gets N times the budget. Every limit is on by
// default with values a legitimate sender never meets, and each has a
// setting (Config, the PUSHGO_LIMIT_* variables) where 0 or "off" turns it
// off.
//
// Token buckets are golang.org/x/time/rate (the Go project's own, used by
// the standard library's tooling and much of the ecosystem): a correct
// bucket with reservations, so the Retry-After of a refusal is the time
// the bucket really needs. The per-address state is kept in bounded LRU
// maps (github.com/hashicorp/golang-lru/v2), so a client cycling through
// addresses costs a bounded amount of memory.
package limits

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pushgo/gateway/schemas/apierr"
)

// Config is every abuse limit. A zero field takes its default (Defaults);
// a negative one turns the limit off.
type Config struct {
	// PasswordFailuresPerAddr are the failed password checks a client
	// address may make before it backs off (the first back-off is 1 s and
	// doubles with every further failure up to PasswordBackoffMax).
	PasswordFailuresPerAddr int
	// PasswordFailuresPerChannel are the failed checks of one channel's
	// password, from any address, before the channel backs off; addresses
	// that proved the password in the last 24 hours are exempt, so
	// guessers cannot lock out the channel's own senders.
	PasswordFailuresPerChannel int
	// PasswordBackoffMax is the longest back-off. A client's failures are
	// forgotten after an hour without one (or twice this, if longer).
	PasswordBackoffMax time.Duration
	// PasswordHashes bounds the argon2id computations at once (checks
	// that miss the cache, and new channels), so guessing cannot take
	// every core. Default half the cores, at least 1.
	PasswordHashes int
	// DeviceRegisterPerMinute is the /device/register rate of one client
	// address (a token bucket holding a minute's worth).
	DeviceRegisterPerMinute int
	// ChannelCreatePerMinute is the rate of channel creations of one
	// client address (/channel/create and /channel/subscribe with a
	// channel_name), a token bucket holding a minute's worth.
	ChannelCreatePerMinute int
	// AuthFailuresPerMinute are the failed credential checks (a wrong
	// PUSHGO_TOKEN, an integration token that is wrong or revoked) one
	// client address may make a minute, a token bucket holding a minute's
	// worth; past them its requests are refused 429 before any check.
	AuthFailuresPerMinute int
	// TokensPerChannel caps the integration tokens of one channel.
	TokensPerChannel int
	// Devices caps the devices the gateway holds; /device/register of a
	// new device is refused at the cap.
	Devices int
	// IntegrationPerToken bounds the integration requests of one token
	// served at once. Default a quarter of the shared slots
	// (ingest.Config.MaxIntegrationRequests).
	IntegrationPerToken int
	// UnauthenticatedReadsPerAddr bounds the integration bodies one client
	// address may be sending at once before its token is known (PagerDuty
	// carries its routing_key in the body).
	UnauthenticatedReadsPerAddr int
	// BodyRead bounds the time an integration request may take to send
	// its body, per started MiB of the length it announces (so 1 MiB
	// takes it once, a 16 MiB Alertmanager notification 16 times).
	BodyRead time.Duration
	// AlertmanagerBody is the largest Alertmanager or Grafana notification
	// body, in bytes; at least 1 MiB (the other integration routes'
	// bound). Alertmanager sends every alert of a group in one
	// notification, so an outage's group can pass 1 MiB, and it drops a
	// notification answered 413 (it retries only a 5xx).
	AlertmanagerBody int
	// LargeBodies bounds the bytes of integration bodies over 1 MiB held
	// at once, each until its answer (the body, and what is decoded from
	// it, a few times its size): an announced length is taken before the
	// body is read, and a body whose length is not announced takes the
	// route's whole bound once it passes 1 MiB;
	// a body over the budget is refused as overload (Alertmanager's 503
	// with Retry-After), never queued. A body larger than the whole budget
	// is admitted when no other is held.
	LargeBodies int
	// TrustedProxies are the proxies whose X-Forwarded-For names the
	// client. Empty (the default): the client address is the TCP peer's,
	// and forwarding headers are ignored.
	TrustedProxies []netip.Prefix
}

// Defaults are the limits when nothing is configured: generous enough that
// a legitimate sender, a household behind one address or an app's device
// never meets them.
func Defaults() Config {
	return Config{
		PasswordFailuresPerAddr:     10,
		PasswordFailuresPerChannel:  20,
		PasswordBackoffMax:          5 * time.Minute,
		PasswordHashes:              max(1, runtime.GOMAXPROCS(0)/2),
		DeviceRegisterPerMinute:     300,
		ChannelCreatePerMinute:      20,
		AuthFailuresPerMinute:       30,
		TokensPerChannel:            100,
		Devices:                     1_000_000,
		UnauthenticatedReadsPerAddr: 8,
		BodyRead:                    10 * time.Second,
		AlertmanagerBody:            16 << 20,
		LargeBodies:                 32 << 20,
	}
}

// Off is a Config with every limit off (benchmarks, and tests of other
// things).
func Off() Config {
	return Config{
		PasswordFailuresPerAddr: -1, PasswordFailuresPerChannel: -1, PasswordBackoffMax: -1, PasswordHashes: -1,
		DeviceRegisterPerMinute: -1, ChannelCreatePerMinute: -1, AuthFailuresPerMinute: -1, TokensPerChannel: -1, Devices: -1,
		IntegrationPerToken: -1, UnauthenticatedReadsPerAddr: -1, BodyRead: -1, LargeBodies: -1,
	}
}

// WithDefaults is c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	d := Defaults()
	setInt := func(p *int, def int) {
		if *p == 0 {
			*p = def
		}
	}
	setInt(&c.PasswordFailuresPerAddr, d.PasswordFailuresPerAddr)
	setInt(&c.PasswordFailuresPerChannel, d.PasswordFailuresPerChannel)
	setInt(&c.PasswordHashes, d.PasswordHashes)
	setInt(&c.DeviceRegisterPerMinute, d.DeviceRegisterPerMinute)
	setInt(&c.ChannelCreatePerMinute, d.ChannelCreatePerMinute)
	setInt(&c.TokensPerChannel, d.TokensPerChannel)
	setInt(&c.Devices, d.Devices)
	setInt(&c.UnauthenticatedReadsPerAddr, d.UnauthenticatedReadsPerAddr)
	setInt(&c.AlertmanagerBody, d.AlertmanagerBody)
	setInt(&c.LargeBodies, d.LargeBodies)
	if c.PasswordBackoffMax == 0 {
		c.PasswordBackoffMax = d.PasswordBackoffMax
	}
	if c.BodyRead == 0 {
		c.BodyRead = d.BodyRead
	}
	return c
}

// Hashes is the bound on argon2id computations at once: PasswordHashes
// (defaults filled in), or every core when it is off.
func (c Config) Hashes() int {
	if n := c.WithDefaults().PasswordHashes; n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// Setting is one limit as an environment variable and a flag.
type Setting struct {
	Env, Flag, Usage string
	// Get is the value's text; Set parses one ("0" and "off" turn the
	// limit off).
	Get func() string
	Set func(string) error
}

// Settings are c's limits as PUSHGO_LIMIT_* variables and -limit-* flags,
// reading and writing c. An empty text changes nothing.
func (c *Config) Settings() []Setting {
	// A refusal says what the setting takes, its way off included: "0"
	// and "off" are both accepted (isOff), where it said "or off" alone
	// and an operator who tried -1 was not told of 0.
	const orOff, offUsage = ", or 0 or off for no limit", " (0 or off: no limit)"
	// off, when given, says what 0 or off does where "no limit" would
	// mislead (no back-off at all; as many hashes as cores).
	offSays := func(off []string) string {
		if len(off) > 0 {
			return " (0 or off: " + off[0] + ")"
		}
		return offUsage
	}
	count := func(p *int, env, flag, usage string, off ...string) Setting {
		return Setting{Env: env, Flag: flag, Usage: usage + offSays(off),
			Get: func() string { return text(*p, strconv.Itoa(*p)) },
			Set: func(s string) error {
				if s == "" {
					return nil
				}
				if isOff(s) {
					*p = -1
					return nil
				}
				n, err := strconv.Atoi(s)
				if err != nil || n < 0 {
					return fmt.Errorf("want a positive integer%s", orOff)
				}
				*p = n
				return nil
			}}
	}
	dur := func(p *time.Duration, env, flag, usage string, off ...string) Setting {
		return Setting{Env: env, Flag: flag, Usage: usage + offSays(off),
			Get: func() string { return text(*p, p.String()) },
			Set: func(s string) error {
				if s == "" {
					return nil
				}
				if isOff(s) {
					*p = -1
					return nil
				}
				d, err := time.ParseDuration(s)
				if err != nil || d <= 0 {
					return fmt.Errorf("want a positive duration such as 10s%s", orOff)
				}
				*p = d
				return nil
			}}
	}
	size := func(p *int, least int, env, flag, usage string) Setting {
		if least == 0 {
			usage += offUsage
		}
		return Setting{Env: env, Flag: flag, Usage: usage,
			Get: func() string { return text(*p, FormatSize(*p)) },
			Set: func(s string) error {
				if s == "" {
					return nil
				}
				if isOff(s) && least == 0 {
					*p = -1
					return nil
				}
				n, err := ParseSize(s)
				if err != nil || n < max(least, 1) {
					if least > 0 {
						return fmt.Errorf("want a size of at least %s (bytes, or with KiB, MiB or GiB)", FormatSize(least))
					}
					return fmt.Errorf("want a positive size (bytes, or with KiB, MiB or GiB)%s", orOff)
				}
				*p = n
				return nil
			}}
	}
	return []Setting{
		count(&c.PasswordFailuresPerAddr, "PUSHGO_LIMIT_PASSWORD_FAILURES_ADDR", "limit-password-failures-addr", "failed password checks of one client address before it backs off"),
		count(&c.PasswordFailuresPerChannel, "PUSHGO_LIMIT_PASSWORD_FAILURES_CHANNEL", "limit-password-failures-channel", "failed password checks of one channel before unproven addresses back off"),
		dur(&c.PasswordBackoffMax, "PUSHGO_LIMIT_PASSWORD_BACKOFF_MAX", "limit-password-backoff-max", "longest back-off after failed password checks (doubling from 1s)",
			"no back-off at all, password guessing is not slowed"),
		count(&c.PasswordHashes, "PUSHGO_LIMIT_PASSWORD_HASHES", "limit-password-hashes", "argon2id password hashes computed at once",
			"as many as there are cores"),
		count(&c.DeviceRegisterPerMinute, "PUSHGO_LIMIT_DEVICE_REGISTER", "limit-device-register", "/device/register calls per minute of one client address"),
		count(&c.ChannelCreatePerMinute, "PUSHGO_LIMIT_CHANNEL_CREATE", "limit-channel-create", "channel creations per minute of one client address"),
		count(&c.AuthFailuresPerMinute, "PUSHGO_LIMIT_AUTH_FAILURES", "limit-auth-failures", "failed token checks (PUSHGO_TOKEN, integration tokens) per minute of one client address"),
		count(&c.TokensPerChannel, "PUSHGO_LIMIT_TOKENS_PER_CHANNEL", "limit-tokens-per-channel", "integration tokens of one channel"),
		count(&c.Devices, "PUSHGO_LIMIT_DEVICES", "limit-devices", "devices the gateway holds"),
		count(&c.IntegrationPerToken, "PUSHGO_LIMIT_INTEGRATION_PER_TOKEN", "limit-integration-per-token", "integration requests of one token served at once (default a quarter of PUSHGO_MAX_INTEGRATION_REQUESTS)"),
		count(&c.UnauthenticatedReadsPerAddr, "PUSHGO_LIMIT_UNAUTHENTICATED_READS", "limit-unauthenticated-reads", "integration bodies one client address may send at once before its token is known"),
		dur(&c.BodyRead, "PUSHGO_LIMIT_BODY_READ", "limit-body-read", "time an integration request may take to send its body, per started MiB"),
		size(&c.AlertmanagerBody, 1<<20, "PUSHGO_LIMIT_ALERTMANAGER_BODY", "limit-alertmanager-body", "largest Alertmanager or Grafana notification body (at least 1MiB)"),
		size(&c.LargeBodies, 0, "PUSHGO_LIMIT_LARGE_BODIES", "limit-large-bodies", "bytes of integration bodies over 1MiB held at once; over it such a body is refused as overload"),
		{Env: "PUSHGO_TRUSTED_PROXIES", Flag: "trusted-proxies", Usage: "proxies (CIDRs, comma-separated) whose X-Forwarded-For names the client; empty: the TCP peer is the client",
			Get: func() string { return joinPrefixes(c.TrustedProxies) },
			Set: func(s string) (err error) { c.TrustedProxies, err = ParsePrefixes(s); return err }},
	}
}

// ParseSize reads a size in bytes: a whole number, optionally followed by
// KiB, MiB or GiB (or K, M, G, KB, MB, GB, read as the binary units).
func ParseSize(s string) (int, error) {
	s = strings.TrimSpace(s)
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := 1
	switch strings.ToUpper(strings.TrimSpace(s[len(num):])) {
	case "", "B":
	case "K", "KB", "KIB":
		unit = 1 << 10
	case "M", "MB", "MIB":
		unit = 1 << 20
	case "G", "GB", "GIB":
		unit = 1 << 30
	default:
		return 0, fmt.Errorf("size %q: unknown unit", s)
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > math.MaxInt/unit {
		return 0, fmt.Errorf("size %q: want a whole number of bytes, KiB, MiB or GiB", s)
	}
	return n * unit, nil
}

// FormatSize is n in the largest binary unit that divides it.
func FormatSize(n int) string {
	for _, u := range []struct {
		size int
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n != 0 && n%u.size == 0 {
			return strconv.Itoa(n/u.size) + u.name
		}
	}
	return strconv.Itoa(n)
}

func isOff(s string) bool { return s == "0" || strings.EqualFold(s, "off") }

// text is a setting's text: "off" when v is negative, "" (the default)
// when it is zero, else s.
func text[T int | time.Duration](v T, s string) string {
	switch {
	case v < 0:
		return "off"
	case v == 0:
		return ""
	}
	return s
}

// ParsePrefixes reads a comma-separated list of CIDR prefixes or single
// addresses.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR prefix nor an address", f)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Limit names a limit in pushgo_limit_refusals_total.
type Limit string

// The limits.
const (
	PasswordAddr        Limit = "password_address"
	PasswordChannel     Limit = "password_channel"
	DeviceRegister      Limit = "device_register"
	ChannelCreate       Limit = "channel_create"
	AuthFailures        Limit = "auth_failures"
	TokensPerChannel    Limit = "tokens_per_channel"
	Devices             Limit = "devices"
	IntegrationTotal    Limit = "integration_total"
	IntegrationToken    Limit = "integration_token"
	IntegrationChannel  Limit = "integration_channel"
	UnauthenticatedRead Limit = "integration_unauthenticated"
	BodyRead            Limit = "integration_body_read"
	LargeBodies         Limit = "integration_large_bodies"
)

// Limits holds the limits' state. Build it with New; it is safe for
// concurrent use and owns no goroutine.
type Limits struct {
	cfg       Config
	now       func() time.Time
	log       *slog.Logger
	refusals  *prometheus.CounterVec
	checks    *prometheus.CounterVec
	largeHeld prometheus.Gauge
	passwords *passwordGate
	register  *addrBuckets
	create    *addrBuckets
	authFails *addrBuckets

	devMu       sync.Mutex
	countDevs   func(ctx context.Context) (int64, error)
	devCount    int64
	devKnown    bool      // a count has succeeded
	devCounted  time.Time // when the last count (successful or not) started
	devCounting bool      // a count is under way
}

// Options are what Limits needs besides its Config.
type Options struct {
	// CountDevices counts the devices the gateway holds, for the Devices
	// cap (asked at most once a second). Nil leaves the cap off.
	CountDevices func(ctx context.Context) (int64, error)
	// Now is the clock. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// New builds the limits of cfg (zero fields take their defaults).
func New(cfg Config, o Options) *Limits {
	cfg = cfg.WithDefaults()
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Limits{
		cfg: cfg, now: o.Now, log: o.Logger, countDevs: o.CountDevices,
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushgo_limit_refusals_total",
			Help: "Requests refused by an abuse limit (429, or the cap's answer), by limit.",
		}, []string{"limit"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushgo_password_checks_total",
			Help: "Channel password checks by outcome: cached (no hash), verified and mismatch (one argon2id hash each), refused (back-off, no hash).",
		}, []string{"outcome"}),
		largeHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pushgo_limit_large_body_bytes",
			Help: "Bytes of integration bodies over 1 MiB held now (PUSHGO_LIMIT_LARGE_BODIES bounds them).",
		}),
	}
	for _, lim := range []Limit{PasswordAddr, PasswordChannel, DeviceRegister, ChannelCreate, AuthFailures, TokensPerChannel, Devices,
		IntegrationTotal, IntegrationToken, IntegrationChannel, UnauthenticatedRead, BodyRead, LargeBodies} {
		l.refusals.WithLabelValues(string(lim))
	}
	for _, o := range []string{"cached", "verified", "mismatch", "refused"} {
		l.checks.WithLabelValues(o)
	}
	l.passwords = newPasswordGate(l)
	l.register = newAddrBuckets(cfg.DeviceRegisterPerMinute, NetworkFactor)
	l.create = newAddrBuckets(cfg.ChannelCreatePerMinute, NetworkFactor)
	// Failed token checks are kept per address only: they are refused
	// before any check, so a /48's bucket would let one subscriber lock
	// every other of its /48 (up to 256 homes) out of the gateway, and a
	// 256-bit token cannot be guessed at 256 times the rate either.
	l.authFails = newAddrBuckets(cfg.AuthFailuresPerMinute, 0)
	return l
}

// Config is the configuration in force (defaults filled in).
func (l *Limits) Config() Config { return l.cfg }

// Collectors are the limits' metrics, for the process's /metrics.
func (l *Limits) Collectors() []prometheus.Collector {
	return []prometheus.Collector{l.refusals, l.checks, l.largeHeld}
}

// Refused counts a refusal by lim (for the limits applied outside this
// package: the caps, integration admission).
func (l *Limits) Refused(lim Limit) { l.refusals.WithLabelValues(string(lim)).Inc() }

// retryAfter is d in whole seconds, rounded up, at least 1.
func retryAfter(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// DeviceRegister admits one /device/register of the request's client:
// 429 rate_limited with Retry-After when its bucket is empty.
func (l *Limits) DeviceRegister(ctx context.Context) *apierr.Error {
	return l.bucket(ctx, l.register, DeviceRegister, "device registrations")
}

// ChannelCreate admits one channel creation of the request's client: 429
// rate_limited with Retry-After when its bucket is empty.
func (l *Limits) ChannelCreate(ctx context.Context) *apierr.Error {
	return l.bucket(ctx, l.create, ChannelCreate, "channel creations")
}

// AuthCheck admits a credential check (PUSHGO_TOKEN, an integration
// token) of the request's client: 429 rate_limited with Retry-After, before
// any check, when the client has spent its failures
// (Config.AuthFailuresPerMinute). AuthFailed spends one.
func (l *Limits) AuthCheck(ctx context.Context) *apierr.Error {
	cl, ok := ClientOf(ctx)
	if l.authFails == nil || !ok {
		return nil
	}
	wait, network, ok := l.authFails.peek(cl, l.now())
	if ok {
		return nil
	}
	l.Refused(AuthFailures)
	return &apierr.Error{Code: apierr.RateLimited, RetryAfter: retryAfter(wait),
		Detail: fmt.Sprintf("too many failed token checks from this %s; retry after %d s",
			l.authFails.whose(network), retryAfter(wait))}
}

// AuthFailed spends one of the request's client's failures (a credential
// it sent was refused).
func (l *Limits) AuthFailed(ctx context.Context) {
	if cl, ok := ClientOf(ctx); l.authFails != nil && ok {
		l.authFails.take(cl, l.now())
	}
}

func (l *Limits) bucket(ctx context.Context, b *addrBuckets, lim Limit, what string) *apierr.Error {
	cl, ok := ClientOf(ctx)
	if b == nil || !ok {
		return nil
	}
	wait, network, ok := b.take(cl, l.now())
	if ok {
		return nil
	}
	l.Refused(lim)
	return &apierr.Error{Code: apierr.RateLimited, RetryAfter: retryAfter(wait),
		Detail: fmt.Sprintf("too many %s from this %s; retry after %d s", what, b.whose(network), retryAfter(wait))}
}

// DeviceRoom reports whether a new device may be made: false when the
// gateway holds Config.Devices devices. The count is the bucket's, asked
// at most once a second by one request at a time (the others meanwhile
// go by the last count), plus the devices this process made since: the
// cap is passed by no more than the registrations under way at once, and
// replicas together by what they make within a second. A count that fails
// is not asked again for a second, and says yes while no count has
// succeeded (the write that follows fails as well, with its own answer).
// The registry was asked under the lock: with its bucket leaderless, each
// registration waited out every earlier one's 5 s count.
func (l *Limits) DeviceRoom(ctx context.Context) bool {
	if l.cfg.Devices < 0 || l.countDevs == nil {
		return true
	}
	now := l.now()
	l.devMu.Lock()
	due := now.Sub(l.devCounted) >= time.Second && !l.devCounting
	if due {
		l.devCounting = true
	}
	l.devMu.Unlock()
	if due {
		n, err := l.countDevs(ctx)
		l.devMu.Lock()
		l.devCounting, l.devCounted = false, now
		if err == nil {
			l.devCount, l.devKnown = n, true
		}
		l.devMu.Unlock()
		if err != nil {
			l.log.Warn("limits: devices not counted", "err", err)
		}
	}
	l.devMu.Lock()
	defer l.devMu.Unlock()
	return !l.devKnown || l.devCount < int64(l.cfg.Devices)
}

// DeviceAdded counts a device this process made, until the next count.
func (l *Limits) DeviceAdded() {
	l.devMu.Lock()
	l.devCount++
	l.devMu.Unlock()
}

// DeviceLimit is the answer to a new device at the cap (counted).
func (l *Limits) DeviceLimit() *apierr.Error {
	l.Refused(Devices)
	return &apierr.Error{Code: apierr.DeviceLimitReached,
		Detail: fmt.Sprintf("the gateway holds its maximum of %d devices (PUSHGO_LIMIT_DEVICES); its operator can raise it", l.cfg.Devices)}
}

// TokenLimit is the answer to a token creation at the channel's cap.
func (l *Limits) TokenLimit() *apierr.Error {
	l.Refused(TokensPerChannel)
	return &apierr.Error{Code: apierr.TokenLimitReached,
		Detail: fmt.Sprintf("the channel holds its maximum of %d integration tokens (PUSHGO_LIMIT_TOKENS_PER_CHANNEL); revoke one first", l.cfg.TokensPerChannel)}
}
