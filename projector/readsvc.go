package projector

import (
	"context"
	"errors"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/nats-io/nats.go"

	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/apierr"
	"github.com/pushgo/gateway/schemas/entityselector"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
)

// onRead answers one read request. NATS calls subscription handlers one at
// a time, so each read runs on its own goroutine, bounded by the reads
// semaphore; a full semaphore makes the request wait, not fail.
func (p *Projector) onRead(m *nats.Msg) {
	p.reads <- struct{}{}
	p.wg.Add(1)
	go func() {
		defer func() { <-p.reads; p.wg.Done() }()
		resp := p.serve(m.Data)
		b, err := json.Marshal(resp)
		if err != nil {
			b, _ = json.Marshal(reads.Response{ErrorCode: apierr.InternalError, Error: "encode response"})
		}
		_ = m.Respond(b)
		p.served.Add(1)
	}()
}

func (p *Projector) serve(data []byte) reads.Response {
	var req reads.Request
	if err := json.Unmarshal(data, &req); err != nil {
		return fail(apierr.Fieldf(apierr.InvalidJSONData, "request", "%v", err))
	}
	if req.MinSeq > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.ReadWait)
		err := p.WaitApplied(ctx, req.MinSeq)
		cancel()
		if err != nil {
			e := apierr.New(apierr.ProjectionLagging)
			if !errors.Is(err, context.DeadlineExceeded) {
				e = apierr.New(apierr.ReadUnavailable)
			}
			return fail(e)
		}
	}
	data, aerr := p.answer(&req)
	if aerr != nil {
		return fail(aerr)
	}
	return reads.Response{Data: data}
}

// Read answers a validated read directly (the same as over NATS).
func (p *Projector) Read(req *reads.Request) (jsontext.Value, *apierr.Error) { return p.answer(req) }

func (p *Projector) answer(req *reads.Request) (jsontext.Value, *apierr.Error) {
	switch req.Route {
	case reads.ProjectorStatus:
		st := reads.Status{Applied: p.Applied(), Lag: p.Lag()}
		if err := p.Err(); err != nil {
			st.Error = err.Error()
		}
		return encode(st)
	case reads.SendStatus:
		return p.sendStatus(req.ChannelID, req.OpID)
	case reads.ThingGet:
		return p.snapshot(ops.KindThing, req.ChannelID, req.ThingID, apierr.ThingNotFound, "thing_id")
	case reads.EventGet:
		return p.snapshot(ops.KindEvent, req.ChannelID, req.EventID, apierr.EventNotFound, "event_id")
	case reads.ChannelThings, reads.ChannelEvents:
		kind := ops.KindThing
		if req.Route == reads.ChannelEvents {
			kind = ops.KindEvent
		}
		page, err := p.store.List(store.ListFilter{Kind: kind, ChannelID: req.ChannelID, State: req.State,
			ThingID: req.ThingID, Cursor: req.Cursor, Limit: limitOf(req.Limit)})
		if err != nil {
			return nil, p.storeErr(err)
		}
		return encode(reads.ListData{Items: values(page.Items), NextCursor: page.Cursor, HasMore: page.Cursor != ""})
	case reads.DeadlinesDue:
		due, err := p.store.DueDeadlines(req.Before, limitOf(req.Limit))
		if err != nil {
			return nil, p.storeErr(err)
		}
		return encode(reads.DueData{Items: due})
	case reads.ThingsSelect:
		sel, perr := entityselector.Parse(req.Selector)
		if perr != nil {
			return nil, apierr.Fieldf(apierr.InvalidEntitySelector, "entitySelector", "%s", perr.Message)
		}
		res, err := p.store.SelectThings(req.ChannelID, sel, reads.MaxSelected)
		if err != nil {
			return nil, p.storeErr(err)
		}
		return encode(reads.SelectData{ThingIDs: res.ThingIDs, UnknownTypes: res.UnknownTypes, TooMany: res.TooMany})
	case reads.ChannelHistory:
		var kinds map[ops.Kind]bool
		if len(req.Kinds) > 0 {
			kinds = map[ops.Kind]bool{}
			for _, k := range req.Kinds {
				kinds[k] = true
			}
		}
		page, err := p.store.History(req.ChannelID, req.After, limitOf(req.Limit), kinds)
		if err != nil {
			return nil, p.storeErr(err)
		}
		return encode(reads.HistoryData{Items: values(page.Items), NextAfter: page.NextAfter, HasMore: page.HasMore, FirstSeq: page.FirstSeq})
	}
	return nil, apierr.New(apierr.RouteNotFound)
}

// sendStatus answers /send_status/{op_id}: the operation of channelID
// with op_id opID, or with channelID "" the one operation of any channel
// with that op_id (as PushGo, which keys send status by op_id alone). Two
// channels may have used one op_id (op_ids are unique per channel): then
// the answer is 409 op_id_ambiguous, and the sender adds channel_id.
func (p *Projector) sendStatus(channelID, opID string) (jsontext.Value, *apierr.Error) {
	if channelID == "" {
		chs, err := p.store.OpChannels(opID, 2)
		if err != nil {
			return nil, p.storeErr(err)
		}
		switch len(chs) {
		case 0:
			return nil, apierr.Field(apierr.OpNotFound, "op_id")
		case 1:
			channelID = chs[0]
		default:
			return nil, apierr.Field(apierr.OpIDAmbiguous, "op_id")
		}
	}
	st, err := p.store.SendStatus(channelID, opID)
	if err != nil {
		return nil, p.storeErr(err)
	}
	if st == nil {
		return nil, apierr.Field(apierr.OpNotFound, "op_id")
	}
	if r := p.retention.Load(); r > 0 {
		st.ExpiresAt = st.AcceptedAt + r
	}
	return encode(st)
}

func (p *Projector) snapshot(kind ops.Kind, channelID, id string, notFound apierr.Code, field string) (jsontext.Value, *apierr.Error) {
	b, err := p.store.Snapshot(kind, channelID, id)
	if err != nil {
		return nil, p.storeErr(err)
	}
	if b == nil {
		return nil, apierr.Field(notFound, field)
	}
	return b, nil
}

func (p *Projector) storeErr(err error) *apierr.Error {
	p.log.Error("projector: store read failed", "err", err)
	return apierr.New(apierr.InternalError)
}

func limitOf(l int) int {
	if l <= 0 {
		return reads.DefaultLimit
	}
	return min(l, reads.MaxLimit)
}

func values(items [][]byte) []jsontext.Value {
	out := make([]jsontext.Value, len(items))
	for i, it := range items {
		out[i] = it
	}
	return out
}

func encode(v any) (jsontext.Value, *apierr.Error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, apierr.New(apierr.InternalError)
	}
	return b, nil
}

func fail(e *apierr.Error) reads.Response {
	return reads.Response{ErrorCode: e.Code, Error: e.Detail}
}
