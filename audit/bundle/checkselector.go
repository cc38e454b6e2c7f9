package bundle

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

// CheckSelector is the check that the manifest's selector holds of the
// bundle: every listed trace has a span that satisfies every condition.
const CheckSelector = "selector"

// payloadMatch is what a span's payload says of the selector's payload
// conditions (session, subject, model, errors only).
type payloadMatch uint8

const (
	payloadUnknown payloadMatch = iota // erased, or not a Span: the bundle cannot tell
	payloadNo
	payloadYes
)

// hasPayloadConditions reports whether s has conditions only a payload
// can show.
func (s *Selector) hasPayloadConditions() bool {
	return s.SessionID != "" || s.SubjectID != "" || s.Model != "" || s.ErrorsOnly
}

// payloadConditions says which of the selector's payload conditions it
// names, for messages.
func (s *Selector) payloadConditions() string {
	var names []string
	for _, c := range []struct {
		name string
		set  bool
	}{{"session_id", s.SessionID != ""}, {"subject_id", s.SubjectID != ""}, {"model", s.Model != ""}, {"errors_only", s.ErrorsOnly}} {
		if c.set {
			names = append(names, c.name)
		}
	}
	return strings.Join(names, ", ")
}

// matchPayload checks a span's payload against the selector's payload
// conditions (docs/BUNDLE.md, the selector's table).
func (s *Selector) matchPayload(sp *v1.Span) payloadMatch {
	ok := (s.SessionID == "" || sp.GetSessionId() == s.SessionID) &&
		(s.SubjectID == "" || sp.GetSubjectId() == s.SubjectID) &&
		(s.Model == "" || sp.GetModel().GetRequestModel() == s.Model || sp.GetModel().GetResponseModel() == s.Model) &&
		(!s.ErrorsOnly || sp.GetStatus().GetCode() == v1.StatusCode_STATUS_CODE_ERROR)
	if ok {
		return payloadYes
	}
	return payloadNo
}

// matchHeader checks a span header against the selector's header
// conditions: trace, time, kind and version.
func (s *Selector) matchHeader(h *format.Header) bool {
	if s.TraceID != "" && hex.EncodeToString(h.TraceID[:]) != s.TraceID {
		return false
	}
	if !s.From.IsZero() && h.AppendedAt.Before(s.From) || !s.To.IsZero() && !h.AppendedAt.Before(s.To) {
		return false
	}
	if s.Kind != "" && SpanKindName(h.SubKind) != s.Kind {
		return false
	}
	if s.VersionID != "" {
		for _, r := range h.Refs {
			if hex.EncodeToString(r[:]) == s.VersionID {
				return true
			}
		}
		return false
	}
	return true
}

// checkSelectorHolds runs the selector check: each listed trace has a span
// entry whose header satisfies the selector's trace, time, kind and
// version conditions and whose payload satisfies its session, subject,
// model and errors-only conditions. A trace whose only spans that could
// match have no payload in the bundle (erased) passes with a note: the
// bundle cannot show that they matched, nor that they did not.
func (v *verifier) checkSelectorHolds(m *Manifest, results []entryResult) {
	s := &m.Selector
	payload := s.hasPayloadConditions()
	const (
		none = iota
		unknown
		matched
	)
	state := make(map[string]int, len(m.Traces))
	for i := range results {
		r := &results[i]
		h := r.header
		if h == nil || h.Kind != format.KindSpan || !s.matchHeader(h) {
			continue
		}
		trace := hex.EncodeToString(h.TraceID[:])
		switch {
		case !payload || r.payload == payloadYes:
			state[trace] = matched
		case r.payload == payloadUnknown && state[trace] == none:
			state[trace] = unknown
		}
	}
	sel := selectorText(s)
	for _, t := range m.Traces {
		switch state[t] {
		case matched:
			v.pass(CheckSelector)
		case unknown:
			v.pass(CheckSelector)
			v.note(CheckSelector, "trace %s: only spans whose payload the bundle does not hold or cannot read (erased, or not a span) can satisfy %s of the selector; the bundle cannot show that they did", t, s.payloadConditions())
		default:
			v.fail(CheckSelector, "trace %s: no span of it in the bundle satisfies the selector %s", t, sel)
		}
	}
}

// selectorText is the selector's conditions, for messages.
func selectorText(s *Selector) string {
	var parts []string
	for _, c := range []struct{ name, value string }{
		{"trace_id", s.TraceID}, {"session_id", s.SessionID}, {"subject_id", s.SubjectID},
		{"from", timeText(s.From)}, {"to", timeText(s.To)}, {"version_id", s.VersionID},
		{"kind", s.Kind}, {"model", s.Model}, {"errors_only", map[bool]string{true: "true"}[s.ErrorsOnly]},
	} {
		if c.value != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", c.name, c.value))
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(timeFormat)
}
