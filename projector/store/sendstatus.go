package store

import (
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
// fan-out reports).
func (b *Batch) PutOp(env *ops.Envelope) {
	raw, _ := json.Marshal(sendOp{EntityType: env.Op.Kind(), EntityID: env.EntityID, AcceptedAt: env.AcceptedAt})
	_ = b.b.Set(opKey(env.ChannelID, env.OpID), raw, nil)
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

// SendStatus returns the status of an operation, or nil if the gateway
// knows nothing of it.
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
		return &delivery.SendStatus{OpID: opID, Status: delivery.StatusOf(c.Expanded, counts), EntityType: c.EntityType,
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
	return &delivery.SendStatus{OpID: opID, Status: delivery.StatusAccepted, EntityType: o.EntityType, EntityID: o.EntityID,
		AcceptedAt: o.AcceptedAt, UpdatedAt: o.AcceptedAt}, nil
}
