package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/schemas/delivery"
	"github.com/pushgo/gateway/schemas/ops"
)

// TestSendStatusGolden runs testdata/sendstatus, in the block format of
// TestSelectGolden:
//
//	ops           input: "<seq> <envelope JSON>" per line, folded as the
//	              ops fold does (AppendHistory, PutOp); no output
//	receipts [each]
//	              input: one delivery.Receipt as JSON per line, folded in one
//	              batch (with each: one batch per receipt); no output
//	status        input: "<channel> <op_id>" per line; output: its
//	              /send_status, one line each
//	prune first=<seq>
//	              Prune(first); output: the history items and receipt records pruned
//	keys          output: the send-status keys (O, x, d, s) and values
//
// Run with -update to rewrite the outputs.
func TestSendStatusGolden(t *testing.T) {
	const path = "testdata/sendstatus"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := open(t)
	var cursor uint64 // the receipts' stream sequence
	var rewritten bytes.Buffer
	for _, b := range parseBlocks(t, string(raw)) {
		var got string
		switch b.cmd {
		case "ops":
			batch := s.NewBatch()
			var last uint64
			for _, l := range b.input {
				seqText, envText, _ := strings.Cut(l, " ")
				seq, err := strconv.ParseUint(seqText, 10, 64)
				if err != nil {
					t.Fatalf("line %d: seq %q: %v", b.line, seqText, err)
				}
				var env ops.Envelope
				if err := json.Unmarshal([]byte(envText), &env); err != nil {
					t.Fatalf("line %d: envelope %s: %v", b.line, envText, err)
				}
				batch.AppendHistory(&env, []byte(envText), seq) // as the fold: history and op_id index
				batch.PutOp(&env, seq)
				last = seq
			}
			if err := batch.Commit(last); err != nil {
				t.Fatal(err)
			}
		case "receipts":
			_, each := b.args()["each"]
			batch := s.NewBatch()
			for _, l := range b.input {
				var r delivery.Receipt
				if err := json.Unmarshal([]byte(l), &r); err != nil {
					t.Fatalf("line %d: receipt %s: %v", b.line, l, err)
				}
				if err := batch.ApplyReceipt(&r); err != nil {
					t.Fatalf("line %d: %v", b.line, err)
				}
				batch.Count()
				cursor++
				if each {
					if err := batch.CommitReceipts(cursor); err != nil {
						t.Fatal(err)
					}
					batch = s.NewBatch()
				}
			}
			if err := batch.CommitReceipts(cursor); err != nil {
				t.Fatal(err)
			}
		case "status":
			var out []string
			for _, l := range b.input {
				channel, opID, _ := strings.Cut(l, " ")
				out = append(out, statusLine(t, s, channel, opID))
			}
			got = strings.Join(out, "\n")
		case "prune":
			first, err := strconv.ParseUint(b.args()["first"], 10, 64)
			if err != nil {
				t.Fatalf("line %d: first: %v", b.line, err)
			}
			h, n, err := s.Prune(first)
			if err != nil {
				t.Fatal(err)
			}
			got = fmt.Sprintf("pruned %d history items, %d receipt records", h, n)
		case "keys":
			got = sendStatusKeys(t, s)
		default:
			t.Fatalf("line %d: unknown command %q", b.line, b.cmd)
		}
		if *update {
			b.output = got
		} else if got != b.output {
			t.Errorf("line %d: %s\n%s\n got:\n%s\nwant:\n%s", b.line, b.cmdLine, strings.Join(b.input, "\n"), got, b.output)
		}
		rewritten.WriteString(b.String())
	}
	if *update {
		if err := os.WriteFile(path, bytes.TrimSuffix(rewritten.Bytes(), []byte("\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func statusLine(t *testing.T, s *Store, channel, opID string) string {
	t.Helper()
	st, err := s.SendStatus(channel, opID)
	if err != nil {
		t.Fatal(err)
	}
	if st == nil {
		return channel + " " + opID + ": not found"
	}
	if st.Model != st.EntityType {
		t.Fatalf("model %q, entity_type %q", st.Model, st.EntityType)
	}
	d := st.Deliveries
	return fmt.Sprintf("%s %s: %s sent=%d failed=%d pending=%d (%s %s, accepted_at=%d, updated_at=%d)",
		channel, st.OpID, st.Status, d.Sent, d.Failed, d.Pending, st.EntityType, st.EntityID, st.AcceptedAt, st.UpdatedAt)
}

// sendStatusKeys lists the send-status keys, components separated by
// " | ", sequences in decimal.
func sendStatusKeys(t *testing.T, s *Store) string {
	t.Helper()
	var out []string
	err := s.Dump(func(k, v []byte) error {
		var parts []string
		switch k[0] {
		case 'O':
			parts = strings.Split(string(k), "\x00")
			o, err := decodeSendOp(v)
			if err != nil {
				t.Fatalf("%q: %v", k, err)
			}
			v = fmt.Appendf(nil, "%s %s accepted_at=%d seq=%d", o.EntityType, o.EntityID, o.AcceptedAt, o.Seq)
		case 'x':
			parts = strings.Split(string(k), "\x00")
		case 'd', 's':
			parts = append([]string{string(k[:1]), strconv.FormatUint(binary.BigEndian.Uint64(k[2:10]), 10)},
				strings.Split(string(k[11:]), "\x00")...)
		default:
			return nil
		}
		if len(v) > 0 {
			parts = append(parts, string(v))
		}
		out = append(out, strings.Join(parts, " | "))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}
