package apierr

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Locale is a language the gateway answers errors in, spelled as the
// answer's problem.locale and Content-Language (PushGo's "en" and "zh-CN",
// plus Korean and Japanese).
type Locale string

// The locales of the catalog. Every code has a text in each of them.
const (
	English  Locale = "en"
	Chinese  Locale = "zh-CN" // Simplified Chinese
	Korean   Locale = "ko"
	Japanese Locale = "ja"
)

// Locales lists the catalog's locales, English first.
var Locales = []Locale{English, Chinese, Korean, Japanese}

// Texts is one message in every locale of the catalog.
type Texts struct {
	En, Zh, Ko, Ja string
}

// In returns the text of l, English for a locale the catalog lacks.
func (t Texts) In(l Locale) string {
	switch l {
	case Chinese:
		return t.Zh
	case Korean:
		return t.Ko
	case Japanese:
		return t.Ja
	}
	return t.En
}

// NegotiateLocale picks the answer's locale from an Accept-Language header
// (RFC 9110 12.5.4): the acceptable language with the highest weight that
// the catalog has, ties in the order sent; English when none is (or the
// header is absent). As PushGo (src/api/response.rs, ApiLocale::parse):
// "zh", "zh-CN", "zh-SG" and "zh-Hans…" are Simplified Chinese, while
// Traditional Chinese tags (zh-TW, zh-HK, zh-Hant) are not served and fall
// through to the next language. The Apple app sends its preferred
// languages in order, e.g. "ja-JP, zh-CN, en"
// (Shared/Services/ChannelSubscriptionService.swift, gatewayAcceptLanguageValue).
func NegotiateLocale(header string) Locale {
	type cand struct {
		l Locale
		q float64
	}
	var cands []cand
	for _, part := range strings.Split(header, ",") {
		tag, params, _ := strings.Cut(part, ";")
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f >= 0 && f <= 1 {
					q = f
				} else {
					q = 0
				}
			}
		}
		if l, ok := localeOfTag(tag); ok && q > 0 {
			cands = append(cands, cand{l, q})
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].q > cands[j].q })
	if len(cands) == 0 {
		return English
	}
	return cands[0].l
}

func localeOfTag(tag string) (Locale, bool) {
	t := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(tag), "_", "-"))
	primary, rest, _ := strings.Cut(t, "-")
	switch primary {
	case "*", "en":
		return English, true
	case "ko":
		return Korean, true
	case "ja":
		return Japanese, true
	case "zh":
		if rest == "" || rest == "cn" || rest == "sg" || rest == "hans" || strings.HasPrefix(rest, "cn-") ||
			strings.HasPrefix(rest, "sg-") || strings.HasPrefix(rest, "hans-") {
			return Chinese, true
		}
	}
	return "", false
}

// Category is PushGo's problem category (src/api/response.rs,
// ApiProblemCategory). The Apple app decodes it into an enum and rejects
// the whole answer on a value it does not know
// (Shared/Models/AppError.swift, GatewayErrorCategory), so only these
// values are ever sent.
type Category string

// The categories the gateway answers with.
const (
	CategoryValidation      Category = "validation"
	CategoryAuth            Category = "auth"
	CategoryPermission      Category = "permission"
	CategoryNotFound        Category = "not_found"
	CategoryConflict        Category = "conflict"
	CategoryFeatureDisabled Category = "feature_disabled"
	CategoryRateLimit       Category = "rate_limit"
	CategoryTooBusy         Category = "too_busy"
	CategoryInternal        Category = "internal"
)

// Categories lists every category the gateway may answer with.
var Categories = []Category{CategoryValidation, CategoryAuth, CategoryPermission, CategoryNotFound, CategoryConflict,
	CategoryFeatureDisabled, CategoryRateLimit, CategoryTooBusy, CategoryInternal}

// categoryOf derives a code's category and retryability from its status,
// as PushGo's infer_problem_from_status, with PushGo's per-code exceptions
// (infer_problem_from_code): password_mismatch is a conflict, not a
// permission problem, and private_channel_disabled is a disabled feature
// that retrying does not help; and ours: store_full and
// device_limit_reached are not retryable either (the storage stays full,
// and the gateway at its device cap, until an operator acts).
func categoryOf(c Code, status int) (Category, bool) {
	switch c {
	case DeviceLimitReached:
		return CategoryTooBusy, false
	case PasswordMismatch:
		return CategoryConflict, false
	case PrivateChannelDisabled:
		return CategoryFeatureDisabled, false
	case StoreFull: // retrying does not help until an operator acts
		return CategoryInternal, false
	}
	switch {
	case status == http.StatusUnauthorized:
		return CategoryAuth, false
	case status == http.StatusForbidden:
		return CategoryPermission, false
	case status == http.StatusNotFound:
		return CategoryNotFound, false
	case status == http.StatusConflict:
		return CategoryConflict, false
	case status == http.StatusTooManyRequests:
		return CategoryRateLimit, true
	case status == http.StatusServiceUnavailable:
		return CategoryTooBusy, true
	case status >= 500:
		return CategoryInternal, true
	}
	return CategoryValidation, false
}

// Title is the problem title of a category in l (PushGo's
// localized_problem_title for English and Chinese).
func (c Category) Title(l Locale) string { return categoryTitles[c].In(l) }

var categoryTitles = map[Category]Texts{
	CategoryValidation:      {"Validation failed", "请求参数有误", "요청 값이 올바르지 않습니다", "リクエストの内容が正しくありません"},
	CategoryAuth:            {"Authentication failed", "认证失败", "인증에 실패했습니다", "認証に失敗しました"},
	CategoryPermission:      {"Permission denied", "权限不足", "권한이 없습니다", "権限がありません"},
	CategoryNotFound:        {"Resource not found", "资源不存在", "리소스를 찾을 수 없습니다", "リソースが見つかりません"},
	CategoryConflict:        {"Request conflicts with current state", "请求与当前状态冲突", "요청이 현재 상태와 충돌합니다", "リクエストが現在の状態と競合しています"},
	CategoryFeatureDisabled: {"Feature unavailable", "功能不可用", "사용할 수 없는 기능입니다", "この機能は利用できません"},
	CategoryRateLimit:       {"Too many requests", "请求过于频繁", "요청이 너무 많습니다", "リクエストが多すぎます"},
	CategoryTooBusy:         {"Service temporarily unavailable", "服务暂时不可用", "서비스를 일시적으로 사용할 수 없습니다", "サービスが一時的に利用できません"},
	CategoryInternal:        {"Internal server error", "服务内部错误", "내부 서버 오류", "内部サーバーエラー"},
}

// Problem is PushGo's problem object (src/api/response.rs, ApiProblem), sent
// beside error and error_code in every failure and in every failed
// /channel/sync item. Code, category, status and retryable are always
// present (the Apple app requires category, status and retryable:
// Shared/Models/AppError.swift, GatewayProblemPayload); title and
// localized_message are in the negotiated locale, detail is the English
// detail naming the field.
type Problem struct {
	Code             Code     `json:"code"`
	Category         Category `json:"category"`
	Status           int      `json:"status"`
	Title            string   `json:"title"`
	Detail           string   `json:"detail,omitempty"`
	LocalizedMessage string   `json:"localized_message"`
	Locale           Locale   `json:"locale"`
	Retryable        bool     `json:"retryable"`
	RequestID        string   `json:"request_id,omitempty"`
	// OpID is Error.OpID: the op_id to retry a write with.
	OpID string `json:"op_id,omitempty"`
}

// Problem is e's problem object in l; requestID is the answer's
// X-Request-Id ("" leaves it out).
func (e *Error) Problem(l Locale, requestID string) *Problem {
	if l == "" {
		l = English
	}
	entry := Lookup(e.Code)
	return &Problem{Code: entry.Code, Category: entry.Category, Status: entry.Status, Title: entry.Category.Title(l),
		Detail: e.Detail, LocalizedMessage: entry.Text(l), Locale: l, Retryable: entry.Retryable, RequestID: requestID, OpID: e.OpID}
}
