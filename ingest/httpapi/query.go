package httpapi

import (
	"net/url"
	"strings"
)

// FormValues reads a query string as PushGo's does (axum's Query, through
// form_urlencoded): pairs split at "&" only, "+" a space, and a "%" not
// followed by two hex digits kept as it is. Go's url.ParseQuery drops a
// pair holding ";" or a bad escape without a word, so GET /message stored
// "body=step1;step2" without its body, and refused "title=CPU%20at%20100%"
// as having no title.
func FormValues(raw string) url.Values {
	vals := url.Values{}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, v = formUnescape(k), formUnescape(v)
		vals[k] = append(vals[k], v)
	}
	return vals
}

// formUnescape decodes "+" and every valid %XX escape of s, and keeps the
// rest as it is.
func formUnescape(s string) string {
	if !strings.ContainsAny(s, "+%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
