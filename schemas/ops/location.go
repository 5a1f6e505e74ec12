package ops

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pushgo/gateway/schemas/apierr"
)

// Location types (spec §5).
const (
	locPhysical   = "physical"
	locGeo        = "geo"
	locCloud      = "cloud"
	locDatacenter = "datacenter"
	locLogical    = "logical"
)

const (
	maxPhysicalLocation = 256
	maxLocationToken    = 64
)

// location validates a location_type/location_value pair and returns the
// type and the value normalised for that type. Both absent is no location.
func location(typ, value *string) (string, string, *apierr.Error) {
	if typ == nil && value == nil {
		return "", "", nil
	}
	if typ == nil {
		return "", "", apierr.Fieldf(apierr.LocationIncomplete, "location_type", "required with location_value")
	}
	if value == nil {
		return "", "", apierr.Fieldf(apierr.LocationIncomplete, "location_value", "required with location_type")
	}
	t := strings.TrimSpace(*typ)
	v := strings.TrimSpace(*value)
	var norm string
	var ok bool
	switch t {
	case locPhysical:
		// Free text for humans ("home/living-room"): kept as sent.
		norm, ok = v, v != "" && utf8.RuneCountInString(v) <= maxPhysicalLocation
	case locGeo:
		norm, ok = geoLocation(v)
	case locCloud:
		norm, ok = tokenPath(v, ":", 2, 3)
	case locDatacenter:
		norm, ok = tokenPath(v, ":", 1, 3)
	case locLogical:
		norm, ok = tokenPath(v, "/", 1, 0)
	default:
		return "", "", apierr.Field(apierr.LocationTypeInvalid, "location_type")
	}
	if !ok {
		return "", "", apierr.Fieldf(apierr.LocationValueInvalid, "location_value", "not a valid %s location", t)
	}
	return t, norm, nil
}

// tokenPath splits s on sep into min..max tokens (max 0: no upper bound),
// each 1-64 characters of [A-Za-z0-9_.-], and returns it lower-cased.
func tokenPath(s, sep string, min, max int) (string, bool) {
	parts := strings.Split(s, sep)
	if len(parts) < min || (max > 0 && len(parts) > max) {
		return "", false
	}
	for _, p := range parts {
		if !validLocationToken(p) {
			return "", false
		}
	}
	return strings.ToLower(s), true
}

func validLocationToken(s string) bool {
	if len(s) == 0 || len(s) > maxLocationToken {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// geoLocation parses "lat,lng" (spaces around the numbers allowed) and
// returns it with 6 decimals, about 0.1 m, so equal places compare equal.
func geoLocation(s string) (string, bool) {
	latS, lngS, ok := strings.Cut(s, ",")
	if !ok {
		return "", false
	}
	lat, ok1 := decimal(strings.TrimSpace(latS))
	lng, ok2 := decimal(strings.TrimSpace(lngS))
	if !ok1 || !ok2 || lat < -90 || lat > 90 || lng < -180 || lng > 180 {
		return "", false
	}
	return coord(lat) + "," + coord(lng), true
}

// decimal parses a plain decimal number ([-+]digits[.digits]). It refuses
// what strconv.ParseFloat would also take (NaN, Inf, hex, exponents,
// underscores), none of which is a coordinate a person writes.
func decimal(s string) (float64, bool) {
	body := strings.TrimLeft(s, "+-")
	if len(s)-len(body) > 1 || len(body) > 32 {
		return 0, false
	}
	intPart, frac, hasDot := strings.Cut(body, ".")
	if intPart == "" || !allDigits(intPart) || (hasDot && (frac == "" || !allDigits(frac))) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func coord(f float64) string {
	s := strconv.FormatFloat(f, 'f', 6, 64)
	if s == "-0.000000" {
		return "0.000000"
	}
	return s
}
