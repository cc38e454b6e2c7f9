package rpc

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/veritrace/veritrace/audit"
	"github.com/veritrace/veritrace/audit/bundle"
	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// Limits of request fields.
const (
	maxSpanBytes = 1 << 20 // encoded size of one span
	// maxOTLPSpanBytes is the encoded size of one span ingested over OTLP:
	// it holds the span as received and its normalised form, which repeats
	// the content.
	maxOTLPSpanBytes = 2 * maxSpanBytes
	maxVersionBytes  = 1 << 20 // content of one version
	maxShortString   = 1024    // names, ids, labels, roles, models
	maxAttributes    = 256
)

var marshal = proto.MarshalOptions{Deterministic: true}

// spanRecord validates a span and turns it into a ledger record of at most
// maxBytes of payload. field is the span's path in the request, e.g.
// "spans[2]".
func spanRecord(field string, s *v1.Span, maxBytes int) (ledger.Record, error) {
	var r ledger.Record
	if err := validateSpan(field, s); err != nil {
		return r, err
	}
	payload, err := marshal.Marshal(s)
	if err != nil {
		return r, invalid(field, "%v", err)
	}
	if len(payload) > maxBytes {
		return r, invalid(field, "span of %d bytes exceeds the limit of %d bytes", len(payload), maxBytes)
	}
	r = ledger.Record{
		Kind:    format.KindSpan,
		SubKind: uint8(s.GetKind()),
		Subject: s.GetSubjectId(),
		Payload: payload,
	}
	copy(r.TraceID[:], s.GetTraceId())
	copy(r.SpanID[:], s.GetSpanId())
	copy(r.ParentSpanID[:], s.GetParentSpanId())
	refs := s.GetVersions()
	facts := audit.SpanFacts{
		Session: s.GetSessionId(),
		Models:  []string{s.GetModel().GetRequestModel(), s.GetModel().GetResponseModel()},
		Error:   s.GetStatus().GetCode() == v1.StatusCode_STATUS_CODE_ERROR,
	}
	for i, id := range []string{refs.GetPrompt(), refs.GetPolicy(), refs.GetPipeline()} {
		if id != "" {
			hex.Decode(r.Refs[i][:], []byte(id)) // validated above
			facts.Versions = append(facts.Versions, r.Refs[i])
		}
	}
	r.Terms = audit.SpanTerms(facts)
	return r, nil
}

func validateSpan(f string, s *v1.Span) error {
	if s == nil {
		return invalid(f, "span is missing")
	}
	if err := checkID(f+".trace_id", s.GetTraceId(), 16, true); err != nil {
		return err
	}
	if err := checkID(f+".span_id", s.GetSpanId(), 8, true); err != nil {
		return err
	}
	if err := checkID(f+".parent_span_id", s.GetParentSpanId(), 8, false); err != nil {
		return err
	}
	if string(s.GetParentSpanId()) == string(s.GetSpanId()) {
		return invalid(f+".parent_span_id", "a span cannot be its own parent")
	}
	if err := checkString(f+".name", s.GetName(), true); err != nil {
		return err
	}
	if k := s.GetKind(); k <= v1.SpanKind_SPAN_KIND_UNSPECIFIED || k > v1.SpanKind_SPAN_KIND_OTHER {
		return invalid(f+".kind", "must be one of GENERATION, EMBEDDING, RETRIEVAL, TOOL, AGENT, CHAIN, GUARDRAIL, OTHER; got %d", k)
	}
	if s.GetStartTime() == nil {
		return invalid(f+".start_time", "required")
	}
	if err := s.GetStartTime().CheckValid(); err != nil {
		return invalid(f+".start_time", "%v", err)
	}
	if s.GetEndTime() == nil {
		return invalid(f+".end_time", "required")
	}
	if err := s.GetEndTime().CheckValid(); err != nil {
		return invalid(f+".end_time", "%v", err)
	}
	if s.GetEndTime().AsTime().Before(s.GetStartTime().AsTime()) {
		return invalid(f+".end_time", "is before start_time")
	}
	if st := s.GetStatus(); st != nil {
		if c := st.GetCode(); c < v1.StatusCode_STATUS_CODE_UNSPECIFIED || c > v1.StatusCode_STATUS_CODE_ERROR {
			return invalid(f+".status.code", "unknown status code %d", c)
		}
	}
	for name, v := range map[string]string{"session_id": s.GetSessionId(), "subject_id": s.GetSubjectId()} {
		if err := checkString(f+"."+name, v, false); err != nil {
			return err
		}
	}
	if m := s.GetModel(); m != nil {
		for name, v := range map[string]float64{"temperature": m.GetTemperature(), "top_p": m.GetTopP(), "top_k": m.GetTopK()} {
			if !finite(v) {
				return invalid(f+".model."+name, "must be a finite number")
			}
		}
		if m.GetMaxTokens() < 0 {
			return invalid(f+".model.max_tokens", "must not be negative")
		}
	}
	if u := s.GetUsage(); u != nil {
		if u.GetInputTokens() < 0 || u.GetOutputTokens() < 0 {
			return invalid(f+".usage", "token counts must not be negative")
		}
		if !finite(u.GetCost()) || u.GetCost() < 0 {
			return invalid(f+".usage.cost", "must be a finite, non-negative number")
		}
	}
	c := s.GetContent()
	for i, d := range c.GetRetrieval().GetDocuments() {
		df := fmt.Sprintf("%s.content.retrieval.documents[%d]", f, i)
		if err := checkString(df+".id", d.GetId(), true); err != nil {
			return err
		}
		if !finite(d.GetScore()) {
			return invalid(df+".score", "must be a finite number")
		}
	}
	if g := c.GetGuardrail(); g != nil {
		if o := g.GetOutcome(); o < v1.GuardrailOutcome_GUARDRAIL_OUTCOME_UNSPECIFIED || o > v1.GuardrailOutcome_GUARDRAIL_OUTCOME_BLOCKED {
			return invalid(f+".content.guardrail.outcome", "unknown outcome %d", o)
		}
	}
	refs := s.GetVersions()
	for name, id := range map[string]string{"prompt": refs.GetPrompt(), "policy": refs.GetPolicy(), "pipeline": refs.GetPipeline()} {
		if id == "" {
			continue
		}
		if _, err := parseVersionID(id); err != nil {
			return invalid(f+".versions."+name, "%v", err)
		}
	}
	if len(s.GetAttributes()) > maxAttributes {
		return invalid(f+".attributes", "%d attributes, at most %d", len(s.GetAttributes()), maxAttributes)
	}
	for k := range s.GetAttributes() {
		if err := checkString(f+".attributes", k, true); err != nil {
			return invalid(f+".attributes", "attribute name %q: empty or too long", truncate(k))
		}
	}
	// What is stored must have a lossless JSON form, so that every reader
	// and every evidence bundle can show it: no unknown fields (binary
	// requests keep them; JSON requests drop them in the codec), every
	// attribute value of a known kind, finite and nested at most
	// bundle.MaxValueDepth deep.
	if err := bundle.CheckMessage(s); err != nil {
		var pe *bundle.PayloadError
		if errors.As(err, &pe) && pe.Path != "" {
			return invalid(f+"."+pe.Path, "%s", pe.Reason)
		}
		return invalid(f, "%v", err)
	}
	return nil
}

func checkID(field string, b []byte, size int, required bool) error {
	if len(b) == 0 && !required {
		return nil
	}
	if len(b) != size {
		return invalid(field, "must be %d bytes, got %d", size, len(b))
	}
	for _, x := range b {
		if x != 0 {
			return nil
		}
	}
	return invalid(field, "must not be all zero")
}

func checkString(field, s string, required bool) error {
	switch {
	case s == "" && required:
		return invalid(field, "required")
	case len(s) > maxShortString:
		return invalid(field, "%d bytes, at most %d", len(s), maxShortString)
	case !utf8.ValidString(s):
		return invalid(field, "not valid UTF-8")
	}
	return nil
}

// pageSize validates a page_size field: 1 to 1000, or 0 for 100.
func pageSize(n int32) (int, error) {
	switch {
	case n < 0 || n > 1000:
		return 0, invalid("page_size", "must be 0 to 1000, got %d", n)
	case n == 0:
		return 100, nil
	}
	return int(n), nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// parseVersionID parses a version id: 64 lowercase hex digits.
func parseVersionID(s string) ([32]byte, error) {
	var id [32]byte
	if len(s) != 64 {
		return id, fmt.Errorf("version id must be 64 lowercase hex digits, got %d characters", len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return id, fmt.Errorf("version id must be 64 lowercase hex digits")
		}
	}
	hex.Decode(id[:], []byte(s))
	if id == ([32]byte{}) {
		return id, fmt.Errorf("version id must not be zero")
	}
	return id, nil
}

// versionRecord validates a RegisterVersion request and turns it into a
// ledger record.
func versionRecord(req *v1.RegisterVersionRequest) (ledger.Record, [32]byte, error) {
	var r ledger.Record
	k := req.GetKind()
	if k <= v1.VersionKind_VERSION_KIND_UNSPECIFIED || k > v1.VersionKind_VERSION_KIND_PIPELINE {
		return r, [32]byte{}, invalid("kind", "must be PROMPT, POLICY or PIPELINE; got %d", k)
	}
	if err := checkString("name", req.GetName(), true); err != nil {
		return r, [32]byte{}, err
	}
	for i := 0; i < len(req.GetName()); i++ {
		if req.GetName()[i] < 0x20 {
			return r, [32]byte{}, invalid("name", "must not contain control characters")
		}
	}
	if err := checkString("label", req.GetLabel(), true); err != nil {
		return r, [32]byte{}, err
	}
	if err := checkString("media_type", req.GetMediaType(), false); err != nil {
		return r, [32]byte{}, err
	}
	if len(req.GetContent()) > maxVersionBytes {
		return r, [32]byte{}, invalid("content", "%d bytes exceeds the limit of %d bytes", len(req.GetContent()), maxVersionBytes)
	}
	vk := format.VersionKind(k)
	id := format.VersionID(vk, req.GetName(), req.GetLabel(), req.GetMediaType(), req.GetContent())
	payload, err := marshal.Marshal(&v1.Version{Kind: k, Name: req.GetName(), Label: req.GetLabel(), Content: req.GetContent(), MediaType: req.GetMediaType()})
	if err != nil {
		return r, id, invalid("content", "%v", err)
	}
	r = ledger.Record{
		Kind:           format.KindVersion,
		SubKind:        uint8(vk),
		Version:        &ledger.VersionName{Name: req.GetName(), Label: req.GetLabel()},
		RetentionClass: versionRetentionClass,
		Payload:        payload,
	}
	r.Refs[vk-1] = id
	return r, id, nil
}

// versionRetentionClass keeps registered versions apart from trace data:
// they are the record of what was in force and are not personal data.
const versionRetentionClass = "versions"

// lenientOTLP adjusts a span mapped from OTLP where a native span would
// be refused for an optional field, so that the span is kept: an exporter
// does not retry a partial success, and a compliance record should hold
// what happened. Each change is noted in the attribute otlp.AttrAdjusted;
// the OTLP source keeps what was sent. What still refuses a span (ids,
// name, times, size) is what no record can do without (docs/OTLP.md).
func lenientOTLP(m *otlp.Mapped) {
	s := m.Span
	clipField := func(what string, v *string) {
		if len(*v) > maxShortString {
			m.Adjust(fmt.Sprintf("%s clipped from %d to %d bytes", what, len(*v), maxShortString))
			*v = clipUTF8(*v, maxShortString)
		}
	}
	clipField("name", &s.Name)
	clipField("session_id", &s.SessionId)
	if len(s.SubjectId) > maxShortString {
		m.FullSubject = s.SubjectId
		clipField("subject_id", &s.SubjectId)
	}
	for k := range s.Attributes {
		if len(k) > maxShortString {
			delete(s.Attributes, k)
			m.Adjust(fmt.Sprintf("an attribute whose key is %d bytes (more than %d) left out", len(k), maxShortString))
		}
	}
	if u := s.GetUsage(); u != nil {
		if u.InputTokens < 0 {
			m.Adjust(fmt.Sprintf("usage.input_tokens %d left out: negative", u.InputTokens))
			u.InputTokens = 0
		}
		if u.OutputTokens < 0 {
			m.Adjust(fmt.Sprintf("usage.output_tokens %d left out: negative", u.OutputTokens))
			u.OutputTokens = 0
		}
		if !finite(u.Cost) || u.Cost < 0 {
			m.Adjust(fmt.Sprintf("usage.cost %g left out: not a finite, non-negative number", u.Cost))
			u.Cost, u.Currency = 0, ""
		}
	}
	if md := s.GetModel(); md != nil {
		if md.MaxTokens != nil && *md.MaxTokens < 0 {
			m.Adjust(fmt.Sprintf("model.max_tokens %d left out: negative", *md.MaxTokens))
			md.MaxTokens = nil
		}
	}
	for i, d := range s.GetContent().GetRetrieval().GetDocuments() {
		clipField(fmt.Sprintf("content.retrieval.documents[%d].id", i), &d.Id)
	}
}

// clipUTF8 cuts s to at most n bytes at a character boundary.
func clipUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
