package store

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/entityselector"
	"github.com/pushgo/gateway/schemas/ops"
)

var update = flag.Bool("update", false, "rewrite testdata/select with the actual outputs")

// TestSelectGolden runs testdata/select: a sequence of blocks, each a
// command line, input lines, "----", and the expected output up to a blank
// line.
//
//	things [channel=<id>]   input: one fold.Thing as JSON per line (state
//	                        defaults to active), put over its previous
//	                        version; output: the channel's Y, N and L
//	                        entries, components separated by " | "
//	select [channel=<id>] [limit=<n>]
//	                        input: one selector; output: the selection and
//	                        its stats, or the parse error
//
// Run with -update to rewrite the outputs.
func TestSelectGolden(t *testing.T) {
	const path = "testdata/select"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := open(t)
	things := map[string]*fold.Thing{} // channel/thing id → last version put
	var rewritten bytes.Buffer
	blocks := parseBlocks(t, string(raw))
	for _, b := range blocks {
		var got string
		args := b.args()
		channel := args["channel"]
		if channel == "" {
			channel = ch
		}
		switch b.cmd {
		case "things":
			got = putThings(t, s, things, channel, b.input)
		case "select":
			limit := 0
			if l, ok := args["limit"]; ok {
				if limit, err = strconv.Atoi(l); err != nil {
					t.Fatalf("line %d: limit: %v", b.line, err)
				}
			}
			got = runSelect(t, s, channel, strings.Join(b.input, "\n"), limit)
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

type block struct {
	line     int
	comments []string // lines before the command
	cmdLine  string
	cmd      string
	input    []string
	output   string
}

func (b *block) args() map[string]string {
	out := map[string]string{}
	for _, f := range strings.Fields(b.cmdLine)[1:] {
		k, v, _ := strings.Cut(f, "=")
		out[k] = v
	}
	return out
}

func (b *block) String() string {
	var sb strings.Builder
	for _, c := range b.comments {
		sb.WriteString(c + "\n")
	}
	sb.WriteString(b.cmdLine + "\n")
	for _, in := range b.input {
		sb.WriteString(in + "\n")
	}
	sb.WriteString("----\n")
	if b.output != "" {
		sb.WriteString(b.output + "\n")
	}
	sb.WriteString("\n")
	return sb.String()
}

func parseBlocks(t *testing.T, text string) []*block {
	t.Helper()
	var blocks []*block
	var cur *block
	state := 0 // 0: between blocks, 1: input, 2: output
	var comments []string
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch state {
		case 0:
			if line == "" || strings.HasPrefix(line, "#") {
				comments = append(comments, line)
				continue
			}
			cur = &block{line: n, comments: comments, cmdLine: line, cmd: strings.Fields(line)[0]}
			comments, state = nil, 1
		case 1:
			if line == "----" {
				state, out = 2, nil
				continue
			}
			cur.input = append(cur.input, line)
		case 2:
			if line == "" {
				cur.output = strings.Join(out, "\n")
				blocks, state = append(blocks, cur), 0
				continue
			}
			out = append(out, line)
		}
	}
	switch state {
	case 1:
		t.Fatalf("line %d: block without ----", cur.line)
	case 2:
		cur.output = strings.Join(out, "\n")
		blocks = append(blocks, cur)
	}
	if len(comments) > 0 { // trailing comments are kept as a block-less tail
		t.Fatalf("testdata ends with comment lines")
	}
	return blocks
}

func putThings(t *testing.T, s *Store, things map[string]*fold.Thing, channel string, lines []string) string {
	t.Helper()
	b := s.NewBatch()
	for _, l := range lines {
		next := &fold.Thing{}
		if err := json.Unmarshal([]byte(l), next); err != nil {
			t.Fatalf("thing %s: %v", l, err)
		}
		next.ChannelID = channel
		if next.State == "" {
			next.State = ops.ThingActive
		}
		prev := things[channel+"/"+next.ThingID]
		if err := b.PutThing(prev, next); err != nil {
			t.Fatal(err)
		}
		things[channel+"/"+next.ThingID] = next
	}
	if err := b.Commit(1); err != nil {
		t.Fatal(err)
	}
	var out []string
	err := s.Dump(func(k, _ []byte) error {
		parts := strings.Split(string(k), "\x00")
		if !strings.Contains("YNL", parts[0]) || parts[1] != channel {
			return nil
		}
		for i, p := range parts {
			if q := strconv.Quote(p); p == "" || strings.ContainsAny(p, " |") || q[1:len(q)-1] != p {
				parts[i] = strconv.Quote(p)
			}
		}
		out = append(out, parts[0]+" | "+strings.Join(parts[2:], " | "))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}

func runSelect(t *testing.T, s *Store, channel, selector string, limit int) string {
	t.Helper()
	sel, perr := entityselector.Parse(selector)
	if perr != nil {
		return "error: " + perr.Error()
	}
	res, err := s.SelectThings(channel, sel, limit)
	if err != nil {
		t.Fatal(err)
	}
	// Select answers the same, evaluated or from its cache (the second
	// time at the latest).
	for range 2 {
		got, err := s.Select(channel, selector, limit)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.ThingIDs, res.ThingIDs) || !slices.Equal(got.UnknownTypes, res.UnknownTypes) || got.TooMany != res.TooMany {
			t.Errorf("%s: Select (cached %v) answered %+v, SelectThings %+v", selector, got.Cached, got, res)
		}
	}
	out := []string{"ids: (none)"}
	if len(res.ThingIDs) > 0 {
		out[0] = "ids: " + strings.Join(res.ThingIDs, " ")
	}
	if len(res.UnknownTypes) > 0 {
		out = append(out, "unknown types: "+strings.Join(res.UnknownTypes, " "))
	}
	if res.TooMany {
		out = append(out, "too many")
	}
	out = append(out, fmt.Sprintf("read: %d snapshots, %d index entries", res.Stats.SnapshotsRead, res.Stats.IndexEntries))
	return strings.Join(out, "\n")
}

// TestSelectUsesIndexes: in a channel of 20,000 Things, selections by
// entityId, by type and name, and through relationships read a handful of
// snapshots, not the channel. Counting snapshots is the behaviour the
// indexes exist for; it does not depend on timing.
func TestSelectUsesIndexes(t *testing.T) {
	const hosts, groups = 19_900, 100
	s := open(t)
	b := s.NewBatch()
	put := func(th *fold.Thing) {
		th.ChannelID, th.State = ch, ops.ThingActive
		if err := b.PutThing(nil, th); err != nil {
			t.Fatal(err)
		}
		if len(b.overlay) == 5000 {
			if err := b.Commit(1); err != nil {
				t.Fatal(err)
			}
			b = s.NewBatch()
		}
	}
	for g := range groups {
		put(&fold.Thing{ThingID: fmt.Sprintf("group-%03d", g), Title: fmt.Sprintf("Group %03d", g),
			Attrs: fold.Attrs{{Name: "type", Value: []byte(`"HOST_GROUP"`)}}})
	}
	for h := range hosts {
		put(&fold.Thing{ThingID: fmt.Sprintf("host-%05d", h), Title: fmt.Sprintf("Host %05d", h),
			Attrs: fold.Attrs{{Name: "relationships", Value: []byte(fmt.Sprintf(`{"isInstanceOf":"group-%03d"}`, h%groups))},
				{Name: "type", Value: []byte(`"HOST"`)}}})
	}
	if err := b.Commit(2); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sel      string
		selected int
		maxReads int
	}{
		{`entityId("host-00042","group-007","nope")`, 2, 3},
		{`type(HOST),entityName.equals("host 00042")`, 1, 1},
		{`type(HOST),entityName.in("host 00042","HOST 00043")`, 2, 2},
		{`type(HOST),entityName.startsWith("host 0004")`, 10, 10},
		{`type(HOST),fromRelationship.isInstanceOf(type(HOST_GROUP),entityName.equals("Group 007"))`, hosts / groups, 1 + hosts/groups},
		{`type(HOST_GROUP),toRelationships.isInstanceOf(entityId(host-00042))`, 1, 2},
		{`type(HOST),entityName.equals("Host 00042"),fromRelationships.isInstanceOf(type(HOST_GROUP))`, 1, groups + 1},
		{`type(HOST)`, 1000, 1001}, // stops at limit+1
	} {
		sel, perr := entityselector.Parse(tc.sel)
		if perr != nil {
			t.Fatal(perr)
		}
		res, err := s.SelectThings(ch, sel, 1000)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d selected, %+v", tc.sel, len(res.ThingIDs), res.Stats)
		if len(res.ThingIDs) != tc.selected || res.Stats.SnapshotsRead > tc.maxReads {
			t.Errorf("%s: selected %d (want %d), read %d snapshots (want ≤ %d) of %d",
				tc.sel, len(res.ThingIDs), tc.selected, res.Stats.SnapshotsRead, tc.maxReads, hosts+groups)
		}
	}
}
