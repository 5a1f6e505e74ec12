// Package alertmanager is the contract of the Prometheus Alertmanager
// (webhook payload version 4) and Grafana (unified alerting, webhook
// version 1) receivers (spec integrations.md section 4): the payload, its
// validation, and the mapping of each alert onto a PushGo Event operation.
// It is pure: the caller passes the clock, and appends.
//
// One Event per alert fingerprint: a firing alert opens it (or updates the
// open one), a resolved alert closes it. Both tools re-send whole groups
// every group_interval / repeat_interval, so every firing Report carries a
// Content value (to be hashed into the operation's ContentHash) that leaves
// out what changes on every resend without the alert having changed: the
// times, Grafana's per-evaluation values, and the screenshot URL.
package alertmanager

import (
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/wire"
)

// Source is the alerts.Key source of this tool's alerts.
const Source = "alertmanager"

// Alert statuses, and the Event statuses they map to.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Limits. Titles and messages are cut to the PushGo limits, never refused.
// Label and annotation sets are bounded like Dynatrace properties (the
// other integration whose key/value pairs become attrs): an Event's attrs
// must stay a small record, while a templating mistake can put a whole log
// excerpt into an annotation.
const (
	MaxTitle          = 256
	MaxMessage        = 512
	MaxFingerprint    = 256
	MaxAttrEntries    = 100  // per labels / annotations / values object
	MaxAttrKey        = 100  // characters; a longer name is skipped
	MaxAttrValue      = 4096 // characters; a longer value is cut
	maxURL            = 2048 // ops' limit on images
	placeholderChanID = "00000000000000000000000000"
	// maxLabelBytes bounds an alert's labels and annotations together, as
	// encoded: members past it (in name order, labels first) are left out
	// and TruncatedAttr is set, so an alert within Alertmanager's own
	// limits (100 labels and 100 annotations of 4096 characters: 3 MiB
	// and more) is cut, never refused for its size (ops.MaxContentBytes),
	// which would drop its whole group's notification.
	maxLabelBytes = 64 << 10
	// placeholderEventID has the length of a derived event id.
	placeholderEventID = "00000000000000000000000000000000"
	// checkHeadroom covers what an update adds to a create's content (an
	// "event_id" member) and more.
	checkHeadroom = 256
)

// TruncatedAttr is set to true in a report's attrs when labels or
// annotations were left out to respect maxLabelBytes (the event bus's
// marker too).
const TruncatedAttr = ops.TruncatedAttr

// Payload is the webhook body. Alertmanager and Grafana send the same
// shape; Grafana adds orgId, state, title, message and, per alert, values,
// valueString, dashboardURL, panelURL, silenceURL and imageURL.
type Payload struct {
	Receiver          string            `json:"receiver"`
	Status            string            `json:"status"`
	Alerts            []Alert           `json:"alerts"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	// TruncatedAlerts is how many of the group's alerts the receiver's
	// max_alerts left out; nil when the member is absent (a sender other
	// than Alertmanager or Grafana, which both always send it).
	TruncatedAlerts *uint64 `json:"truncatedAlerts"`

	// Grafana.
	OrgID   *int64 `json:"orgId"`
	State   string `json:"state"`
	Title   string `json:"title"`
	Message string `json:"message"`
}

// Grouped reports whether p is a notification of a whole alert group, as
// Alertmanager and Grafana send: it names its group and how many of the
// group's alerts it left out. A hand-made payload that lacks either may
// carry any subset of its alerts, and says nothing of the others.
func (p *Payload) Grouped() bool { return p.GroupKey != "" && p.TruncatedAlerts != nil }

// Complete reports whether p names every alert of its group (Grouped, and
// none left out by max_alerts): an alert of the group that it leaves out
// is resolved (its resolve cut from an earlier notification, or never
// sent), silenced or inhibited.
func (p *Payload) Complete() bool { return p.Grouped() && *p.TruncatedAlerts == 0 }

// Gone is the close of the Event of an alert that left its group without
// its resolve (alerts.Group.Gone), at now (ms); the tracker sets its
// severity to the alert's.
func Gone(now int64) ops.EventRequest {
	return ops.EventRequest{
		Status:    ptr(StatusResolved),
		Message:   ptr(GoneMessage),
		Severity:  ptr(ops.SeverityNormal),
		EventTime: ptr(wire.Millis(now)),
		EndedAt:   ptr(wire.Millis(now)),
	}
}

// GoneMessage is the message of Gone's close.
const GoneMessage = "Resolved: no longer in its group's notifications (its resolve cut by max_alerts or not sent, or the alert silenced or inhibited)"

// Alert is one alert of a payload. Times are kept as sent and parsed by
// Translate, so that a bad one is reported with its field.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     string            `json:"startsAt"`
	EndsAt       string            `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`

	// Grafana. A value may be null (no data for that query).
	SilenceURL   string              `json:"silenceURL"`
	DashboardURL string              `json:"dashboardURL"`
	PanelURL     string              `json:"panelURL"`
	ImageURL     string              `json:"imageURL"`
	Values       map[string]*float64 `json:"values"`
	ValueString  string              `json:"valueString"`
}

// decodeOptions accept members this package does not know: Alertmanager
// and Grafana add fields between versions (silenceURL, values, orgId and
// truncatedAlerts all arrived that way), and a webhook receiver that
// refused them would drop every notification after a tool upgrade, with
// the tool only logging a 400. What it does reject: duplicate member names
// (which value did the sender mean?), wrong types, invalid UTF-8, and
// members that differ from a known name only by case.
var decodeOptions = json.JoinOptions(
	json.RejectUnknownMembers(false),
	json.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
)

// Decode reads body as one Payload. Errors are 400s: invalid_request_body
// (empty), invalid_json_syntax (malformed JSON), invalid_json_data (naming
// the member: a duplicate, a wrong type, text that is not Unicode), mapped
// as a PushGo body's are (wire.Classify).
func Decode(body []byte) (*Payload, *apierr.Error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, apierr.New(apierr.InvalidRequestBody)
	}
	if ptr, found := wire.NumberOutOfRange(body); found {
		return nil, apierr.Fieldf(apierr.InvalidJSONData, wire.Dotted(ptr), "%s", wire.OutOfRangeReason)
	}
	var p Payload
	if err := json.Unmarshal(body, &p, decodeOptions); err != nil {
		return nil, wire.Classify(body, err)
	}
	return &p, nil
}

// Report is one alert as an Event operation for the alert tracker.
type Report struct {
	// Fingerprint is the alert's identity (alerts.Key.Value): as sent, or
	// derived from its labels.
	Fingerprint string
	// Resolved: close the fingerprint's open Event (tracker Close); else
	// open or update it (tracker Open).
	Resolved bool
	// Event holds title, status, message, severity, event_time, images,
	// attrs and started_at (firing) or ended_at (resolved). ChannelID,
	// OpID, EventID and Password are left for the tracker.
	Event ops.EventRequest
	// Content is what a firing report says, to be hashed into the
	// operation's ContentHash: Event without its times, Grafana's values
	// and the screenshot URL. Two resends of an unchanged alert have equal
	// Content. Nil on resolved reports (a close is never skipped).
	Content any
	// Since is the alert's startsAt (ms): when this occurrence began, the
	// same at every resend while it fires (alerts.Report.Since).
	Since int64
	// Superseded (firing reports) closes the open Event of an earlier
	// occurrence whose resolve never came (alerts.Report.Superseded):
	// status resolved, ended at this occurrence's start.
	Superseded *ops.EventRequest
}

// content is the hashed view of a firing report.
type content struct {
	Title    string         `json:"title"`
	Status   string         `json:"status"`
	Message  string         `json:"message"`
	Severity string         `json:"severity"`
	Attrs    map[string]any `json:"attrs"`
}

// Translate validates p as a whole and maps every alert to a Report, in
// payload order. now (ms) is the end of a resolved alert that carries no
// endsAt. Any invalid alert fails the whole payload (400), so a caller
// that translates before appending appends nothing for a bad payload.
// Every Report passes ops.ValidateIntegrationEvent as the tracker will use
// it, so the appends cannot fail validation half way through a payload.
func Translate(p *Payload, now int64) ([]Report, *apierr.Error) {
	if len(p.Alerts) == 0 {
		return nil, apierr.Fieldf(apierr.InvalidJSONData, "alerts", "must be a non-empty list of alerts")
	}
	out := make([]Report, len(p.Alerts))
	// A large payload is translated on every core, in contiguous parts:
	// its translation is serial CPU before any append (2.3 ms for 100
	// alerts), in an outage's burst. The first error in payload order is
	// the one reported, as when translated in one go.
	parts := min(runtime.GOMAXPROCS(0), len(p.Alerts)/translatePart)
	if parts <= 1 {
		if err := translateRange(p, out, 0, len(p.Alerts), now); err != nil {
			return nil, err
		}
		return out, nil
	}
	errs := make([]*apierr.Error, parts)
	panics := make([]any, parts)
	var wg sync.WaitGroup
	for k := range parts {
		lo, hi := k*len(p.Alerts)/parts, (k+1)*len(p.Alerts)/parts
		wg.Go(func() {
			// A panic goes on in the caller's goroutine, where the HTTP
			// server recovers it for its request, as before the split: in
			// this goroutine it would end the process.
			defer func() { panics[k] = recover() }()
			errs[k] = translateRange(p, out, lo, hi, now)
		})
	}
	wg.Wait()
	for _, r := range panics {
		if r != nil {
			panic(r)
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// translatePart is the fewest alerts worth a goroutine of Translate.
const translatePart = 32

// translateRange translates p's alerts lo to hi-1 into out, stopping at
// the first invalid one.
func translateRange(p *Payload, out []Report, lo, hi int, now int64) *apierr.Error {
	for i := lo; i < hi; i++ {
		r, err := translate(p, &p.Alerts[i], fmt.Sprintf("alerts.%d", i), now)
		if err != nil {
			return err
		}
		out[i] = r
	}
	return nil
}

// Parse is Decode then Translate.
func Parse(body []byte, now int64) (*Payload, []Report, *apierr.Error) {
	p, err := Decode(body)
	if err != nil {
		return nil, nil, err
	}
	reps, err := Translate(p, now)
	if err != nil {
		return nil, nil, err
	}
	return p, reps, nil
}

func translate(p *Payload, a *Alert, at string, now int64) (Report, *apierr.Error) {
	var r Report
	switch a.Status {
	case StatusFiring:
	case StatusResolved:
		r.Resolved = true
	default:
		return r, apierr.Fieldf(apierr.InvalidJSONData, at+".status", "must be firing or resolved, got %q", clip(a.Status))
	}

	r.Fingerprint = strings.TrimSpace(a.Fingerprint)
	if r.Fingerprint == "" {
		if len(a.Labels) == 0 {
			return r, apierr.Fieldf(apierr.InvalidJSONData, at+".fingerprint", "required when the alert has no labels to derive it from")
		}
		r.Fingerprint = Fingerprint(a.Labels)
	}
	if utf8.RuneCountInString(r.Fingerprint) > MaxFingerprint {
		return r, apierr.Fieldf(apierr.InvalidJSONData, at+".fingerprint", "must be at most %d characters", MaxFingerprint)
	}

	startsAt, ok := parseTime(a.StartsAt)
	if !ok {
		return r, apierr.Fieldf(apierr.InvalidTimestamp, at+".startsAt", "must be an RFC 3339 time after 1970, got %q", clip(a.StartsAt))
	}
	// Alertmanager sends endsAt on firing alerts too (the time it will
	// consider them resolved if not refreshed, or 0001-01-01 for "never"):
	// it must parse, but only a resolved alert uses it.
	endsAt, hasEnd := int64(0), false
	if s := strings.TrimSpace(a.EndsAt); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return r, apierr.Fieldf(apierr.InvalidTimestamp, at+".endsAt", "must be an RFC 3339 time, got %q", clip(a.EndsAt))
		}
		if ms := t.UnixMilli(); ms >= 0 && ms <= maxMillis && !t.IsZero() {
			endsAt, hasEnd = ms, true
		}
	}

	title := firstText(MaxTitle, a.Labels["alertname"], p.Title)
	if title == "" {
		title = "Alert " + ops.Truncate(r.Fingerprint, MaxTitle-len("Alert "))
	}
	message := firstText(MaxMessage, a.Annotations["summary"], a.Annotations["description"], title)
	sev := Severity(a.Labels["severity"])

	stable, volatile := attrs(p, a)
	full := make(map[string]any, len(stable)+len(volatile))
	for k, v := range stable {
		full[k] = v
	}
	for k, v := range volatile {
		full[k] = v
	}
	attrsJSON, err := json.Marshal(full, json.Deterministic(true))
	if err != nil {
		return r, apierr.Fieldf(apierr.InternalError, at, "encode attrs: %v", err)
	}

	ev := ops.EventRequest{
		Title:    &title,
		Message:  &message,
		Severity: &sev,
		Attrs:    attrsJSON,
	}
	if img := imageURL(a.ImageURL); img != "" {
		ev.Images = []string{img}
	}
	op := ops.EventCreate
	if r.Resolved {
		op = ops.EventClose
		end := now
		if hasEnd {
			end = endsAt
		}
		ev.Status = ptr(StatusResolved)
		ev.EventTime, ev.EndedAt = ptr(wire.Millis(end)), ptr(wire.Millis(end))
	} else {
		ev.Status = ptr(StatusFiring)
		ev.EventTime, ev.StartedAt = ptr(wire.Millis(startsAt)), ptr(wire.Millis(startsAt))
		r.Content = content{Title: title, Status: StatusFiring, Message: message, Severity: sev, Attrs: stable}
		sup := ev
		sup.Status, sup.StartedAt = ptr(StatusResolved), nil
		sup.EventTime, sup.EndedAt = ptr(wire.Millis(startsAt)), ptr(wire.Millis(startsAt))
		r.Superseded = &sup
	}
	r.Event, r.Since = ev, startsAt

	// The check the tracker's appends will make, with placeholder ids of
	// the real ids' lengths. A firing alert is checked as its create; the
	// tracker may make it an update, whose event_id the create lacks: the
	// headroom keeps an alert that passes here within the size bound as
	// either, so a payload is never refused after some of it is appended.
	check := ev
	check.ChannelID = ptr(placeholderChanID)
	if r.Resolved {
		check.EventID = ptr(placeholderEventID)
	}
	if _, err := ops.ValidateIntegrationEvent(op, &check, ops.WithContentHeadroom(checkHeadroom)); err != nil {
		return r, &apierr.Error{Code: err.Code, Detail: at + ": " + err.Detail}
	}
	if r.Superseded != nil {
		check := *r.Superseded
		check.ChannelID, check.EventID = ptr(placeholderChanID), ptr(placeholderEventID)
		if _, err := ops.ValidateIntegrationEvent(ops.EventClose, &check, ops.WithContentHeadroom(checkHeadroom)); err != nil {
			return r, &apierr.Error{Code: err.Code, Detail: at + ": " + err.Detail}
		}
	}
	return r, nil
}

// maxMillis is wire.Millis' upper bound, 9999-12-31T23:59:59.999Z.
const maxMillis = 253_402_300_799_999

// parseTime parses an RFC 3339 time (fractional seconds allowed) at or
// after the Unix epoch, to ms.
func parseTime(s string) (int64, bool) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return 0, false
	}
	ms := t.UnixMilli()
	return ms, ms >= 0 && ms <= maxMillis
}

// Severity maps labels.severity (case-insensitive) to a PushGo severity:
// critical → critical; error, high, major → high; warning → normal; info,
// low, none → low; missing or anything else → normal.
func Severity(label string) string {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "critical":
		return ops.SeverityCritical
	case "error", "high", "major":
		return ops.SeverityHigh
	case "info", "low", "none":
		return ops.SeverityLow
	}
	return ops.SeverityNormal
}

// Fingerprint is the fingerprint Prometheus computes for a label set
// (FNV-1a 64 over the names in sorted order, each name and value followed
// by a 0xff separator; 16 lower-case hex digits). For an Alertmanager
// alert it equals the fingerprint Alertmanager itself would have sent, so
// one alert reported with and without a fingerprint is one key.
func Fingerprint(labels map[string]string) string {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
		sep      = 0xff
	)
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	slices.Sort(names)
	h := uint64(offset64)
	add := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= prime64
		}
		h ^= sep
		h *= prime64
	}
	for _, n := range names {
		add(n)
		add(labels[n])
	}
	return fmt.Sprintf("%016x", h)
}

// attrs returns the alert's attrs in two parts: stable (labels,
// annotations, silenceURL, orgId: what identifies and describes the
// alert) and volatile (Grafana's values and valueString, which change at
// every evaluation of a steady alert, its dashboard and panel URLs, whose
// time range ends at the send, and who sent it: generatorURL, externalURL,
// receiver). Empty strings are left out: they
// carry nothing, and in a merge patch they would only overwrite.
//
// The attrs are a merge patch: an annotation that disappears from a later
// report stays in the Event's attrs (the gateway does not know the earlier
// report's keys to send a null).
func attrs(p *Payload, a *Alert) (stable, volatile map[string]any) {
	stable = map[string]any{}
	budget := ops.NewAttrsBudget(maxLabelBytes)
	if m := boundedStrings(a.Labels, &budget); len(m) > 0 {
		stable["labels"] = m
	}
	if m := boundedStrings(a.Annotations, &budget); len(m) > 0 {
		stable["annotations"] = m
	}
	if budget.Cut() {
		stable[TruncatedAttr] = true
	}
	for k, v := range map[string]string{"silenceURL": a.SilenceURL} {
		if v = strings.TrimSpace(v); v != "" {
			stable[k] = ops.Truncate(v, MaxAttrValue)
		}
	}
	if p.OrgID != nil {
		stable["orgId"] = *p.OrgID
	}

	volatile = map[string]any{}
	// Grafana (12 on, grafana/alerting templates generateDashboardURL)
	// ends a firing alert's dashboard and panel URLs with to=<now>: they
	// differ at every resend, and in Content they made each resend of a
	// steady alert a visible push. Who sent the alert is not the alert
	// either: the two Prometheus of a high-availability pair each send it
	// with their own generatorURL, and Alertmanager keeps the latest
	// sender's (types.Alert.Merge), so it flipped between them from one
	// notification to the next; the two Alertmanagers of a pair (their own
	// externalURL) and two receivers of one route sending to one channel
	// flip the others. Each flip was an alerting update of an unchanged
	// alert. They are written whenever something else changes.
	for k, v := range map[string]string{"dashboardURL": a.DashboardURL, "panelURL": a.PanelURL,
		"generatorURL": a.GeneratorURL, "externalURL": p.ExternalURL, "receiver": p.Receiver} {
		if v = strings.TrimSpace(v); v != "" {
			volatile[k] = ops.Truncate(v, MaxAttrValue)
		}
	}
	if len(a.Values) > 0 {
		vals := map[string]any{}
		for _, k := range boundedKeys(a.Values) {
			if v := a.Values[k]; v != nil { // null would delete the key
				vals[k] = *v
			}
		}
		if len(vals) > 0 {
			volatile["values"] = vals
		}
	}
	if v := strings.TrimSpace(a.ValueString); v != "" {
		volatile["valueString"] = ops.Truncate(v, MaxAttrValue)
	}
	return stable, volatile
}

// boundedStrings applies the attrs limits to a label or annotation set,
// deterministically: names in sorted order, names longer than MaxAttrKey
// (or empty) skipped, the first MaxAttrEntries kept, values cut to
// MaxAttrValue characters, and only the members that still fit in budget.
// Empty values are kept: a label may be "".
func boundedStrings(m map[string]string, budget *ops.AttrsBudget) map[string]any {
	keys := boundedKeys(m)
	if len(keys) == 0 {
		return nil
	}
	out := make(map[string]any, len(keys))
	for _, k := range keys {
		if v := ops.Truncate(m[k], MaxAttrValue); budget.TakeString(k, v) != nil {
			out[k] = v
		}
	}
	return out
}

// boundedKeys returns the names of m that boundedStrings keeps.
func boundedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "" && utf8.RuneCountInString(k) <= MaxAttrKey {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if len(keys) > MaxAttrEntries {
		keys = keys[:MaxAttrEntries]
	}
	return keys
}

// imageURL returns s when it can be an Event image (an absolute http(s)
// URL of at most 2048 characters), else "": a bad screenshot URL is
// dropped rather than failing the alert.
func imageURL(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || utf8.RuneCountInString(s) > maxURL {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return s
}

// firstText returns the first of vs that is not blank, trimmed and cut to
// max characters.
func firstText(max int, vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return strings.TrimSpace(ops.Truncate(v, max))
		}
	}
	return ""
}

// clip shortens a rejected value for an error message.
func clip(s string) string {
	if utf8.RuneCountInString(s) > 64 {
		return ops.Truncate(s, 64) + "..."
	}
	return s
}

func ptr[T any](v T) *T { return &v }
