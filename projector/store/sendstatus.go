package store

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
	"github.com/pushgo/gateway/schemas/reads"
)

// sendOp is what the ops fold records of an operation for /send_status
// and Op, in the op_id index: its kind byte (kindByte), accepted_at
// (varint), sequence (uvarint) and entity id.
type sendOp struct {
	EntityType ops.Kind
	EntityID   string
	AcceptedAt int64
	Seq        uint64
}

func appendSendOp(dst []byte, o sendOp) []byte {
	dst = append(dst, kindByte(o.EntityType))
	dst = binary.AppendVarint(dst, o.AcceptedAt)
	dst = binary.AppendUvarint(dst, o.Seq)
	return append(dst, o.EntityID...)
}

// decodeCounts decodes a stored send-status record (countsKey).
func decodeCounts(b []byte) (sendCounts, error) {
	var c sendCounts
	if err := json.Unmarshal(b, &c); err != nil {
		return sendCounts{}, fmt.Errorf("%w: send status: %v", ErrCorrupt, err)
	}
	return c, nil
}

func decodeSendOp(b []byte) (sendOp, error) {
	if len(b) < 3 {
		return sendOp{}, fmt.Errorf("%w: operation record of %d bytes", ErrCorrupt, len(b))
	}
	at, n := binary.Varint(b[1:])
	if n <= 0 {
		return sendOp{}, fmt.Errorf("%w: operation record: accepted_at", ErrCorrupt)
	}
	seq, m := binary.Uvarint(b[1+n:])
	if m <= 0 {
		return sendOp{}, fmt.Errorf("%w: operation record: sequence", ErrCorrupt)
	}
	return sendOp{EntityType: kindOf(b[0]), AcceptedAt: at, Seq: seq, EntityID: string(b[1+n+m:])}, nil
}

// Op returns the channel's operation with op_id opID (its latest, if the
// channel used the op_id twice) as reads.OpLookup answers it: Seq 0 when
// the index holds none.
func (s *Store) Op(channelID, opID string) (reads.OpData, error) {
	raw, err := s.get(opChannelKey(opID, channelID))
	if err != nil || raw == nil {
		return reads.OpData{}, err
	}
	o, err := decodeSendOp(raw)
	if err != nil {
		return reads.OpData{}, err
	}
	return reads.OpData{Seq: o.Seq, EntityType: o.EntityType, EntityID: o.EntityID}, nil
}

// sendCounts is the receipts fold's record of an operation. Its
// deliveries are the partitions' summaries plus the outcome receipts:
// those of an older pusher (one per delivery, after an "expanded" receipt
// with Tasks) and those of deliveries a partition handed to the retry
// queue (counted as retrying in its summary until then).
type sendCounts struct {
	// Seq is the operation's log sequence (0 in a record written before
	// it was kept): an op_id used again (on another route, or past the
	// duplicate window) starts a record of its own, and the earlier
	// operation's late receipts leave it alone.
	Seq        uint64          `json:"seq,omitzero"`
	EntityType ops.Kind        `json:"entity_type"`
	EntityID   string          `json:"entity_id"`
	AcceptedAt int64           `json:"accepted_at"`
	UpdatedAt  int64           `json:"updated_at"`
	Expanded   bool            `json:"expanded"`
	Tasks      int             `json:"tasks,omitzero"`
	Done       delivery.Counts `json:"done,omitzero"` // outcome receipts' Sent and Failed; Pending unused
	// Audience is the operation's audience as its summaries report it.
	Audience int `json:"audience,omitzero"`
	// Parts holds the latest summary of each partition that reported, in
	// partition order.
	Parts []partCounts `json:"parts,omitzero"`
}

// partCounts is one partition's share of an operation.
type partCounts struct {
	Partition int `json:"p,omitzero"`
	Sent      int `json:"s,omitzero"`
	Failed    int `json:"f,omitzero"`
	Retrying  int `json:"r,omitzero"`
}

// setPart records the summary of partition p, replacing an earlier one.
func (c *sendCounts) setPart(p partCounts) {
	i, found := slices.BinarySearchFunc(c.Parts, p.Partition, func(x partCounts, n int) int { return x.Partition - n })
	if found {
		c.Parts[i] = p
	} else {
		c.Parts = slices.Insert(c.Parts, i, p)
	}
}

// counts derives the deliveries: the partitions' and the outcomes' sent
// and failed, the rest of the audience pending.
//
// An outcome ends a delivery a summary counts as retrying. A partition
// re-run after a retry ended (a takeover before its floor moved) sends
// that device again itself and counts it in its new summary, which
// replaces the first: so once summaries are in, outcomes count only up to
// the deliveries they still report retrying, failures first (what a
// re-run reports is mostly its own sends). Counting them all made a
// failed delivery disappear behind the re-sent one (sent 2, failed 0 of
// an audience of 2 with one failure). The cap is by count, not by device:
// across partitions, or where a re-run's own send of a device whose retry
// failed succeeded, the split between sent and failed can be off by the
// deliveries concerned (their total is right).
func (c *sendCounts) counts() delivery.Counts {
	sent, failed := c.Done.Sent, c.Done.Failed
	if len(c.Parts) > 0 {
		retrying := 0
		for _, p := range c.Parts {
			retrying += p.Retrying
		}
		failed = min(failed, retrying)
		sent = min(sent, retrying-failed)
	}
	for _, p := range c.Parts {
		sent += p.Sent
		failed += p.Failed
	}
	total := max(c.Tasks, c.Audience)
	if c.Expanded {
		sent = min(sent, total)
		failed = min(failed, total-sent)
	}
	return delivery.Counts{Sent: sent, Failed: failed, Pending: max(0, total-sent-failed)}
}

// PutOp records an operation (at sequence seq of the log) for
// /send_status ("accepted" until the delivery reports) in the op_id
// index. The record is written at commit, in log order: an op_id a
// channel used twice (a client's, past the deduplication window) answers
// for its later operation.
func (b *Batch) PutOp(env *ops.Envelope, seq uint64) {
	b.ops = append(b.ops, opRecord{seq: seq, key: opChannelKey(env.OpID, env.ChannelID),
		value: appendSendOp(nil, sendOp{EntityType: env.Op.Kind(), EntityID: env.EntityID, AcceptedAt: env.AcceptedAt, Seq: seq})})
}

// ApplyReceipt folds one receipt. It is idempotent: a receipt recorded
// twice, an outcome reported twice for one delivery, or a partition's
// summary of an operation written twice counts once.
func (b *Batch) ApplyReceipt(r *delivery.Receipt) error {
	pruned := b.s.prunedBelow.Load()
	switch r.Kind {
	case delivery.KindSummary:
		for i := range r.Summaries {
			if r.Summaries[i].Seq < pruned {
				continue // its operation left the log, and its record with it
			}
			if err := b.applySummary(&r.Summaries[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if r.Seq < pruned {
		return nil
	}
	switch r.Kind {
	case delivery.KindOutcome:
		ok := outcomeKey(r.Seq, r.ChannelID, r.OpID, r.DeviceKey)
		if _, seen := b.outcomes[string(ok)]; seen {
			return nil
		}
		if raw, err := b.s.get(ok); err != nil {
			return err
		} else if raw != nil {
			return nil
		}
		b.outcomes[string(ok)] = struct{}{}
		_ = b.set(ok, []byte(r.Outcome))
	}
	c, current, err := b.countsOf(r.ChannelID, r.OpID, r.Seq)
	if err != nil || !current {
		return err
	}
	c.EntityType, c.EntityID, c.AcceptedAt = r.EntityType, r.EntityID, r.AcceptedAt
	c.UpdatedAt = max(c.UpdatedAt, r.At)
	switch r.Kind {
	case delivery.KindExpanded:
		c.Expanded, c.Tasks = true, r.Tasks
	case delivery.KindOutcome:
		if r.Outcome.Succeeded() {
			c.Done.Sent++
		} else {
			c.Done.Failed++
		}
	}
	return b.putCounts(r.Seq, r.ChannelID, r.OpID, c)
}

// applySummary folds one partition's summary of an operation: its counts
// replace the partition's earlier ones.
func (b *Batch) applySummary(s *delivery.Summary) error {
	c, current, err := b.countsOf(s.ChannelID, s.OpID, s.Seq)
	if err != nil || !current {
		return err
	}
	c.EntityType, c.EntityID, c.AcceptedAt = s.EntityType, s.EntityID, s.AcceptedAt
	c.UpdatedAt = max(c.UpdatedAt, s.At)
	c.Expanded, c.Audience = true, s.Audience
	c.setPart(partCounts{Partition: s.Partition, Sent: s.Sent, Failed: s.Failed, Retrying: s.Retrying})
	return b.putCounts(s.Seq, s.ChannelID, s.OpID, c)
}

// countsOf returns the record of (channelID, opID) for a receipt of the
// operation at seq: the stored one when it is that operation's (or has no
// sequence), a new one when it is an earlier operation's, and current
// false when it is a later operation's (the receipt changes nothing).
func (b *Batch) countsOf(channelID, opID string, seq uint64) (c sendCounts, current bool, err error) {
	if c, err = b.counts(channelID, opID); err != nil {
		return c, false, err
	}
	switch {
	case c.Seq > seq:
		return c, false, nil
	case c.Seq != 0 && c.Seq < seq:
		c = sendCounts{}
	}
	c.Seq = seq
	return c, true, nil
}

// counts returns the record of (channelID, opID): this batch's, else the
// store's, else a new one.
func (b *Batch) counts(channelID, opID string) (sendCounts, error) {
	ck := countsKey(channelID, opID)
	if v, ok := b.receipts[string(ck)]; ok {
		return v, nil
	}
	raw, err := b.s.get(ck)
	if err != nil || raw == nil {
		return sendCounts{}, err
	}
	c, err := decodeCounts(raw)
	if err != nil {
		return c, fmt.Errorf("%w (%q)", err, ck)
	}
	return c, nil
}

// putCounts writes the record of (channelID, opID), the operation at seq,
// and indexes it by seq for pruning.
func (b *Batch) putCounts(seq uint64, channelID, opID string, c sendCounts) error {
	ck := countsKey(channelID, opID)
	b.receipts[string(ck)] = c
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_ = b.set(sendSeqKey(seq, channelID, opID), nil)
	return b.set(ck, raw)
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
	var c sendCounts
	if raw != nil {
		if c, err = decodeCounts(raw); err != nil {
			return nil, err
		}
	}
	// The op_id's latest operation answers: its counts, or "accepted" while
	// the counts are an earlier operation's with the same op_id.
	rawOp, err := s.get(opChannelKey(opID, channelID))
	if err != nil {
		return nil, err
	}
	var o sendOp
	if rawOp != nil {
		if o, err = decodeSendOp(rawOp); err != nil {
			return nil, err
		}
	}
	if raw != nil && (rawOp == nil || c.Seq == 0 || c.Seq >= o.Seq) {
		counts := c.counts()
		return &delivery.SendStatus{OpID: opID, Status: delivery.StatusOf(c.Expanded, counts), Model: c.EntityType, EntityType: c.EntityType,
			EntityID: c.EntityID, AcceptedAt: c.AcceptedAt, UpdatedAt: c.UpdatedAt, Deliveries: counts}, nil
	}
	if rawOp == nil {
		return nil, nil
	}
	return &delivery.SendStatus{OpID: opID, Status: delivery.StatusAccepted, Model: o.EntityType, EntityType: o.EntityType, EntityID: o.EntityID,
		AcceptedAt: o.AcceptedAt, UpdatedAt: o.AcceptedAt}, nil
}

// pruneOpRecord deletes the op_id index record and the send status of
// (channelID, opID) as the log's operations below first go, unless the
// record is of a later operation: an op_id the channel used again (a
// sender's, past the duplicate window) answers for that one until it goes.
// The counts are kept too when they are a later operation's: the
// receipts fold, a consumer of its own, may record the later operation's
// receipts before the ops fold writes its op_id record.
// It MUST be called under applyMu (Prune's applyAfter): a record read
// before the fold committed the later one would delete it. A record that
// cannot be read is an error, the prune's (a corrupt one: the store is
// rebuilt): deleting it all the same could delete a later operation's.
func (s *Store) pruneOpRecord(b *pebble.Batch, channelID, opID string, first uint64) error {
	k := opChannelKey(opID, channelID)
	raw, err := s.get(k)
	if err != nil {
		return err
	}
	if raw != nil {
		o, err := decodeSendOp(raw)
		if err != nil {
			return err
		}
		if o.Seq >= first {
			return nil
		}
	}
	_ = b.Delete(k, nil)
	ck := countsKey(channelID, opID)
	if raw, err = s.get(ck); err != nil {
		return err
	}
	if raw != nil {
		c, err := decodeCounts(raw)
		if err != nil {
			return err
		}
		if c.Seq >= first {
			return nil
		}
	}
	_ = b.Delete(ck, nil)
	return nil
}

// sendStatus deletes the send status of the operations below first: their
// index keys and counts with their op_id records (commit), their outcomes
// by range, committing when it holds enough records.
func (p *pruner) sendStatus() (int, error) {
	it, err := p.s.db.NewIter(&pebble.IterOptions{LowerBound: sendSeqPrefix(0), UpperBound: sendSeqPrefix(p.first)})
	if err != nil {
		return 0, err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		channelID, opID, ok := parseSendSeqKey(it.Key())
		if !ok {
			_ = p.b.Delete(it.Key(), nil)
		} else {
			// Deleted with its counts (pruneOpRecords).
			p.recs.add(channelID, opID, slices.Clone(it.Key()))
		}
		n++
		if p.full() && len(it.Key()) >= 10 {
			// Outcome keys begin with their operation's sequence: one
			// range, up to the operation read last.
			_ = p.b.DeleteRange(outcomeSeqPrefix(0), outcomeSeqPrefix(binary.BigEndian.Uint64(it.Key()[2:10])+1), nil)
			if err := p.commit(); err != nil {
				_ = it.Close()
				return 0, err
			}
		}
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	if n > 0 {
		_ = p.b.DeleteRange(outcomeSeqPrefix(0), outcomeSeqPrefix(p.first), nil)
	}
	return n, nil
}

// parseSendSeqKey splits an s key (see keys.go).
func parseSendSeqKey(k []byte) (channelID, opID string, ok bool) {
	const head = 2 + 8 + 1 // "s\x00", seq, separator
	if len(k) < head {
		return "", "", false
	}
	rest := k[head:]
	for i, c := range rest {
		if c == sep {
			return string(rest[:i]), string(rest[i+1:]), true
		}
	}
	return "", "", false
}
