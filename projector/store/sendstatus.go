package store

import (
	"github.com/cockroachdb/pebble/v2"
	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
)

// sendOp is what the ops fold records of an operation for /send_status.
type sendOp struct {
	EntityType ops.Kind `json:"entity_type"`
	EntityID   string   `json:"entity_id"`
	AcceptedAt int64    `json:"accepted_at"`
}

// sendCounts is the receipts fold's record of an operation.
type sendCounts struct {
	EntityType ops.Kind        `json:"entity_type"`
	EntityID   string          `json:"entity_id"`
	AcceptedAt int64           `json:"accepted_at"`
	UpdatedAt  int64           `json:"updated_at"`
	Expanded   bool            `json:"expanded"`
	Tasks      int             `json:"tasks"`
	Done       delivery.Counts `json:"done"` // Sent and Failed; Pending unused
}

// PutOp records an operation for /send_status ("accepted" until the
// fan-out reports), and indexes its channel by op_id.
func (b *Batch) PutOp(env *ops.Envelope) {
	raw, _ := json.Marshal(sendOp{EntityType: env.Op.Kind(), EntityID: env.EntityID, AcceptedAt: env.AcceptedAt})
	_ = b.b.Set(opKey(env.ChannelID, env.OpID), raw, nil)
	_ = b.b.Set(opChannelKey(env.OpID, env.ChannelID), nil, nil)
}

// ApplyReceipt folds one receipt. It is idempotent: a receipt recorded
// twice, or an outcome reported twice for one delivery, counts once.
func (b *Batch) ApplyReceipt(r *delivery.Receipt) error {
	ck := countsKey(r.ChannelID, r.OpID)
	c := sendCounts{}
	if v, ok := b.receipts[string(ck)]; ok {
		c = v
	} else if raw, err := b.s.get(ck); err != nil {
		return err
	} else if raw != nil {
		if err := json.Unmarshal(raw, &c); err != nil {
			return err
		}
	}
	c.EntityType, c.EntityID, c.AcceptedAt = r.EntityType, r.EntityID, r.AcceptedAt
	c.UpdatedAt = max(c.UpdatedAt, r.At)
	switch r.Kind {
	case delivery.KindExpanded:
		c.Expanded, c.Tasks = true, r.Tasks
	case delivery.KindOutcome:
		ok := outcomeKey(r.ChannelID, r.OpID, r.DeviceKey)
		if _, seen := b.outcomes[string(ok)]; seen {
			return nil
		}
		if raw, err := b.s.get(ok); err != nil {
			return err
		} else if raw != nil {
			return nil
		}
		b.outcomes[string(ok)] = struct{}{}
		_ = b.b.Set(ok, []byte(r.Outcome), nil)
		if r.Outcome.Succeeded() {
			c.Done.Sent++
		} else {
			c.Done.Failed++
		}
	}
	b.receipts[string(ck)] = c
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return b.b.Set(ck, raw, nil)
}

// OpChannels returns the channels that have an operation with op_id opID,
// in id order, at most limit of them: op_ids are the sender's and unique
// per channel only, so more than one channel may have used one.
func (s *Store) OpChannels(opID string, limit int) ([]string, error) {
	prefix := key("O", opID, "")
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	for ok := it.First(); ok && len(out) < limit; ok = it.Next() {
		out = append(out, string(it.Key()[len(prefix):]))
	}
	return out, it.Error()
}

// SendStatus returns the status of an operation, or nil if the gateway
// knows nothing of it. ExpiresAt is left 0 (it depends on the log's
// retention, which the store does not know).
func (s *Store) SendStatus(channelID, opID string) (*delivery.SendStatus, error) {
	raw, err := s.get(countsKey(channelID, opID))
	if err != nil {
		return nil, err
	}
	if raw != nil {
		var c sendCounts
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, err
		}
		counts := delivery.Counts{Sent: c.Done.Sent, Failed: c.Done.Failed, Pending: max(0, c.Tasks-c.Done.Sent-c.Done.Failed)}
		return &delivery.SendStatus{OpID: opID, Status: delivery.StatusOf(c.Expanded, counts), Model: c.EntityType, EntityType: c.EntityType,
			EntityID: c.EntityID, AcceptedAt: c.AcceptedAt, UpdatedAt: c.UpdatedAt, Deliveries: counts}, nil
	}
	raw, err = s.get(opKey(channelID, opID))
	if err != nil || raw == nil {
		return nil, err
	}
	var o sendOp
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, err
	}
	return &delivery.SendStatus{OpID: opID, Status: delivery.StatusAccepted, Model: o.EntityType, EntityType: o.EntityType, EntityID: o.EntityID,
		AcceptedAt: o.AcceptedAt, UpdatedAt: o.AcceptedAt}, nil
}
