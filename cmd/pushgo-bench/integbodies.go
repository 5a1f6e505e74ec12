package main

import (
	"strconv"
	"time"
)

// The request bodies of the integrations phases: the Things the Dynatrace
// selectors pick, Dynatrace EventIngest reports, and Alertmanager webhook
// (version 4) payloads.

// hostCreate is the /thing/create body of the integrations set-up: a Thing
// of type HOST titled host-<i>, which entityName.equals(host-<i>) selects.
func (b *bodies) hostCreate(i int, ms int64) []byte {
	return []byte(`{"channel_id":"` + b.channelID + `","password":"` + b.password +
		`","title":"host-` + strconv.Itoa(i) + `","observed_at":` + strconv.FormatInt(ms, 10) +
		`,"attrs":{"type":"HOST"}}`)
}

// Dynatrace event types of the phases: a problem (the first report about a
// Thing opens an Event, later ones refresh it) and an info event (created
// and closed at once).
const (
	dtProblem = "ERROR_EVENT"
	dtInfo    = "CUSTOM_INFO"
)

// dtSelector is how a Dynatrace phase names the Thing of a report.
type dtSelector int

const (
	selEntityID   dtSelector = iota // entityId("<thing id>")
	selEntityName                   // type(HOST),entityName.equals(host-<i>)
)

func (s dtSelector) String() string {
	if s == selEntityName {
		return "type(HOST),entityName.equals(host-<i>)"
	}
	return `entityId("<thing id>")`
}

// appendSelector appends the selector of Thing i (id) as a JSON string's
// content.
func appendSelector(dst []byte, s dtSelector, i int, id string) []byte {
	if s == selEntityName {
		dst = append(dst, "type(HOST),entityName.equals(host-"...)
		dst = strconv.AppendInt(dst, int64(i), 10)
		return append(dst, ')')
	}
	dst = append(dst, `entityId(\"`...)
	dst = append(dst, id...)
	return append(dst, `\")`...)
}

// dtBody appends a Dynatrace EventIngest body about Thing i (id) to dst:
// the title is fixed per phase, so a problem report about a Thing that
// already has one open refreshes it; seq changes with every report.
func dtBody(dst []byte, eventType, title string, s dtSelector, i int, id string, seq uint64) []byte {
	dst = append(dst, `{"eventType":"`...)
	dst = append(dst, eventType...)
	dst = append(dst, `","title":"`...)
	dst = append(dst, title...)
	dst = append(dst, `","entitySelector":"`...)
	dst = appendSelector(dst, s, i, id)
	dst = append(dst, `","properties":{"source":"pushgo-bench","seq":"`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `"}}`...)
	return dst
}

// amGroup is one Alertmanager alert group a sender re-sends: its alerts'
// fingerprints (distinct across every group of a run) and the body last
// sent, which an unchanged repeat sends again byte for byte.
type amGroup struct {
	name     string
	fps      []string
	startsAt string
	rev      int    // the revision in the last body's description annotations
	last     []byte // the last body sent
}

// newAMGroup makes group g of sender w: n alerts, fingerprints derived from
// seed, w and g.
func newAMGroup(seed uint64, w, g, n int) *amGroup {
	grp := &amGroup{
		name:     "w" + strconv.Itoa(w) + "g" + strconv.Itoa(g),
		fps:      make([]string, n),
		startsAt: time.Now().UTC().Format(time.RFC3339Nano),
	}
	for a := range grp.fps {
		h := splitmix(seed ^ uint64(w)<<40 ^ uint64(g)<<24 ^ uint64(a))
		grp.fps[a] = strconv.FormatUint(h|1<<63, 16) // always 16 hex digits
	}
	return grp
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// amPayload appends the group's webhook body at revision rev: every alert
// firing, its description annotation naming rev (so a new revision changes
// an annotation of every alert, and a repeat of one revision changes
// nothing).
func (g *amGroup) amPayload(dst []byte, rev int) []byte {
	dst = append(dst, `{"receiver":"pushgo","status":"firing","alerts":[`...)
	for a, fp := range g.fps {
		if a > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"status":"firing","labels":{"alertname":"HostHighCPU","group":"`...)
		dst = append(dst, g.name...)
		dst = append(dst, `","instance":"host-`...)
		dst = strconv.AppendInt(dst, int64(a), 10)
		dst = append(dst, `:9100","job":"node","severity":"warning"},"annotations":{"summary":"CPU above 90% on host-`...)
		dst = strconv.AppendInt(dst, int64(a), 10)
		dst = append(dst, `","description":"revision `...)
		dst = strconv.AppendInt(dst, int64(rev), 10)
		dst = append(dst, `"},"startsAt":"`...)
		dst = append(dst, g.startsAt...)
		dst = append(dst, `","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus.bench:9090/graph?g0.expr=cpu_busy%3E0.9","fingerprint":"`...)
		dst = append(dst, fp...)
		dst = append(dst, `"}`...)
	}
	dst = append(dst, `],"groupLabels":{"alertname":"HostHighCPU","group":"`...)
	dst = append(dst, g.name...)
	dst = append(dst, `"},"commonLabels":{"alertname":"HostHighCPU","group":"`...)
	dst = append(dst, g.name...)
	dst = append(dst, `","job":"node","severity":"warning"},"commonAnnotations":{},"externalURL":"http://alertmanager.bench:9093","version":"4","groupKey":"{}:{alertname=\"HostHighCPU\",group=\"`...)
	dst = append(dst, g.name...)
	dst = append(dst, `\"}","truncatedAlerts":0}`...)
	return dst
}
