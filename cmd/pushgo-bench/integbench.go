package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/pushgo/gateway/internal/gateway"
)

// The integrations phases (-phases integrations): the monitoring
// integrations' ingest rate and latency against the gateway's own write
// rate, in one gateway (the whole binary in-process, gateway.Defaults(),
// 127.0.0.1 only):
//
//   - set-up (not measured): a channel, an events.ingest token, and
//     -integ-things Things of type HOST titled host-<i>, created over HTTP;
//     then the projector catches up (the selectors read the projection);
//   - baseline: POST /event/create, -concurrency clients, closed loop;
//   - Dynatrace POST /api/v2/events/ingest with entityId("<thing id>") of a
//     random Thing: ERROR_EVENT (a problem: the first report about a Thing
//     opens an Event, later ones refresh it), then CUSTOM_INFO (an info
//     event: created and closed, two appends), then ERROR_EVENT with
//     type(HOST),entityName.equals(host-<i>) of a random i;
//   - Alertmanager POST /integrations/alertmanager: -am-alerts alerts per
//     payload, -am-clients senders, each re-sending its groups: every other
//     payload repeats the previous one byte for byte (the "unchanged
//     repeat" path), the others change the description annotation of every
//     alert (the first send of a group opens its Events).
//
// Any answer other than 2xx is a failed operation, and so is a 2xx that
// did not do what was asked (a Dynatrace answer without exactly one OK
// report: a selector that picked nothing measures nothing).

func init() { registerPhase(40, func() phase { return &integPhase{} }) }

// integPhase is the integrations phases' flags, with the common options.
type integPhase struct {
	*options
	integThings   int // Things created before the Dynatrace phases
	amAlerts      int // alerts per Alertmanager payload
	amClients     int // concurrent Alertmanager senders
	integProfile  string
	integTrace    string
	integHeap     string        // heap profile after the rows
	dtRatioBudget float64       // Dynatrace reports/s over the /event/create rate
	dtP99Budget   time.Duration // Dynatrace request p99
	amP99Budget   time.Duration // Alertmanager payload p99
}

func (*integPhase) name() string { return "integrations" }
func (*integPhase) about() string {
	return "Dynatrace ingest and Alertmanager webhooks against the /event/create rate"
}

func (p *integPhase) flags(fs *flagSet) {
	fs.IntVar(&p.integThings, "integ-things", 100_000, "integrations phases: Things (type HOST, titled host-<i>) created before the Dynatrace phases")
	fs.IntVar(&p.amAlerts, "am-alerts", 100, "integrations phases: alerts per Alertmanager payload")
	fs.IntVar(&p.amClients, "am-clients", 1, "integrations phases: concurrent Alertmanager senders (at most -concurrency)")
	fs.StringVar(&p.integProfile, "integprofile", "", "write a CPU profile of the first run of each integrations phase to this file, the phase inserted before the extension (x.prof: x-base.prof, x-dt-id.prof, x-dt-info.prof, x-dt-name.prof, x-am.prof)")
	fs.StringVar(&p.integTrace, "integtrace", "", "write an execution trace (runtime/trace) of the first run of each integrations phase to this file, the phase inserted before the extension as with -integprofile: what the process did while a row's slow requests waited")
	fs.StringVar(&p.integHeap, "integheapprofile", "", "write a heap profile of the benchmark's process (the gateway's, its embedded broker's) to this file after the integrations rows, after a collection: what is live, which every collection marks")
	fs.quick("integ-things", "20000")
}

func (p *integPhase) setup(o *options) error {
	p.options = o
	switch {
	case p.integThings < 1 || p.amAlerts < 1 || p.amClients < 1:
		return errors.New("-integ-things, -am-alerts and -am-clients must be at least 1")
	case p.target != "all":
		return errors.New("-phases integrations needs -target all (the Dynatrace selectors read the projection)")
	}
	p.amClients = min(p.amClients, p.concurrency)
	if err := distinctOutputs(map[string]string{"-integprofile": p.integProfile, "-integtrace": p.integTrace, "-integheapprofile": p.integHeap}); err != nil {
		return err
	}
	// Issue 14 raised the ratio's budget from 0.5 to 0.6.
	p.dtRatioBudget, p.dtP99Budget, p.amP99Budget = 0.6, 30*time.Millisecond, 50*time.Millisecond
	return nil
}

func (p *integPhase) run(ctx context.Context) (table, error) {
	rep, err := benchIntegrations(ctx, p)
	return &rep, err
}

// integReport is what the integrations phases measured (medians over -runs).
type integReport struct {
	o        *integPhase
	things   int
	setup    time.Duration // Things created
	caughtUp time.Duration // the projector's catch-up after the set-up
	base     result        // /event/create
	dtID     result        // ERROR_EVENT, entityId
	dtInfo   result        // CUSTOM_INFO, entityId
	dtName   result        // ERROR_EVENT, type(HOST),entityName.equals
	am       result        // Alertmanager payloads
	// Alertmanager outcomes over every run, warm-up included.
	amOpened, amUpdated, amUnchanged, amOther int64
	// baseShares, idShares and nameShares are where round 1 of the
	// baseline and of the two budgeted Dynatrace rows spent their CPU
	// (with -integprofile; nil without, or when a profile could not be
	// read): rounds' first.
	baseShares, idShares, nameShares *cpuShares
	// rounds are those three rows round by round (keys "base", "dt-id",
	// "dt-name"), each round's result with its profile's shares when it
	// was profiled (-integprofile with -profile-every-run): what bounds
	// the median ratio itself rather than round 1 (dtRoundsLine).
	rounds map[string][]profiledResult
}

// profiledResult is one round of a row: its result, and where its CPU went
// (nil: not profiled, or the profile could not be read).
type profiledResult struct {
	res    result
	shares *cpuShares
}

// integSetupLimit bounds the set-up: a minute plus 2 ms per Thing.
func (o *integPhase) integSetupLimit() time.Duration {
	return time.Minute + time.Duration(o.integThings)*2*time.Millisecond
}

// limit: the set-up and its catch-up; per run, five phases, each with its
// catch-up; room for start-up and shutdown.
func (o *integPhase) limit() time.Duration {
	perRun := 5 * (o.warmup + o.duration + opTimeout + settleLimit)
	return o.integSetupLimit() + settleLimit + time.Duration(o.runs)*perRun + 2*time.Minute
}

// integEnv is the gateway of the integrations phases and its fixtures.
type integEnv struct {
	t      *target
	token  string
	header string // the Authorization header line of the light client
	hosts  []string
	am     []*amSender     // per Alertmanager sender (worker id)
	amOuts [4]atomic.Int64 // opened, updated, unchanged, other
}

// amSender is one Alertmanager sender's groups and position.
type amSender struct {
	groups []*amGroup
	n      int
}

// amGroupsPerSender is how many groups each sender cycles through.
const amGroupsPerSender = 4

func benchIntegrations(ctx context.Context, o *integPhase) (rep integReport, err error) {
	rep.o = o
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fmt.Fprintf(os.Stderr, "== integrations phases: %d Things; Dynatrace and /event/create with %d clients, Alertmanager %d-alert payloads with %d\n",
		o.integThings, o.concurrency, o.amAlerts, o.amClients)
	t, err := startGateway(ctx, o.options, syncMode{sync: gateway.Defaults().Sync}, log)
	if err != nil {
		return rep, err
	}
	defer t.close()
	e := &integEnv{t: t}
	if err := e.setup(ctx, o, &rep); err != nil {
		return rep, fmt.Errorf("set-up: %w", err)
	}

	// The rows run in rounds (each row once per round, -runs rounds): the
	// store grows by every report, so measuring the /event/create baseline's
	// runs first would divide the Dynatrace rows, measured on a bigger
	// store, by a baseline measured on the smallest. Each run is in a load
	// process; round 0 is profiled when -integprofile is set.
	am := e.spec(opAlertmanager)
	am.AMAlerts, am.AMSeed = o.amAlerts, uint64(time.Now().UnixNano())
	rows := []struct {
		name, key string
		workers   int
		spec      loadSpec
		out       *result
	}{
		{"/event/create", "base", o.concurrency, e.spec(opEventCreate), &rep.base},
		{"dt entityId ERROR", "dt-id", o.concurrency, e.dtSpec(dtProblem, "bench problem by id", selEntityID), &rep.dtID},
		{"dt entityId INFO", "dt-info", o.concurrency, e.dtSpec(dtInfo, "bench info by id", selEntityID), &rep.dtInfo},
		{"dt entityName ERROR", "dt-name", o.concurrency, e.dtSpec(dtProblem, "bench problem by name", selEntityName), &rep.dtName},
		{fmt.Sprintf("alertmanager x%d", o.amAlerts), "am", o.amClients, am, &rep.am},
	}
	profiledRows := map[string]bool{"base": true, "dt-id": true, "dt-name": true}
	rep.rounds = map[string][]profiledResult{}
	names := make([]string, len(rows))
	for i, r := range rows {
		names[i] = r.name
	}
	medians, err := rounds(ctx, o.options, names, func(i, run int) (result, error) {
		row := rows[i]
		stop, err := profileRun(run, profilePath(o.integProfile, row.key), row.name)
		if err != nil {
			return result{}, err
		}
		stopTrace, err := traceRun(run, profilePath(o.integTrace, row.key), row.name)
		if err != nil {
			stop()
			return result{}, err
		}
		spec := row.spec
		if spec.Op == opAlertmanager {
			// Each run's senders have groups of their own (a load
			// process starts from revision 0), opened by its first
			// payloads.
			spec.AMSeed = splitmix(spec.AMSeed + uint64(run))
		}
		reps, cpu, err := runLoads(ctx, nil, spec.closed(row.workers, o.warmup, o.duration))
		stopTrace()
		stop()
		if err != nil {
			return result{}, err
		}
		for i, n := range reps[0].AMOuts {
			e.amOuts[i].Add(n)
		}
		r := reps[0].result(cpu)
		r.note = t.settleNote(ctx)
		if profiledRows[row.key] {
			pr := profiledResult{res: r}
			if o.integProfile != "" && (run == 0 || profileEveryRun) {
				pr.shares = sharesOf(runProfilePath(profilePath(o.integProfile, row.key), run))
			}
			rep.rounds[row.key] = append(rep.rounds[row.key], pr)
		}
		return r, nil
	})
	if err != nil {
		return rep, err
	}
	for i, r := range rows {
		*r.out = medians[i]
	}
	// Round 1's shares, read with each round's result above.
	firstShares := func(key string) *cpuShares {
		if runs := rep.rounds[key]; len(runs) > 0 {
			return runs[0].shares
		}
		return nil
	}
	rep.baseShares, rep.idShares, rep.nameShares = firstShares("base"), firstShares("dt-id"), firstShares("dt-name")
	if o.integHeap != "" {
		if err := writeHeapProfile(o.integHeap); err != nil {
			return rep, err
		}
	}
	rep.amOpened, rep.amUpdated, rep.amUnchanged, rep.amOther = e.amOuts[0].Load(), e.amOuts[1].Load(), e.amOuts[2].Load(), e.amOuts[3].Load()
	return rep, nil
}

// spec is a load process's work on the integrations' gateway: op with the
// token.
func (e *integEnv) spec(op string) loadSpec {
	s := e.t.spec(op)
	s.Token = e.token
	return s
}

// dtSpec is a Dynatrace phase's work: reports of eventType about a random
// Thing of the set-up, named by sel.
func (e *integEnv) dtSpec(eventType, title string, sel dtSelector) loadSpec {
	s := e.spec(opDynatrace)
	s.Hosts, s.DTType, s.DTTitle, s.DTSel = e.hosts, eventType, title, sel
	return s
}

// newAMSenders makes the groups of each of n Alertmanager senders.
func newAMSenders(seed uint64, n, alerts int) []*amSender {
	out := make([]*amSender, n)
	for w := range out {
		s := &amSender{}
		for g := range amGroupsPerSender {
			s.groups = append(s.groups, newAMGroup(seed, w, g, alerts))
		}
		out[w] = s
	}
	return out
}

// setup creates the token and the Things, and waits for the projector.
func (e *integEnv) setup(ctx context.Context, o *integPhase, rep *integReport) error {
	sctx, cancel := context.WithTimeout(ctx, o.integSetupLimit())
	defer cancel()
	t := e.t
	b, err := post(sctx, t.client, t.base+"/channel/token/create", []byte(`{"channel_id":"`+t.bodies.channelID+
		`","password":"`+t.bodies.password+`","name":"pushgo-bench","scopes":["events.ingest"]}`), true)
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	if e.token, err = dataField(b, "token"); err != nil {
		return err
	}
	e.header = "Authorization: Api-Token " + e.token + "\r\n"

	began := time.Now()
	if e.hosts, err = t.create(sctx, o.integThings, o.concurrency, "/thing/create", "thing_id", t.bodies.hostCreate); err != nil {
		return err
	}
	rep.things, rep.setup = len(e.hosts), time.Since(began)
	backlog, took, compacting, ok := t.settle(sctx)
	rep.caughtUp = took
	fmt.Fprintf(os.Stderr, "  set-up (not measured): channel, token, %d Things created over HTTP with %d clients in %s (%.0f/s); projector backlog %d ops, caught up in %s, store compactions ended %s later\n",
		rep.things, min(o.concurrency, o.integThings), rep.setup.Round(time.Millisecond), float64(rep.things)/rep.setup.Seconds(),
		backlog, took.Round(10*time.Millisecond), compacting.Round(10*time.Millisecond))
	if !ok {
		return fmt.Errorf("the projector did not catch up with the set-up within %s", settleLimit)
	}
	return sctx.Err()
}

// send posts body to path with the token, through the client -client
// chose, on worker w's connection, and returns the status and the body
// (valid until w's next call).
func (e *integEnv) send(ctx context.Context, w *worker, path string, body []byte) (int, []byte, error) {
	if e.t.lightLoad {
		r, err := e.t.light.conn(w.id).exchange(ctx, "POST", path, e.header, body)
		return r.status, r.body, err
	}
	return exchange(ctx, e.t.client, e.t.base+path, "Api-Token "+e.token, body)
}

// eventCreate is the baseline: a new Event per request (bodies.go).
func (e *integEnv) eventCreate(ctx context.Context, w *worker) error {
	_, err := e.t.call(ctx, e.t.light, w, "/event/create", e.t.bodies.eventCreate(int(w.n), time.Now().UnixMilli()))
	return err
}

// dynatrace is one Dynatrace report about a random Thing per request; it
// succeeds on a 201 with exactly one OK result.
func (e *integEnv) dynatrace(eventType, title string, sel dtSelector) opFunc {
	const path = "/api/v2/events/ingest"
	return func(ctx context.Context, w *worker) error {
		i := w.rng.IntN(len(e.hosts))
		w.buf = dtBody(w.buf[:0], eventType, title, sel, i, e.hosts[i], w.n)
		status, b, err := e.send(ctx, w, path, w.buf)
		if err != nil {
			return err
		}
		if status < 200 || status > 299 {
			return fmt.Errorf("%s %d %s", path, status, dtErrorMessage(b))
		}
		var ans struct {
			ReportCount        int `json:"reportCount"`
			EventIngestResults []struct {
				Status string `json:"status"`
			} `json:"eventIngestResults"`
		}
		if err := json.Unmarshal(b, &ans); err != nil {
			return fmt.Errorf("%s %d: answer not EventIngestResults: %q", path, status, truncate(b))
		}
		if ans.ReportCount != 1 || len(ans.EventIngestResults) != 1 || ans.EventIngestResults[0].Status != "OK" {
			return fmt.Errorf("%s %d but not one OK report (the selector must pick exactly one Thing): %s", path, status, truncate(b))
		}
		return nil
	}
}

// dtErrorMessage is Dynatrace's error envelope's message, for the report.
func dtErrorMessage(b []byte) string {
	var env struct {
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &env) != nil || env.Error == nil {
		return fmt.Sprintf("non-envelope body %q", truncate(b))
	}
	return env.Error.Message
}

// alertmanager sends worker w's next payload: its groups in turn, each
// sent at a new revision (an annotation of every alert changed; the
// first time, the group's Events opened) and then repeated unchanged. It
// succeeds on a 200 with the success envelope covering every alert.
func (e *integEnv) alertmanager(ctx context.Context, w *worker) error {
	const path = "/integrations/alertmanager"
	s := e.am[w.id]
	g := s.groups[(s.n/2)%len(s.groups)]
	if s.n%2 == 0 {
		g.rev++
		g.last = g.amPayload(g.last[:0], g.rev)
	}
	s.n++
	status, b, err := e.send(ctx, w, path, g.last)
	if err != nil {
		return err
	}
	if status < 200 || status > 299 {
		return fmt.Errorf("%s %d %s", path, status, errorCode(b))
	}
	var env struct {
		Success bool `json:"success"`
		Data    struct {
			Alerts    int `json:"alerts"`
			Opened    int `json:"opened"`
			Updated   int `json:"updated"`
			Unchanged int `json:"unchanged"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil || !env.Success || env.Data.Alerts != len(g.fps) {
		return fmt.Errorf("%s %d: not a success envelope for %d alerts: %q", path, status, len(g.fps), truncate(b))
	}
	d := env.Data
	e.amOuts[0].Add(int64(d.Opened))
	e.amOuts[1].Add(int64(d.Updated))
	e.amOuts[2].Add(int64(d.Unchanged))
	e.amOuts[3].Add(int64(d.Alerts - d.Opened - d.Updated - d.Unchanged))
	return nil
}
