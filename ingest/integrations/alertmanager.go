package integrations

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v5"

	"github.com/pushgo/gateway/broker/apitokens"
	"github.com/pushgo/gateway/ingest/alerts"
	"github.com/pushgo/gateway/ingest/httpapi"
	"github.com/pushgo/gateway/ingest/integrations/alertmanager"
	"github.com/pushgo/gateway/schemas/apierr"
)

// Prometheus Alertmanager (webhook v4) and Grafana (webhook v1) on one
// route (spec integrations.md section 4). Answers use the PushGo envelope.
// Every overload or broker failure is a 503 with Retry-After, never a 429:
// Alertmanager and Grafana retry a notification only on a 5xx, and drop it
// on any 4xx. So is a body cut by its deadline, or one over 1 MiB that
// finds the budget of such bodies taken. A notification may be up to
// limits.Config.AlertmanagerBody: Alertmanager sends a group's every alert
// at once, and an outage's group passes 1 MiB.

// amParallel bounds the alerts of one payload processed at once: a
// 100-alert group must be answered within Alertmanager's patience (and
// the 50 ms p99 budget), without one payload taking every broker
// round trip of the gateway.
const amParallel = 64

// Outcomes of one alert in the answer.
const (
	amOpened    = "opened"
	amUpdated   = "updated"
	amUnchanged = "unchanged"
	amResolved  = "resolved"
	// amAbsent: a resolved alert with no open Event (resolved before it
	// was ever reported, or resolved again): nothing was appended.
	amAbsent = "absent"
	// amGone: an alert of the group that the notification does not name
	// any more, whose Event was open: closed (alerts.Tracker.SettleGroup).
	amGone = "gone"
)

// amAnswer is the 200 data: one counter per outcome and one item per
// alert, in payload order.
type amAnswer struct {
	Alerts    int `json:"alerts"`
	Opened    int `json:"opened"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	Resolved  int `json:"resolved"`
	Absent    int `json:"absent"`
	// Gone counts the Events closed of alerts the group's notification
	// no longer names; they follow the payload's items in Events.
	Gone   int       `json:"gone"`
	Events []amEvent `json:"events"`
}

type amEvent struct {
	Fingerprint string `json:"fingerprint"`
	EventID     string `json:"event_id,omitempty"`
	Outcome     string `json:"outcome"`
}

func (r *Routes) routeAlertmanager(e *echo.Echo) {
	e.POST(RouteAlertmanager, r.alertmanager)
}

// amOverloaded is the answer when no in-flight slot is free.
func amOverloaded() *apierr.Error {
	return &apierr.Error{Code: apierr.AppendUnavailable, Detail: "too many integration requests in flight; retry", RetryAfter: 1}
}

// amRetryable turns every "retry later" into a 503 with Retry-After:
// a 429 would make Alertmanager drop the notification.
func amRetryable(e *apierr.Error) *apierr.Error {
	switch e.Status() {
	case http.StatusTooManyRequests:
		return &apierr.Error{Code: apierr.AppendUnavailable, Detail: e.Detail, RetryAfter: max(e.RetryAfter, 1)}
	case http.StatusServiceUnavailable:
		return &apierr.Error{Code: e.Code, Detail: e.Detail, RetryAfter: max(e.RetryAfter, 1)}
	}
	return e
}

// alertmanager handles one webhook notification: authorize, read and
// translate the whole payload (a bad alert refuses the payload before
// anything is appended), then open, update or close one Event per alert.
func (r *Routes) alertmanager(c *echo.Context) error {
	ctx := c.Request().Context()
	tok, aerr := r.d.Tokens.Authorize(ctx, c.Request().Header.Get("Authorization"), apitokens.ScopeEventsIngest)
	if aerr != nil {
		return httpapi.WriteError(c, amRetryable(aerr))
	}
	release, ok := r.admit(c, tok.ChannelID, tok.ID)
	if !ok {
		return httpapi.WriteError(c, amOverloaded())
	}
	defer release()
	body, held, err := r.readBodyUpTo(c, tok.ChannelID, int64(r.d.Limits.Config().AlertmanagerBody), "PUSHGO_LIMIT_ALERTMANAGER_BODY")
	defer held()
	switch {
	case errors.Is(err, errTooLarge):
		// Dropped by the sender: say so where its operator looks.
		r.log.Warn("alertmanager: notification refused for its size; raise PUSHGO_LIMIT_ALERTMANAGER_BODY or set the receiver's max_alerts",
			"channel_id", tok.ChannelID, "content_length", c.Request().ContentLength, "err", err)
		return httpapi.WriteError(c, &apierr.Error{Code: apierr.PayloadTooLarge, Detail: err.Error()})
	case errors.Is(err, errLargeBusy), errors.Is(err, errBodyTimeout):
		// Retried by the sender (a 4xx would drop the notification).
		return httpapi.WriteError(c, &apierr.Error{Code: apierr.AppendUnavailable, Detail: err.Error(), RetryAfter: 1})
	case err != nil:
		if _, code, ok := encodingRefusal(err); ok {
			return httpapi.WriteError(c, &apierr.Error{Code: code, Detail: err.Error()})
		}
		return httpapi.WriteError(c, &apierr.Error{Code: apierr.InvalidRequestBody, Detail: "reading the request body: " + err.Error()})
	}
	p, reps, aerr := alertmanager.Parse(body, r.d.Now().UnixMilli())
	if aerr != nil {
		return httpapi.WriteError(c, aerr)
	}
	if p.Grouped() && *p.TruncatedAlerts > 0 {
		// Alertmanager's max_alerts cut the group: the alerts left out are
		// not seen here until a later notification carries them.
		r.log.Info("alertmanager: notification truncated by the sender", "channel_id", tok.ChannelID,
			"truncated_alerts", *p.TruncatedAlerts, "group_key", p.GroupKey)
	}

	outs, aerr := r.amApply(ctx, tok.ChannelID, reps)
	if aerr != nil {
		return httpapi.WriteError(c, amRetryable(aerr))
	}
	var gone []alerts.GoneOutcome
	if p.Grouped() {
		if gone, aerr = r.d.Alerts.SettleGroup(ctx, amGroup(tok.ChannelID, p, reps, outs, r.d.Now().UnixMilli())); aerr != nil {
			r.log.Warn("alertmanager: group not settled", "channel_id", tok.ChannelID, "group_key", p.GroupKey,
				"error_code", aerr.Code, "err", aerr.Detail)
			return httpapi.WriteError(c, amRetryable(aerr))
		}
	}
	ans := amAnswer{Alerts: len(reps), Events: make([]amEvent, len(reps), len(reps)+len(gone))}
	for i, rep := range reps {
		o := outs[i]
		ev := amEvent{Fingerprint: rep.Fingerprint, EventID: o.EventID}
		switch {
		case o.Absent:
			ev.Outcome, ev.EventID = amAbsent, ""
			ans.Absent++
		case rep.Resolved:
			ev.Outcome = amResolved
			ans.Resolved++
		case o.Created:
			ev.Outcome = amOpened
			ans.Opened++
		case o.Unchanged:
			ev.Outcome = amUnchanged
			ans.Unchanged++
		default:
			ev.Outcome = amUpdated
			ans.Updated++
		}
		ans.Events[i] = ev
	}
	for _, g := range gone {
		if !g.Absent {
			ans.Gone++
			ans.Events = append(ans.Events, amEvent{Fingerprint: g.Value, EventID: g.EventID, Outcome: amGone})
		}
	}
	if ans.Gone > 0 {
		r.log.Info("alertmanager: closed the events of alerts no longer in their group", "channel_id", tok.ChannelID,
			"group_key", p.GroupKey, "closed", ans.Gone)
	}
	// Counted once answered 200: a notification answered 503 is counted
	// by its resend.
	r.m.countAlertmanager(ans, p.Grouped() && *p.TruncatedAlerts > 0)
	return httpapi.WriteOK(c, ans)
}

// amGroup is p as a notification of its group (p.Grouped), its alerts
// applied with outcomes outs, at now (ms).
func amGroup(channelID string, p *alertmanager.Payload, reps []alertmanager.Report, outs []alerts.Outcome, now int64) alerts.Group {
	// A group key is unique within one sender, not between two: two
	// Alertmanagers (production, staging) with one route tree send the
	// same keys, and each must not close the other's alerts. The sender is
	// its external URL (an Alertmanager's, or Grafana's root URL and org).
	sender := p.ExternalURL + "\n" + p.Receiver
	if p.OrgID != nil {
		sender += "\n" + strconv.FormatInt(*p.OrgID, 10)
	}
	g := alerts.Group{Key: alerts.Key{ChannelID: channelID, Source: alertmanager.Source, Value: sender + "\n" + p.GroupKey},
		Complete: p.Complete(), Gone: alertmanager.Gone(now)}
	g.Members = make([]alerts.Member, len(reps))
	for i, rep := range reps {
		g.Members[i] = alerts.Member{Value: rep.Fingerprint, Resolved: rep.Resolved, Stale: rep.Resolved && outs[i].Absent}
		if !rep.Resolved {
			g.Members[i].EventID, g.Members[i].Severity = outs[i].EventID, *rep.Event.Severity
		}
	}
	return g
}

// amApply reports every alert to the tracker, amParallel at a time, and
// returns their outcomes in payload order. Alerts of one fingerprint
// (which a sender should not repeat within a payload, but a derived
// fingerprint can) are applied one after the other in payload order, so
// a firing-then-resolved pair ends resolved. The first failure stops the
// alerts not yet started: the sender retries the whole payload, and the
// alerts already applied are then unchanged (or absent).
func (r *Routes) amApply(ctx context.Context, channelID string, reps []alertmanager.Report) ([]alerts.Outcome, *apierr.Error) {
	// Group by fingerprint, groups in order of first appearance.
	var groups [][]int
	index := make(map[string]int, len(reps))
	for i, rep := range reps {
		g, ok := index[rep.Fingerprint]
		if !ok {
			g = len(groups)
			index[rep.Fingerprint] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}

	outs := make([]alerts.Outcome, len(reps))
	first := r.lanes.each(ctx, len(groups), amParallel, func(ctx context.Context, gi int) *apierr.Error {
		for _, i := range groups[gi] {
			o, aerr := r.amReport(ctx, channelID, reps[i])
			if aerr != nil {
				return aerr
			}
			outs[i] = o
		}
		return nil
	})
	if first != nil {
		r.log.Warn("alertmanager: notification not fully applied", "channel_id", channelID,
			"alerts", len(reps), "error_code", first.Code, "err", first.Detail)
		return nil, first
	}
	if err := ctx.Err(); err != nil {
		// The client went away before every alert was applied.
		return nil, &apierr.Error{Code: apierr.AppendUnavailable, Detail: "request cancelled: " + err.Error(), RetryAfter: 1}
	}
	return outs, nil
}

// amReport applies one alert.
func (r *Routes) amReport(ctx context.Context, channelID string, rep alertmanager.Report) (alerts.Outcome, *apierr.Error) {
	key := alerts.Key{ChannelID: channelID, Source: alertmanager.Source, Value: rep.Fingerprint}
	if rep.Resolved {
		return r.d.Alerts.Close(ctx, key, rep.Event)
	}
	var deadline *int64
	if r.d.AlertmanagerExpireAfter > 0 {
		// Every notification naming it moves the deadline on (a repeat
		// is then appended, as a background refresh).
		deadline = ptr(r.d.Now().Add(r.d.AlertmanagerExpireAfter).UnixMilli())
	}
	return r.d.Alerts.Open(ctx, alerts.Report{Key: key, Event: rep.Event, ContentHash: contentHash(rep.Content),
		Since: rep.Since, Superseded: rep.Superseded, Deadline: deadline})
}
