package reads

import (
	"bytes"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// A read's answer travels as bytes from the projector's store to the HTTP
// client: the projector writes the JSON of a page around its stored items
// and the Response around that by hand, ingest takes the data out of the
// Response by its framing and writes the HTTP envelope around it, and no
// side parses the items again. Every stored snapshot and history item is
// JSON in the json package's canonical form (the fold writes snapshots
// byte for byte as the json package would, and a history item is the
// operation envelope as ingest's json.Marshal wrote it into the log), so
// these framings are byte for byte what json.Marshal of HistoryData,
// ListData and Response wrote around the same items before, a parse and a
// re-encode per hop (tests compare them).

const (
	dataPrefix = `{"data":`
	dataSuffix = `}`
)

// AppendResponse appends the encoded Response of a successful read, data
// being its JSON as it goes into the answer, unparsed: what
// json.Marshal(Response{Data: data}) writes for data in canonical form.
func AppendResponse(dst []byte, data []byte) []byte {
	dst = append(dst, dataPrefix...)
	dst = append(dst, data...)
	return append(dst, dataSuffix...)
}

// EncodeResponse is AppendResponse into a new buffer of the exact size,
// which a page's copy fills without clearing it first.
func EncodeResponse(data []byte) []byte {
	return bytes.Join([][]byte{[]byte(dataPrefix), data, []byte(dataSuffix)}, nil)
}

// ResponseData returns the data of an encoded Response that AppendResponse
// (or json.Marshal of a Response with only Data) wrote, without parsing
// it; ok is false for any other answer (an error, which the caller
// decodes as a Response). A projector answers with data alone or an
// error alone, never both.
func ResponseData(answer []byte) (data jsontext.Value, ok bool) {
	if len(answer) <= len(dataPrefix)+len(dataSuffix) || !bytes.HasPrefix(answer, []byte(dataPrefix)) ||
		!bytes.HasSuffix(answer, []byte(dataSuffix)) {
		return nil, false
	}
	return answer[len(dataPrefix) : len(answer)-len(dataSuffix)], true
}

func appendItems(dst []byte, items [][]byte) []byte {
	dst = append(dst, '[')
	for i, it := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, it...)
	}
	return append(dst, ']')
}

// A history page is written in three parts, its items in the middle as
// they are stored, comma-separated (projector/store.AppendHistory writes
// them so): AppendHistoryHead, the items, AppendHistoryTail. Together they
// are the JSON of a HistoryData.

// AppendHistoryHead appends the start of a history page, up to its first
// item.
func AppendHistoryHead(dst []byte) []byte { return append(dst, `{"items":[`...) }

// AppendHistoryTail appends the end of a history page, after its last
// item.
func AppendHistoryTail(dst []byte, nextAfter uint64, hasMore bool, firstSeq uint64) []byte {
	dst = append(dst, `],"next_after":`...)
	dst = strconv.AppendUint(dst, nextAfter, 10)
	dst = append(dst, `,"has_more":`...)
	dst = strconv.AppendBool(dst, hasMore)
	dst = append(dst, `,"first_seq":`...)
	dst = strconv.AppendUint(dst, firstSeq, 10)
	return append(dst, '}')
}

// AppendListPage appends the JSON of a ListData whose items are given as
// stored (each one JSON value in canonical form, copied as it is). It
// fails only for a cursor that is not valid UTF-8 (an entity id never
// is), as json.Marshal does.
func AppendListPage(dst []byte, items [][]byte, nextCursor string, hasMore bool) ([]byte, error) {
	dst = append(dst, `{"items":`...)
	dst = appendItems(dst, items)
	dst = append(dst, `,"next_cursor":`...)
	dst, err := jsontext.AppendQuote(dst, nextCursor) // quoted as json.Marshal quotes
	if err != nil {
		return nil, err
	}
	dst = append(dst, `,"has_more":`...)
	dst = strconv.AppendBool(dst, hasMore)
	return append(dst, '}'), nil
}
