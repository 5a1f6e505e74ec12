package apierr

import "github.com/go-json-experiment/json"

// Envelope is the answer shape of every route (spec section 1):
// {success, data, error, error_code}.
type Envelope struct {
	Success   bool    `json:"success"`
	Data      any     `json:"data"`
	Error     *string `json:"error"`
	ErrorCode *Code   `json:"error_code"`
}

// EncodeOK is the success envelope around data.
func EncodeOK(data any) ([]byte, error) {
	return json.Marshal(Envelope{Success: true, Data: data})
}

// EncodeError is the failure envelope of e.
func EncodeError(e *Error) ([]byte, error) {
	msg, code := e.Detail, e.Code
	return json.Marshal(Envelope{Success: false, Error: &msg, ErrorCode: &code})
}
