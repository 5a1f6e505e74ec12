package projector_test

import (
	"fmt"
	"testing"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/projector"
	"github.com/pushgo/gateway/projector/store"
	"github.com/pushgo/gateway/schemas/ops"
)

// BenchmarkFold measures the fold alone (no broker): decode, apply, batch,
// commit, over 10,000 entities with ~400-byte operations.
func BenchmarkFold(b *testing.B) {
	const entities = 10_000
	envs := make([][]byte, 0, 50_000)
	for i := range cap(envs) {
		id := fmt.Sprintf("e%05d", i%entities)
		var env ops.Envelope
		var payload any
		if i%2 == 0 {
			op := ops.EventUpdate
			if i < entities {
				op = ops.EventCreate
			}
			env = ops.Envelope{Op: op, EntityID: id}
			payload = ops.EventPayload{EventID: id, Title: "deploy", Status: "running", Message: "step " + fmt.Sprint(i), Severity: "normal",
				EventTime: 1713750000000 + int64(i), Description: "a description padding the operation to about four hundred bytes in total",
				Attrs: []byte(fmt.Sprintf(`{"progress":%d,"host":"web-%d","net":{"rx":%d,"tx":%d}}`, i%100, i%7, i, i))}
		} else {
			op := ops.ThingUpdate
			if i < entities {
				op = ops.ThingCreate
			}
			env = ops.Envelope{Op: op, EntityID: id}
			payload = ops.ThingPayload{ThingID: id, Title: "server", ObservedAt: 1713750000000 + int64(i),
				Description: "a description padding the operation to about four hundred bytes in total",
				Attrs:       []byte(fmt.Sprintf(`{"cpu":%d,"mem":%d,"disk":{"used":%d,"free":%d}}`, i%100, i%64, i, i))}
		}
		env.V, env.ChannelID, env.OpID, env.AcceptedAt, env.BodyHash = 1, "01ARZ3NDEKTSV4RRFFQ69G5FAV", fmt.Sprintf("op%d", i), 1713750000000+int64(i), "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		env.Payload, _ = json.Marshal(payload)
		raw, _ := json.Marshal(env)
		envs = append(envs, raw)
	}
	s, err := store.Open("", store.Options{InMemory: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.SetBytes(int64(len(envs[len(envs)-1])))
	b.ResetTimer()
	batch := s.NewBatch()
	for i := 0; i < b.N; i++ {
		raw := envs[i%len(envs)]
		var env ops.Envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			b.Fatal(err)
		}
		if err := projector.Fold(batch, &env, raw, uint64(i+1)); err != nil {
			b.Fatal(err)
		}
		if batch.Len() == 1000 {
			if err := batch.Commit(uint64(i + 1)); err != nil {
				b.Fatal(err)
			}
			batch = s.NewBatch()
		}
	}
	_ = batch.Commit(uint64(b.N))
}
