package ops

import (
	"strings"
	"unicode/utf8"

	"github.com/pushgo/gateway/schemas/apierr"
)

// stringList applies the tags/images rule: at most maxListItems items as
// sent (the count is checked before de-duplication, so the limit is about
// what the client sent), each trimmed, non-empty and at most maxLen runes;
// duplicates dropped, first occurrence kept.
//
// nil stays nil (absent: leave the snapshot's list alone) and an empty list
// stays empty and non-nil (clear the snapshot's list).
func stringList(in []string, field string, maxLen int, code apierr.Code) ([]string, *apierr.Error) {
	if in == nil {
		return nil, nil
	}
	if len(in) > maxListItems {
		return nil, apierr.Fieldf(code, field, "at most %d items, got %d", maxListItems, len(in))
	}
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for i, s := range in {
		t := strings.TrimSpace(s)
		if t == "" {
			return nil, apierr.Fieldf(code, field, "item %d is empty", i)
		}
		if utf8.RuneCountInString(t) > maxLen {
			return nil, apierr.Fieldf(code, field, "item %d is longer than %d characters", i, maxLen)
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

func tags(in []string) ([]string, *apierr.Error) {
	return stringList(in, "tags", maxTag, apierr.TagsFormatInvalid)
}

// FitTags fits the tags of a sender whose own tool takes any (ntfy's,
// Bark's, ServerChan's) to the rules tags are validated by: each trimmed
// and cut to 64 characters, blanks and repeats left out, the first 32
// kept. Such a sender's message was refused whole for one long tag.
func FitTags(in []string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, 0, min(len(in), maxListItems))
	seen := make(map[string]bool, len(in))
	for _, s := range in {
		t := strings.TrimSpace(s)
		if n := 0; utf8.RuneCountInString(t) > maxTag {
			for i := range t {
				if n == maxTag {
					t = strings.TrimSpace(t[:i])
					break
				}
				n++
			}
		}
		if t == "" || seen[t] {
			continue
		}
		seen[t] = true
		if out = append(out, t); len(out) == maxListItems {
			break
		}
	}
	return out
}

func images(in []string) ([]string, *apierr.Error) {
	return stringList(in, "images", maxURL, apierr.ImagesFormatInvalid)
}
