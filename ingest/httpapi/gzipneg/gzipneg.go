// Package gzipneg is the gzip content negotiation of the gateway's static
// answers (the API document and its page, the console's assets): whether
// a request's Accept-Encoding admits gzip (RFC 9110, section 12.5.3), and
// the gzip form of a body that is sent many times.
package gzipneg

import (
	"bytes"
	"compress/gzip"
	"strconv"
	"strings"
)

// Accepts reports whether an Accept-Encoding value admits gzip. An entry
// naming gzip (or its alias x-gzip) decides, whatever its place; "*"
// decides only when no entry names gzip; a q of 0 refuses, any other
// valid q admits. Names and parameters are case-insensitive and blanks
// around them are ignored. An entry whose q is not a number is ignored,
// and an empty or absent value admits only identity: no gzip.
func Accepts(acceptEncoding string) bool {
	named, star := 0, 0 // 0: not seen; 1: admitted; -1: refused
	for part := range strings.SplitSeq(acceptEncoding, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "x-gzip" && name != "*" {
			continue
		}
		verdict := 1
		for param := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(param, "=")
			if !strings.EqualFold(strings.TrimSpace(k), "q") {
				continue
			}
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			switch {
			case err != nil || q < 0 || q > 1:
				verdict = 0
			case q == 0:
				verdict = -1
			}
		}
		if verdict == 0 {
			continue
		}
		if name == "*" {
			// The most restrictive "*" wins when there are several.
			star = min(nonZero(star, verdict), verdict)
		} else {
			named = min(nonZero(named, verdict), verdict)
		}
	}
	if named != 0 {
		return named > 0
	}
	return star > 0
}

// nonZero is v when it is set, else or.
func nonZero(v, or int) int {
	if v == 0 {
		return or
	}
	return v
}

// Compress is b gzipped at the best compression: for bodies compressed once
// and sent many times (embedded files). Call it where the cost (tens of
// milliseconds for a few hundred KB) is paid once, not at package
// initialization: every process, the CLI's included, would pay it.
func Compress(b []byte) []byte {
	var buf bytes.Buffer
	w, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		panic(err) // a constant, valid level
	}
	_, _ = w.Write(b) // a bytes.Buffer does not fail
	_ = w.Close()
	return buf.Bytes()
}
