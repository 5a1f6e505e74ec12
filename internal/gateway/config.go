// Package gateway runs the pushgo binary's services: it reads the
// configuration, starts the embedded broker when no external one is
// configured, and runs the selected targets until its context ends.
package gateway

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pushgo/gateway/broker"
	"github.com/pushgo/gateway/ingest/httpapi"
	"github.com/pushgo/gateway/ingest/limits"
	"github.com/pushgo/gateway/ingest/livestream"
	"github.com/pushgo/gateway/pusher"
	"github.com/pushgo/gateway/pusher/sender/apns"
	"github.com/pushgo/gateway/schemas/ids"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/streams"
)

// Config is the whole configuration of one pushgo process. Every field has
// an environment variable and a flag of the same meaning; flags win.
type Config struct {
	HTTPAddr      string        // PUSHGO_HTTP_ADDR
	DataDir       string        // PUSHGO_DATA_DIR
	NATSURL       string        // PUSHGO_NATS_URL; empty starts the embedded server
	NATSListen    string        // PUSHGO_NATS_LISTEN; "off" for in-process only
	Target        string        // PUSHGO_TARGET: all | ingest | projector
	Rebuild       bool          // PUSHGO_REBUILD: fold the projection again from the log at start
	Token         string        // PUSHGO_TOKEN
	Replicas      int           // PUSHGO_REPLICAS
	Sync          broker.Sync   // PUSHGO_SYNC: "always" or an fsync interval
	DedupWindow   time.Duration // PUSHGO_DEDUP_WINDOW
	Retention     time.Duration // PUSHGO_RETENTION
	AppendTimeout time.Duration // PUSHGO_APPEND_TIMEOUT
	// AlertmanagerAbsentAfter is how long an alert must have gone unnamed
	// by its group's Alertmanager (or Grafana) notifications before a
	// complete one that leaves it out closes its Event
	// (PUSHGO_ALERTMANAGER_ABSENT_AFTER; 0: at once).
	AlertmanagerAbsentAfter time.Duration
	// AlertmanagerExpireAfter, when set, closes (timed_out) the Event of a
	// firing alert that no Alertmanager or Grafana notification named for
	// that long: each notification naming it moves its deadline
	// (PUSHGO_ALERTMANAGER_EXPIRE_AFTER; 0, the default: never).
	AlertmanagerExpireAfter time.Duration
	// InboxPerDevice is the most items one device's inbox holds
	// (PUSHGO_INBOX_PER_DEVICE; 0: no limit).
	InboxPerDevice int64
	// NATSPing is how often a process pings an external NATS server
	// (PUSHGO_NATS_PING); two unanswered pings in a row end the connection
	// and the client reconnects to another server of the cluster. A hung
	// server (SIGSTOP, a stalled VM) keeps its sockets open: without pings
	// the client would wait on it for nats.go's default of minutes.
	NATSPing  time.Duration
	MaxStore  int64 // PUSHGO_MAX_STORE (bytes) for the embedded server
	MaxMemory int64 // PUSHGO_MAX_MEMORY (bytes) for the embedded server
	// embeddedOnly names the settings of the embedded server only
	// (PUSHGO_SYNC, PUSHGO_MAX_STORE, PUSHGO_MAX_MEMORY,
	// PUSHGO_NATS_LISTEN) that were set, by variable or flag: with
	// PUSHGO_NATS_URL they do nothing, which the start warns of.
	embeddedOnly []string
	// ProjectionCache is the projection store's block cache, in bytes
	// (PUSHGO_PROJECTION_CACHE).
	ProjectionCache int64
	// SelectionCache bounds the Dynatrace selections' answer cache, in
	// bytes (PUSHGO_SELECTION_CACHE); 0 turns it off.
	SelectionCache int64
	// ProjectionSlots (PUSHGO_PROJECTION_SLOTS) lets that many projector
	// processes share the data directory, each in a slot of its own
	// (projectionDir); 1, the default, is the one projection directory.
	ProjectionSlots int
	LogLevel        string // PUSHGO_LOG_LEVEL: debug | info | warn | error
	// MaxIntegrationRequests bounds integration requests served at once.
	MaxIntegrationRequests int // PUSHGO_MAX_INTEGRATION_REQUESTS
	// MetadataValueMax bounds one metadata value, in bytes (PushGo: 512;
	// up to 16 KiB for the task plugins of the PushGo fork).
	MetadataValueMax int // PUSHGO_METADATA_VALUE_MAX
	// MaxStreams and MaxStreamsPerChannel cap the GET /channel/stream
	// streams open at once in one process, and one channel's in it.
	MaxStreams, MaxStreamsPerChannel int // PUSHGO_STREAMS_MAX, PUSHGO_STREAMS_PER_CHANNEL_MAX
	MaxStreamsPerClient              int // PUSHGO_STREAMS_PER_CLIENT_MAX
	// NATSCreds is the broker credentials file (.creds or nkey seed);
	// default: <data dir>/credentials/<target>.nk when present. The
	// NATSTLS* are PEM files for an external broker.
	NATSCreds, NATSTLSCA, NATSTLSCert, NATSTLSKey string // PUSHGO_NATS_CREDS, PUSHGO_NATS_TLS_CA, _CERT, _KEY

	APNsKeyFile string // PUSHGO_APNS_KEY_FILE: the .p8 token-auth key
	APNsKeyID   string // PUSHGO_APNS_KEY_ID
	APNsTeamID  string // PUSHGO_APNS_TEAM_ID
	APNsTopic   string // PUSHGO_APNS_TOPIC: the app's bundle id
	// APNsWatchTopic is the watch app's bundle id, the topic of pushes to
	// watchos devices (default: APNsTopic; with the token service and the
	// official topic, the official watch app's).
	APNsWatchTopic string // PUSHGO_APNS_WATCH_TOPIC
	APNsEndpoint   string // PUSHGO_APNS_ENDPOINT: production | development | URL
	// APNsConnections is how many HTTP/2 connections to APNs the pusher
	// spreads its pushes over (PUSHGO_APNS_CONNECTIONS, 1 to 64).
	APNsConnections int

	FCMCredentialsFile string // PUSHGO_FCM_CREDENTIALS_FILE: service account JSON
	FCMProjectID       string // PUSHGO_FCM_PROJECT_ID
	FCMEndpoint        string // PUSHGO_FCM_ENDPOINT: override for tests and proxies

	// TokenServiceURL is a PushGo token service (https://token.pushgo.dev):
	// APNs and FCM tokens of the official PushGo apps, used by a provider
	// without keys of its own.
	TokenServiceURL string // PUSHGO_TOKEN_SERVICE_URL

	// ThingUpdateAlerts: channel ids (comma-separated; no "*") exempted
	// from ThingUpdateQuiet: their thing updates ring as PushGo's do.
	ThingUpdateAlerts string // PUSHGO_THING_UPDATE_ALERTS
	// ThingUpdateQuiet: channel ids (comma-separated, or "*" for every
	// channel) whose thing updates go as background pushes instead of
	// PushGo's alerts; a channel also in ThingUpdateAlerts keeps its
	// alerts. Both lists are read by thingUpdateChannels.
	ThingUpdateQuiet string // PUSHGO_THING_UPDATE_QUIET
	// PublicBaseURL is the gateway's public URL, sent as base_url in every
	// push so the Apple app knows where to pull an oversized item (PushGo's
	// setting of the same name).
	PublicBaseURL string // PUSHGO_PUBLIC_BASE_URL

	// DeliveryPartitions is how many delivery partitions devices are
	// hashed to; one pusher replica at a time sends a partition's pushes.
	// The deployment's: one that differs from the count its partition
	// consumers record changes it, with every pusher stopped (a pusher
	// started with it while others run is refused). 0 ("auto"): the
	// deployment's count, or for a new one NewDeliveryPartitions
	// (pusher.Config.Partitions, NewPartitions).
	DeliveryPartitions int // PUSHGO_DELIVERY_PARTITIONS
	// DeliveryFailover is how long a pusher replica may be gone before
	// another takes its partitions over.
	DeliveryFailover time.Duration // PUSHGO_DELIVERY_FAILOVER

	// Limits are the abuse limits and the client address setting:
	// PUSHGO_LIMIT_* and PUSHGO_TRUSTED_PROXIES (limits.Config.Settings).
	Limits limits.Config

	// streamCheckEvery is how often the process checks that its streams
	// are still the ones it started with (streamwatch.go); 0: the
	// default. Tests shorten it.
	streamCheckEvery time.Duration
}

// DefaultSync is the default of PUSHGO_SYNC; see the README for why.
const DefaultSync = "1s"

// Defaults returns the documented defaults: one machine, nothing else
// installed.
func Defaults() Config {
	s, _ := broker.ParseSync(DefaultSync)
	o := streams.DefaultOptions()
	return Config{
		HTTPAddr: "127.0.0.1:8080", DataDir: "./data", NATSListen: "127.0.0.1:4222", Target: "all",
		Replicas: o.Replicas, Sync: s, DedupWindow: o.DedupWindow, Retention: o.Retention, InboxPerDevice: o.InboxPerDevice,
		AppendTimeout: 5 * time.Second, AlertmanagerAbsentAfter: time.Minute, NATSPing: 2 * time.Second, MaxStore: 10 << 30, MaxMemory: 256 << 20, ProjectionCache: 256 << 20, ProjectionSlots: 1, SelectionCache: 32 << 20, LogLevel: "info",
		MaxIntegrationRequests: 1024, MetadataValueMax: ops.DefaultMetadataValueMax,
		MaxStreams: livestream.DefaultMaxStreams, MaxStreamsPerChannel: livestream.DefaultMaxPerChannel,
		MaxStreamsPerClient: livestream.DefaultMaxPerClient,
		APNsConnections:     apns.DefaultConnections, DeliveryPartitions: 0, DeliveryFailover: 6 * time.Second, Limits: limits.Defaults(),
	}
}

// Targets are the services a process can run.
var Targets = []string{"all", "ingest", "projector", "pusher"}

// Runs reports whether the process runs service svc.
func (c Config) Runs(svc string) bool { return c.Target == "all" || c.Target == svc }

// NewDeliveryPartitions is the delivery partitions a pusher left to choose
// (DeliveryPartitions 0) gives a new deployment: one for a process that
// runs every service (the single-node shape, whose one pusher owns every
// partition; each more would only cost the write path a broker delivery
// per operation), pusher.DefaultPartitions for a pusher-only process (the
// scaled shape, whose replicas share the partitions). An existing
// deployment keeps its count either way.
func (c Config) NewDeliveryPartitions() int {
	if c.Target == "all" {
		return pusher.SingleNodePartitions
	}
	return pusher.DefaultPartitions
}

// Load reads the environment (getenv) then the flags in args.
func Load(args []string, getenv func(string) string) (Config, error) {
	return loadTo(nil, args, getenv)
}

// loadTo is Load printing the usage (after -h or a bad flag) to out, or to
// standard error when out is nil.
func loadTo(out io.Writer, args []string, getenv func(string) string) (Config, error) {
	c := Defaults()
	fs := flag.NewFlagSet("pushgo", flag.ContinueOnError)
	if out != nil {
		fs.SetOutput(out)
	}
	// A flag's default, as -h prints it, is the built-in one, never the
	// environment's: the environment holds secrets (PUSHGO_TOKEN, a
	// PUSHGO_NATS_URL with a password), which a mistyped flag printed to
	// the log with the usage.
	str := func(p *string, name, env, usage string) {
		fs.StringVar(p, name, *p, usage+" ("+env+")")
		if v := getenv(env); v != "" {
			*p = v
		}
	}
	str(&c.HTTPAddr, "http-addr", "PUSHGO_HTTP_ADDR", "HTTP listen address, host:port")
	str(&c.DataDir, "data-dir", "PUSHGO_DATA_DIR", "data directory: the embedded broker's store and credentials, the projection store")
	str(&c.NATSURL, "nats-url", "PUSHGO_NATS_URL", "external NATS servers; empty starts the embedded server")
	str(&c.NATSListen, "nats-listen", "PUSHGO_NATS_LISTEN", "embedded server client address, host:port, or off")
	str(&c.NATSCreds, "nats-creds", "PUSHGO_NATS_CREDS", "broker credentials: .creds or nkey seed file (default: the data dir's for the target)")
	str(&c.NATSTLSCA, "nats-tls-ca", "PUSHGO_NATS_TLS_CA", "CA certificates (PEM) of the external broker")
	str(&c.NATSTLSCert, "nats-tls-cert", "PUSHGO_NATS_TLS_CERT", "client certificate (PEM) for the external broker")
	str(&c.NATSTLSKey, "nats-tls-key", "PUSHGO_NATS_TLS_KEY", "client key (PEM) for the external broker")
	str(&c.Target, "target", "PUSHGO_TARGET", "services to run: "+strings.Join(Targets, "|"))
	str(&c.Token, "token", "PUSHGO_TOKEN", "gateway-wide bearer token; empty means public")
	str(&c.LogLevel, "log-level", "PUSHGO_LOG_LEVEL", "debug, info, warn or error")
	syncStr, replicas := c.Sync.String(), strconv.Itoa(c.Replicas)
	dedup, retention, appendTimeout := c.DedupWindow.String(), c.Retention.String(), c.AppendTimeout.String()
	natsPing, absentAfter, expireAfter := c.NATSPing.String(), c.AlertmanagerAbsentAfter.String(), c.AlertmanagerExpireAfter.String()
	maxStore, maxMem := strconv.FormatInt(c.MaxStore, 10), strconv.FormatInt(c.MaxMemory, 10)
	projCache, inboxCap := strconv.FormatInt(c.ProjectionCache, 10), strconv.FormatInt(c.InboxPerDevice, 10)
	selCache, projSlots := strconv.FormatInt(c.SelectionCache, 10), strconv.Itoa(c.ProjectionSlots)
	maxInteg, metaMax := strconv.Itoa(c.MaxIntegrationRequests), strconv.Itoa(c.MetadataValueMax)
	str(&metaMax, "metadata-value-max", "PUSHGO_METADATA_VALUE_MAX", "bytes of one metadata value: 1 to 16384, PushGo's 512 by default")
	str(&maxInteg, "max-integration-requests", "PUSHGO_MAX_INTEGRATION_REQUESTS", "integration requests served at once before overload answers")
	maxStreams, maxStreamsChan := strconv.Itoa(c.MaxStreams), strconv.Itoa(c.MaxStreamsPerChannel)
	maxStreamsClient := strconv.Itoa(c.MaxStreamsPerClient)
	str(&maxStreams, "streams-max", "PUSHGO_STREAMS_MAX", "GET /channel/stream streams open at once in this process before 429")
	str(&maxStreamsChan, "streams-per-channel-max", "PUSHGO_STREAMS_PER_CHANNEL_MAX", "one channel's GET /channel/stream streams open at once in this process before 429")
	str(&maxStreamsClient, "streams-per-client-max", "PUSHGO_STREAMS_PER_CLIENT_MAX", "one client address's GET /channel/stream streams open at once in this process before 429")
	str(&syncStr, "sync", "PUSHGO_SYNC", "durability: always, or an fsync interval such as 1s")
	str(&replicas, "replicas", "PUSHGO_REPLICAS", "stream replicas (3 on a cluster)")
	str(&dedup, "dedup-window", "PUSHGO_DEDUP_WINDOW", "op_id duplicate window")
	str(&retention, "retention", "PUSHGO_RETENTION", "history retention")
	str(&inboxCap, "inbox-per-device", "PUSHGO_INBOX_PER_DEVICE", "most items one device's inbox holds, its oldest dropped past it (0: no limit)")
	str(&appendTimeout, "append-timeout", "PUSHGO_APPEND_TIMEOUT", "bound on one append before 503")
	str(&absentAfter, "alertmanager-absent-after", "PUSHGO_ALERTMANAGER_ABSENT_AFTER", "how long an alert goes unnamed by its group's complete notifications before its Event is closed (0: at once)")
	str(&expireAfter, "alertmanager-expire-after", "PUSHGO_ALERTMANAGER_EXPIRE_AFTER", "close (timed_out) the Event of a firing alert no notification named for this long; at least 1m, longer than the receivers' repeat_interval plus group_interval (0: never)")
	str(&natsPing, "nats-ping", "PUSHGO_NATS_PING", "ping interval to an external NATS server; two missed pings move the connection to another server")
	str(&maxStore, "max-store", "PUSHGO_MAX_STORE", "embedded JetStream file storage limit, bytes")
	str(&maxMem, "max-memory", "PUSHGO_MAX_MEMORY", "embedded JetStream memory storage limit, bytes")
	str(&projCache, "projection-cache", "PUSHGO_PROJECTION_CACHE", "the projection store's block cache, bytes (at least 1 MiB)")
	str(&projSlots, "projection-slots", "PUSHGO_PROJECTION_SLOTS", "projector processes that may share the data directory (a volume every replica mounts), each in a slot of its own: 1 to 64")
	str(&selCache, "selection-cache", "PUSHGO_SELECTION_CACHE", "the answers of Dynatrace entitySelector selections kept until a Thing change a selector sees, bytes (0: none)")
	str(&c.APNsKeyFile, "apns-key-file", "PUSHGO_APNS_KEY_FILE", "APNs .p8 key file (token auth)")
	str(&c.APNsKeyID, "apns-key-id", "PUSHGO_APNS_KEY_ID", "APNs key id")
	str(&c.APNsTeamID, "apns-team-id", "PUSHGO_APNS_TEAM_ID", "APNs team id")
	str(&c.APNsTopic, "apns-topic", "PUSHGO_APNS_TOPIC", "APNs topic (bundle id)")
	str(&c.APNsWatchTopic, "apns-watch-topic", "PUSHGO_APNS_WATCH_TOPIC", "APNs topic of watchos devices (the watch app's bundle id)")
	str(&c.APNsEndpoint, "apns-endpoint", "PUSHGO_APNS_ENDPOINT", "APNs endpoint: production, development or a URL")
	apnsConns := strconv.Itoa(c.APNsConnections)
	str(&apnsConns, "apns-connections", "PUSHGO_APNS_CONNECTIONS", "HTTP/2 connections to APNs the pushes are spread over (1 to 64)")
	str(&c.FCMCredentialsFile, "fcm-credentials-file", "PUSHGO_FCM_CREDENTIALS_FILE", "FCM service account JSON")
	str(&c.FCMProjectID, "fcm-project-id", "PUSHGO_FCM_PROJECT_ID", "FCM project id")
	str(&c.FCMEndpoint, "fcm-endpoint", "PUSHGO_FCM_ENDPOINT", "FCM endpoint override")
	str(&c.TokenServiceURL, "token-service-url", "PUSHGO_TOKEN_SERVICE_URL", "PushGo token service: APNs and FCM tokens of the official apps, for a provider without own keys")
	str(&c.ThingUpdateAlerts, "thing-update-alerts", "PUSHGO_THING_UPDATE_ALERTS", "channel ids (comma-separated) exempted from -thing-update-quiet: their thing updates are alerts")
	str(&c.ThingUpdateQuiet, "thing-update-quiet", "PUSHGO_THING_UPDATE_QUIET", "channel ids (comma-separated, or * for every channel) whose thing updates are background pushes, not PushGo's alerts")
	str(&c.PublicBaseURL, "public-base-url", "PUSHGO_PUBLIC_BASE_URL", "the gateway's public http(s) URL, sent as base_url in pushes")
	partitions, failover := "auto", c.DeliveryFailover.String()
	if c.DeliveryPartitions > 0 {
		partitions = strconv.Itoa(c.DeliveryPartitions)
	}
	str(&partitions, "delivery-partitions", "PUSHGO_DELIVERY_PARTITIONS", "delivery partitions (1 to 64, or auto: the deployment's count; for a new one 1 with -target all, 2 for a pusher-only process); change it with every pusher stopped")
	str(&failover, "delivery-failover", "PUSHGO_DELIVERY_FAILOVER", "how long a gone pusher keeps its partitions before another takes them (at least 3s)")
	limitSettings := c.Limits.Settings()
	limitText := make([]string, len(limitSettings))
	for i, s := range limitSettings {
		limitText[i] = s.Get()
		str(&limitText[i], s.Flag, s.Env, s.Usage)
	}
	var rebuild string // its default, as -h prints it, is none (str takes the environment's)
	str(&rebuild, "rebuild", "PUSHGO_REBUILD", "true: delete the projection and fold it again from the log")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	for _, o := range []struct{ flag, env string }{{"sync", "PUSHGO_SYNC"}, {"max-store", "PUSHGO_MAX_STORE"},
		{"max-memory", "PUSHGO_MAX_MEMORY"}, {"nats-listen", "PUSHGO_NATS_LISTEN"}} {
		set := getenv(o.env) != ""
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == o.flag })
		if set {
			c.embeddedOnly = append(c.embeddedOnly, o.env)
		}
	}
	if fs.NArg() > 0 {
		// The flags stop at the first word that is not one: those after it
		// were dropped (pushgo serve ingest -nats-url … ran target all on
		// an embedded broker).
		return Config{}, fmt.Errorf("unexpected argument %q: every setting is a flag (-target ingest) or a variable", fs.Arg(0))
	}
	var err error
	for i, s := range limitSettings {
		if err := s.Set(limitText[i]); err != nil {
			return Config{}, fmt.Errorf("%s %q: %w", s.Env, limitText[i], err)
		}
	}
	if rebuild != "" {
		if c.Rebuild, err = strconv.ParseBool(rebuild); err != nil {
			return Config{}, fmt.Errorf("PUSHGO_REBUILD %q: %w", rebuild, err)
		}
	}
	if c.Sync, err = broker.ParseSync(syncStr); err != nil {
		return Config{}, err
	}
	if c.Replicas, err = strconv.Atoi(replicas); err != nil {
		return Config{}, fmt.Errorf("PUSHGO_REPLICAS %q: %w", replicas, err)
	}
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{{"PUSHGO_DEDUP_WINDOW", dedup, &c.DedupWindow}, {"PUSHGO_RETENTION", retention, &c.Retention}, {"PUSHGO_APPEND_TIMEOUT", appendTimeout, &c.AppendTimeout},
		{"PUSHGO_NATS_PING", natsPing, &c.NATSPing}} {
		if *d.out, err = parseDuration(d.in); err != nil {
			return Config{}, fmt.Errorf("%s %q: %w", d.name, d.in, err)
		}
	}
	if c.AlertmanagerAbsentAfter, err = parseDurationOrZero(absentAfter); err != nil {
		return Config{}, fmt.Errorf("PUSHGO_ALERTMANAGER_ABSENT_AFTER %q: want a duration of 0 or more", absentAfter)
	}
	// Alertmanager repeats a firing alert every repeat_interval (4h by
	// default): an expiry of seconds would close every firing alert
	// between two notifications and open it again, alerting devices each
	// time.
	if c.AlertmanagerExpireAfter, err = parseDurationOrZero(expireAfter); err != nil ||
		(c.AlertmanagerExpireAfter > 0 && c.AlertmanagerExpireAfter < time.Minute) {
		return Config{}, fmt.Errorf("PUSHGO_ALERTMANAGER_EXPIRE_AFTER %q: want 0 (never) or a duration of at least 1m, longer than the receivers' repeat_interval", expireAfter)
	}
	if c.NATSPing < 100*time.Millisecond {
		return Config{}, fmt.Errorf("PUSHGO_NATS_PING %q: want a duration of at least 100ms", natsPing)
	}
	if partitions == "auto" {
		c.DeliveryPartitions = 0
	} else if c.DeliveryPartitions, err = strconv.Atoi(partitions); err != nil || c.DeliveryPartitions < 1 || c.DeliveryPartitions > 64 {
		return Config{}, fmt.Errorf("PUSHGO_DELIVERY_PARTITIONS %q: want auto or an integer from 1 to 64", partitions)
	}
	if c.APNsConnections, err = strconv.Atoi(apnsConns); err != nil || c.APNsConnections < 1 || c.APNsConnections > 64 {
		return Config{}, fmt.Errorf("PUSHGO_APNS_CONNECTIONS %q: want an integer from 1 to 64", apnsConns)
	}
	if c.DeliveryFailover, err = parseDuration(failover); err != nil || c.DeliveryFailover < 3*time.Second {
		return Config{}, fmt.Errorf("PUSHGO_DELIVERY_FAILOVER %q: want a duration of at least 3s", failover)
	}
	if c.MaxIntegrationRequests, err = strconv.Atoi(maxInteg); err != nil || c.MaxIntegrationRequests < 1 {
		return Config{}, fmt.Errorf("PUSHGO_MAX_INTEGRATION_REQUESTS %q: want a positive integer", maxInteg)
	}
	if c.MaxStreams, err = strconv.Atoi(maxStreams); err != nil || c.MaxStreams < 1 {
		return Config{}, fmt.Errorf("PUSHGO_STREAMS_MAX %q: want a positive integer", maxStreams)
	}
	if c.MaxStreamsPerChannel, err = strconv.Atoi(maxStreamsChan); err != nil || c.MaxStreamsPerChannel < 1 {
		return Config{}, fmt.Errorf("PUSHGO_STREAMS_PER_CHANNEL_MAX %q: want a positive integer", maxStreamsChan)
	}
	if c.MaxStreamsPerClient, err = strconv.Atoi(maxStreamsClient); err != nil || c.MaxStreamsPerClient < 1 {
		return Config{}, fmt.Errorf("PUSHGO_STREAMS_PER_CLIENT_MAX %q: want a positive integer", maxStreamsClient)
	}
	if c.MetadataValueMax, err = strconv.Atoi(metaMax); err != nil {
		return Config{}, fmt.Errorf("PUSHGO_METADATA_VALUE_MAX %q: want an integer", metaMax)
	}
	// 0 was taken by the broker for its own default while /readyz and the
	// store metrics read it as no limit at all.
	if c.MaxStore, err = strconv.ParseInt(maxStore, 10, 64); err != nil || c.MaxStore < 1 {
		return Config{}, fmt.Errorf("PUSHGO_MAX_STORE %q: want a positive byte count", maxStore)
	}
	if c.MaxMemory, err = strconv.ParseInt(maxMem, 10, 64); err != nil || c.MaxMemory < 1 {
		return Config{}, fmt.Errorf("PUSHGO_MAX_MEMORY %q: want a positive byte count", maxMem)
	}
	if c.ProjectionCache, err = strconv.ParseInt(projCache, 10, 64); err != nil || c.ProjectionCache < 1<<20 {
		return Config{}, fmt.Errorf("PUSHGO_PROJECTION_CACHE %q: want a byte count of at least 1048576 (1 MiB)", projCache)
	}
	if c.ProjectionSlots, err = strconv.Atoi(projSlots); err != nil || c.ProjectionSlots < 1 || c.ProjectionSlots > 64 {
		return Config{}, fmt.Errorf("PUSHGO_PROJECTION_SLOTS %q: want 1 to 64", projSlots)
	}
	if c.SelectionCache, err = strconv.ParseInt(selCache, 10, 64); err != nil || c.SelectionCache < 0 || c.SelectionCache > math.MaxInt32 {
		return Config{}, fmt.Errorf("PUSHGO_SELECTION_CACHE %q: want 0 (no cache) or a byte count up to 2147483647", selCache)
	}
	if c.InboxPerDevice, err = strconv.ParseInt(inboxCap, 10, 64); err != nil || c.InboxPerDevice < 0 {
		return Config{}, fmt.Errorf("PUSHGO_INBOX_PER_DEVICE %q: want 0 (no limit) or a positive item count", inboxCap)
	}
	return c, c.Validate()
}

// parseDuration accepts Go durations plus a day suffix ("30d").
func parseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || days > int(math.MaxInt64/int64(24*time.Hour)) {
			// Past 106,751 days a Duration wraps: 213504d was 25 minutes.
			return 0, fmt.Errorf("bad day count (1 to 106751)")
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be positive")
	}
	return d, nil
}

// parseDurationOrZero is parseDuration that also takes a zero ("0",
// "0s"), for the settings whose 0 means at once or never.
func parseDurationOrZero(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil && d == 0 {
		return 0, nil
	}
	return parseDuration(s)
}

// formatDuration writes d as a setting would: whole days as "<n>d".
func formatDuration(d time.Duration) string {
	if day := 24 * time.Hour; d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

// StreamOptions are the stream options implied by c.
func (c Config) StreamOptions() streams.Options {
	o := streams.DefaultOptions()
	o.Replicas, o.Retention, o.DedupWindow, o.InboxPerDevice = c.Replicas, c.Retention, c.DedupWindow, c.InboxPerDevice
	return o
}

// Validate reports a configuration that cannot run, naming the variable:
// Load returns it (the binary exits 2 with it, before the broker starts),
// and Start checks again.
func (c Config) Validate() error {
	// The addresses' form; whether they are free is checked just before
	// the start (checkPortsFree: a busy port is no setting's fault).
	if err := checkListenAddr(c.HTTPAddr); err != nil {
		return fmt.Errorf("PUSHGO_HTTP_ADDR %q: want host:port, such as 127.0.0.1:8080, :8080 or [::1]:8080 (%w)", c.HTTPAddr, err)
	}
	if c.NATSURL == "" && c.NATSListen != "" && c.NATSListen != "off" {
		if err := broker.CheckListen(c.NATSListen); err != nil { // the broker's rule: no service name
			return fmt.Errorf("PUSHGO_NATS_LISTEN %q: want host:port, such as 127.0.0.1:4222, or off (%w)", c.NATSListen, err)
		}
	}
	// The pusher's rule, said with the variable before the broker starts
	// (it was found by pusher.Start, after the embedded broker started).
	if err := pusher.CheckPublicBaseURL(c.PublicBaseURL); err != nil {
		return fmt.Errorf("PUSHGO_PUBLIC_BASE_URL %q: %w", c.PublicBaseURL, err)
	}
	if _, _, err := c.thingUpdateChannels(); err != nil {
		return err
	}
	switch c.Target {
	case "all", "ingest", "projector", "pusher":
	default:
		return fmt.Errorf("unknown target %q; available: %s", c.Target, strings.Join(Targets, ", "))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("PUSHGO_LOG_LEVEL %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.Token != "" {
		// Taken as it is (a token may hold any other byte), so a value
		// no request can present made every request 401 while the start
		// reported a private gateway.
		if err := httpapi.CheckToken(c.Token); err != nil {
			return fmt.Errorf("PUSHGO_TOKEN: %w", err)
		}
	}
	if err := ops.CheckMetadataValueMax(c.MetadataValueMax); err != nil {
		return fmt.Errorf("PUSHGO_METADATA_VALUE_MAX: %w", err)
	}
	if c.DataDir == "" && (c.NATSURL == "" || c.Runs("projector")) {
		return fmt.Errorf("PUSHGO_DATA_DIR is required for the embedded broker and the projection store")
	}
	// The stream options' own rules (streams.Options.Validate), said with
	// the variables they come from: its errors name fields ("replicas 7:
	// must be 1..5"), which an operator has to map back to a setting.
	switch {
	case c.Replicas < 1 || c.Replicas > streams.MaxReplicas:
		return fmt.Errorf("PUSHGO_REPLICAS %d: want 1 to %d", c.Replicas, streams.MaxReplicas)
	case c.Replicas > 1 && c.NATSURL == "":
		// The embedded broker is one server: this passed, and the start
		// failed later, at the streams' creation, with the broker's words.
		return fmt.Errorf("PUSHGO_REPLICAS %d: the embedded broker (no PUSHGO_NATS_URL) is a single server and keeps 1 replica; "+
			"set PUSHGO_REPLICAS=1, or PUSHGO_NATS_URL to a cluster of at least %d servers", c.Replicas, c.Replicas)
	case c.Retention <= 0:
		return fmt.Errorf("PUSHGO_RETENTION %s: want a positive duration", c.Retention)
	case c.DedupWindow <= 0:
		return fmt.Errorf("PUSHGO_DEDUP_WINDOW %s: want a positive duration", c.DedupWindow)
	case c.DedupWindow > c.Retention:
		return fmt.Errorf("PUSHGO_DEDUP_WINDOW %s: must not exceed PUSHGO_RETENTION %s (an op_id is remembered no longer than its operation is kept)",
			formatDuration(c.DedupWindow), formatDuration(c.Retention))
	case c.InboxPerDevice < 0:
		return fmt.Errorf("PUSHGO_INBOX_PER_DEVICE %d: want 0 (no limit) or a positive item count", c.InboxPerDevice)
	}
	if err := c.StreamOptions().Validate(); err != nil {
		return fmt.Errorf("stream options: %w", err)
	}
	return nil
}

// checkListenAddr checks the form of a TCP address to listen on, as
// net.Listen reads it: host:port, the host empty for every interface or an
// IPv6 address in brackets, the port a number up to 65535 (or a service
// name). The error says what is wrong, in net's words. "notanaddr" was
// found only by the listen, after every other setting was checked, without
// the variable.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return errors.New(ae.Err)
		}
		return err
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("port %q is neither a number from 0 to 65535 nor a service name", port)
	}
	return nil
}

// thingUpdateChannels reads PUSHGO_THING_UPDATE_QUIET and _ALERTS: channel
// ids, comma-separated, each made canonical (the pusher compares them with
// the operations' ids, so a lower-case or grouped id never matched), and
// "*" for every channel in the quiet list only: the alerts list names the
// channels exempted from it, and thing updates ring by default. A word
// that is not a channel id was taken and never matched anything.
func (c Config) thingUpdateChannels() (quiet, alerts []string, err error) {
	list := func(env, v string, star bool) ([]string, error) {
		out := []string{}
		for _, s := range splitList(v) {
			if s == "*" && star {
				out = append(out, s)
				continue
			}
			id, ok := ids.NormalizeChannelID(s)
			if !ok && s == "*" {
				return nil, fmt.Errorf("%s %q: want channel ids (comma-separated), the channels exempted from PUSHGO_THING_UPDATE_QUIET; "+
					"* would exempt every channel: thing updates ring by default, so leave PUSHGO_THING_UPDATE_QUIET empty instead", env, v)
			}
			if !ok {
				what := "channel ids (comma-separated)"
				if star {
					what += " or * for every channel"
				}
				return nil, fmt.Errorf("%s %q: %q is not a channel id (26 characters of Crockford base32); want %s", env, v, s, what)
			}
			out = append(out, id)
		}
		return out, nil
	}
	if quiet, err = list("PUSHGO_THING_UPDATE_QUIET", c.ThingUpdateQuiet, true); err != nil {
		return nil, nil, err
	}
	if alerts, err = list("PUSHGO_THING_UPDATE_ALERTS", c.ThingUpdateAlerts, false); err != nil {
		return nil, nil, err
	}
	return quiet, alerts, nil
}

// EnvOS is os.Getenv, for Load.
func EnvOS(k string) string { return os.Getenv(k) }

// selectionCacheBytes is SelectionCache as projector.Config takes it: 0
// (off) is negative there, where 0 means the default.
func (c Config) selectionCacheBytes() int {
	if c.SelectionCache == 0 {
		return -1
	}
	return int(c.SelectionCache)
}
