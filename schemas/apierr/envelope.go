package apierr

import (
	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Envelope is the answer shape of every route (spec section 1), as PushGo's
// StatusResponse (src/api/response.rs):
//
//	success: {"success": true, "data": {...}}
//	failure: {"success": false, "data": null, "error": "...", "error_code": "...", "problem": {...}}
//
// A success carries no error and error_code members at all: the Android app
// reads them with org.json's optString, which turns a JSON null into the
// string "null", and it treats any non-empty error or error_code as a
// failure (app/src/main/java/io/ethan/pushgo/data/ChannelSubscriptionService.kt,
// execute), so a success with "error": null fails every call.
type Envelope struct {
	Success   bool     `json:"success"`
	Data      any      `json:"data"`
	Error     *string  `json:"error,omitzero"`
	ErrorCode *Code    `json:"error_code,omitzero"`
	Problem   *Problem `json:"problem,omitzero"`
}

// EncodeOK is the success envelope around data.
func EncodeOK(data any) ([]byte, error) {
	return json.Marshal(Envelope{Success: true, Data: data})
}

// EncodeError is the failure envelope of e in English, without a request
// id (for answers made outside a request's context).
func EncodeError(e *Error) ([]byte, error) { return EncodeErrorIn(e, English, "") }

// EncodeErrorIn is the failure envelope of e in locale l: error is e's
// text in l (Error.Text), error_code its code, problem PushGo's problem
// object with requestID ("" leaves it out). A detail that quotes invalid
// UTF-8 a client sent (the CloudEvents SDK's errors do) is answered with
// U+FFFD in its place, not refused: the refusal is still the client's.
func EncodeErrorIn(e *Error, l Locale, requestID string) ([]byte, error) {
	msg, code := e.Text(l), e.Code
	env := Envelope{Success: false, Error: &msg, ErrorCode: &code, Problem: e.Problem(l, requestID)}
	b, err := json.Marshal(env)
	if err != nil {
		// Only invalid UTF-8 fails (the envelope holds strings, a code and
		// numbers).
		return json.Marshal(env, jsontext.AllowInvalidUTF8(true))
	}
	return b, nil
}
