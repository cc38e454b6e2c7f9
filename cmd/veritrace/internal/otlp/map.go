package otlp

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	logs "go.opentelemetry.io/proto/slim/otlp/logs/v1"
	resource "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// Config is a tenant's mapping configuration.
type Config struct {
	// SubjectAttributes name the data subject (end user), tried in order;
	// nil means DefaultSubjectAttributes.
	SubjectAttributes []string `json:"subject_attributes,omitempty"`
	// SessionAttributes name the session, tried in order; nil means
	// DefaultSessionAttributes.
	SessionAttributes []string `json:"session_attributes,omitempty"`
}

// DefaultSubjectAttributes are the attributes that name a span's data
// subject unless a tenant configures others (docs/OTLP.md).
var DefaultSubjectAttributes = []string{
	"user.id", "enduser.id", "langfuse.user.id", "litellm.end_user.id",
	"metadata.user_api_key_end_user_id", "traceloop.association.properties.user_id",
}

// DefaultSessionAttributes are the attributes that name a span's session
// unless a tenant configures others.
var DefaultSessionAttributes = []string{
	"session.id", "gen_ai.conversation.id", "langfuse.session.id",
	"traceloop.association.properties.session_id", "metadata.session_id",
}

// VersionRef is a prompt, policy or pipeline version a span refers to,
// by registered id or by name and label, and the attributes it was read
// from. The caller resolves it against the registry.
type VersionRef struct {
	Kind        v1.VersionKind
	ID          string // 64 hex digits, when given by id
	Name, Label string
	Attributes  []string
}

// Mapped is one OTLP span or log record mapped to a Veritrace span.
type Mapped struct {
	// Span is the normalised span with Otlp set to the source as received.
	// It is not validated: the caller validates it like any other span.
	Span *v1.Span
	// Refs are the version references found, to be resolved by the caller
	// into Span.Versions.
	Refs []VersionRef
	// FullSubject is the subject as sent, when Span.SubjectId had to be
	// clipped; it still chooses the data key and the subject index term.
	FullSubject string
}

// SetAttribute sets one of the attributes the ingest adds to a mapped
// span (veritrace.*). When the span then holds more than MaxAttributes, it
// makes room deterministically, so that a retry maps the same: the last
// free attributes in key order go (the source keeps them) and AttrOmitted
// counts them.
func (m *Mapped) SetAttribute(key string, v *structpb.Value) {
	s := m.Span
	if s.Attributes == nil {
		s.Attributes = map[string]*structpb.Value{}
	}
	s.Attributes[key] = v
	omitted := int(s.Attributes[AttrOmitted].GetNumberValue())
	dropped := 0
	for {
		n := len(s.Attributes)
		if dropped > 0 && s.Attributes[AttrOmitted] == nil {
			n++
		}
		if n <= MaxAttributes {
			break
		}
		last := ""
		for k := range s.Attributes {
			if !strings.HasPrefix(k, "veritrace.otlp.") && !strings.HasPrefix(k, "veritrace.versions.") && k > last {
				last = k
			}
		}
		if last == "" {
			break
		}
		delete(s.Attributes, last)
		dropped++
	}
	if dropped > 0 {
		s.Attributes[AttrOmitted] = structpb.NewNumberValue(float64(omitted + dropped))
	}
}

// MaxAttributes is the most free attributes a mapped span carries (the
// limit of native spans). Further attributes stay in the OTLP source and
// are counted in the attribute AttrOmitted.
const MaxAttributes = 256

// AttrOmitted counts the attributes left out of a mapped span's free
// attributes (they remain in its OTLP source).
const AttrOmitted = "veritrace.otlp.attributes_omitted"

var deterministic = proto.MarshalOptions{Deterministic: true}

// AttrAdjusted lists, on a mapped span, what the ingest changed in the
// normalised form to keep the span rather than refuse it: strings whose
// invalid UTF-8 was replaced, fields clipped or dropped (docs/OTLP.md).
// The OTLP source keeps what was received.
const AttrAdjusted = "veritrace.otlp.adjusted"

// adjustedUTF8 is AttrAdjusted's note for replaced invalid UTF-8.
const adjustedUTF8 = "strings that were not valid UTF-8 (or held lone UTF-16 surrogates) were read with U+FFFD in their place"

// MapSpan maps one OTLP span of an export, with the resource and scope of
// its group, to a Veritrace span whose source is the span's bytes and the
// digest of its group's resource and scope (stored once per trace, in the
// entry ResourceEntry makes). It is pure: the same item and group give the
// same span and the same source bytes.
func MapSpan(g *Group, it *Item, cfg Config) *Mapped {
	sp := it.Span
	a := newAttrs(sp.GetAttributes())
	out := &v1.Span{
		TraceId: sp.GetTraceId(), SpanId: sp.GetSpanId(), ParentSpanId: sp.GetParentSpanId(),
		Name:      sp.GetName(),
		StartTime: nanos(sp.GetStartTimeUnixNano()), EndTime: nanos(sp.GetEndTimeUnixNano()),
		Otlp: &v1.OtlpSource{Span: it.Raw, ResourceScopeSha256: g.Digest[:]},
	}
	out.Kind = spanKind(a, sp.GetName())
	out.Status = spanStatus(a, sp)
	m := &Mapped{Span: out}
	mapCommon(m, a, g.Resource, cfg, spanEvents(sp.GetEvents()))
	if it.Fixed || g.Fixed {
		m.Adjust(adjustedUTF8)
	}
	return m
}

// MapLogRecord maps one OTLP log record attached to a span (an event such
// as gen_ai.client.inference.operation.details) to a Veritrace span entry
// of kind OTHER whose parent is that span: its span id is derived from the
// record's bytes and its resource and scope (bundle.LogEntrySpanID), so a
// retried record is a duplicate.
func MapLogRecord(g *Group, it *Item, cfg Config) *Mapped {
	lr := it.Log
	a := newAttrs(lr.GetAttributes())
	name := lr.GetEventName()
	if name == "" {
		name, _ = a.str("event.name")
	}
	a.use("event.name")
	if name == "" {
		name = "log"
	}
	t := lr.GetTimeUnixNano()
	if t == 0 {
		t = lr.GetObservedTimeUnixNano()
	}
	id := bundle.LogEntrySpanID(g.Digest[:], it.Raw)
	out := &v1.Span{
		TraceId: lr.GetTraceId(), SpanId: id[:], ParentSpanId: lr.GetSpanId(),
		Name: name, Kind: v1.SpanKind_SPAN_KIND_OTHER, StartTime: nanos(t), EndTime: nanos(t),
		Otlp: &v1.OtlpSource{LogRecord: it.Raw, ResourceScopeSha256: g.Digest[:]},
	}
	if lr.GetSeverityNumber() >= logs.SeverityNumber_SEVERITY_NUMBER_ERROR {
		out.Status = &v1.Status{Code: v1.StatusCode_STATUS_CODE_ERROR, Message: clip(lr.GetSeverityText(), 1024)}
	}
	m := &Mapped{Span: out}
	ev := &event{name: name, a: a, body: plain(lr.GetBody())}
	mapCommon(m, a, g.Resource, cfg, []*event{ev})
	if it.Fixed || g.Fixed {
		m.Adjust(adjustedUTF8)
	}
	return m
}

// ResourceEntry is the span of the resource entry, in trace traceID, that
// holds a group's resource and scope: kind OTHER, named
// bundle.ResourceEntryName, with no times, parent or content, its span id
// bundle.ResourceEntrySpanID. Spans and log records of the trace under the
// group refer to it by its digest.
func ResourceEntry(traceID []byte, g *Group) *v1.Span {
	return bundle.ResourceEntrySpan(traceID, g.ResourceScope)
}

// Adjust records, in the attribute AttrAdjusted, a change the ingest made
// to the normalised span.
func (m *Mapped) Adjust(note string) {
	l := m.Span.GetAttributes()[AttrAdjusted].GetListValue()
	if l == nil {
		l = &structpb.ListValue{}
		m.SetAttribute(AttrAdjusted, structpb.NewListValue(l))
	}
	l.Values = append(l.Values, structpb.NewStringValue(note))
}

func nanos(n uint64) *timestamppb.Timestamp {
	if n == 0 {
		return nil
	}
	return &timestamppb.Timestamp{Seconds: int64(n / 1e9), Nanos: int32(n % 1e9)}
}

// event is a span event or a log record, as the mapping reads it.
type event struct {
	name string
	a    *attrs
	body any
}

func spanEvents(evs []*trace.Span_Event) []*event {
	out := make([]*event, 0, len(evs))
	for _, e := range evs {
		out = append(out, &event{name: e.GetName(), a: newAttrs(e.GetAttributes())})
	}
	return out
}

// mapCommon fills what spans and log records share: model, usage,
// content, session, subject, versions and free attributes.
func mapCommon(m *Mapped, a *attrs, res *resource.Resource, cfg Config, events []*event) {
	s := m.Span
	ra := newAttrs(res.GetAttributes())
	s.SubjectId, s.SessionId = principal(a, ra, cfg)
	s.Model = mapModel(a)
	s.Usage = mapUsage(a)
	s.Content = mapContent(s.GetKind(), s.GetName(), s.GetStatus(), a, events)
	m.Refs = versionRefs(a)
	s.Attributes = freeAttributes(a, ra)
}

// principal returns the subject and session named by an item's
// attributes a, else by its resource's ra, and marks the item's keys used.
func principal(a, ra *attrs, cfg Config) (subject, session string) {
	subjectKeys, sessionKeys := cfg.SubjectAttributes, cfg.SessionAttributes
	if subjectKeys == nil {
		subjectKeys = DefaultSubjectAttributes
	}
	if sessionKeys == nil {
		sessionKeys = DefaultSessionAttributes
	}
	var k string
	if subject, k = a.str(subjectKeys...); subject == "" {
		subject, _ = ra.str(subjectKeys...)
	}
	a.use(k)
	if session, k = a.str(sessionKeys...); session == "" {
		session, _ = ra.str(sessionKeys...)
	}
	a.use(k)
	return subject, session
}

// Principal returns the subject and session an item names itself, as
// MapSpan and MapLogRecord map them: from its attributes, else its
// resource's. It is cheap: the ingest learns a trace's subject from it
// before mapping the trace's items.
func (g *Group) Principal(it *Item, cfg Config) (subject, session string) {
	return principal(newAttrs(it.attributes()), newAttrs(g.Resource.GetAttributes()), cfg)
}

func (it *Item) attributes() []*common.KeyValue {
	if it.Log != nil {
		return it.Log.GetAttributes()
	}
	return it.Span.GetAttributes()
}

// TraceID returns the item's trace id as sent.
func (it *Item) TraceID() []byte {
	if it.Log != nil {
		return it.Log.GetTraceId()
	}
	return it.Span.GetTraceId()
}

// RetentionAttributes returns the string-valued attributes that retention
// rules match an item against: every attribute of the item as received
// (not only those kept in the normalised span, which holds at most
// MaxAttributes), and its resource's attributes for keys the item does
// not have (docs/RETENTION.md, docs/OTLP.md).
func (g *Group) RetentionAttributes(it *Item) map[string]string {
	out := map[string]string{}
	for _, kvs := range [][]*common.KeyValue{it.attributes(), g.Resource.GetAttributes()} {
		for _, kv := range kvs {
			if sv, ok := kv.GetValue().GetValue().(*common.AnyValue_StringValue); ok {
				if _, dup := out[kv.GetKey()]; !dup {
					out[kv.GetKey()] = sv.StringValue
				}
			}
		}
	}
	return out
}

// spanKind decides the Veritrace span kind, in layers: current GenAI
// operation name, OpenInference span kind, Langfuse observation type,
// traceloop span kind, then what the attributes and name say.
func spanKind(a *attrs, name string) v1.SpanKind {
	if op, _ := a.str("gen_ai.operation.name"); op != "" {
		switch op {
		case "chat", "generate_content", "text_completion", "completion":
			return v1.SpanKind_SPAN_KIND_GENERATION
		case "embeddings", "embedding":
			return v1.SpanKind_SPAN_KIND_EMBEDDING
		case "retrieval":
			return v1.SpanKind_SPAN_KIND_RETRIEVAL
		case "execute_tool":
			return v1.SpanKind_SPAN_KIND_TOOL
		case "create_agent", "invoke_agent":
			return v1.SpanKind_SPAN_KIND_AGENT
		case "invoke_workflow", "plan":
			return v1.SpanKind_SPAN_KIND_CHAIN
		}
	}
	if k, _ := a.str("openinference.span.kind"); k != "" {
		switch strings.ToUpper(k) {
		case "LLM":
			return v1.SpanKind_SPAN_KIND_GENERATION
		case "EMBEDDING":
			return v1.SpanKind_SPAN_KIND_EMBEDDING
		case "RETRIEVER", "RERANKER":
			return v1.SpanKind_SPAN_KIND_RETRIEVAL
		case "TOOL":
			return v1.SpanKind_SPAN_KIND_TOOL
		case "AGENT":
			return v1.SpanKind_SPAN_KIND_AGENT
		case "CHAIN":
			return v1.SpanKind_SPAN_KIND_CHAIN
		case "GUARDRAIL":
			return v1.SpanKind_SPAN_KIND_GUARDRAIL
		}
		return v1.SpanKind_SPAN_KIND_OTHER
	}
	if k, _ := a.str("langfuse.observation.type"); k != "" {
		switch strings.ToLower(k) {
		case "generation":
			return v1.SpanKind_SPAN_KIND_GENERATION
		case "embedding":
			return v1.SpanKind_SPAN_KIND_EMBEDDING
		case "retriever":
			return v1.SpanKind_SPAN_KIND_RETRIEVAL
		case "tool":
			return v1.SpanKind_SPAN_KIND_TOOL
		case "agent":
			return v1.SpanKind_SPAN_KIND_AGENT
		case "chain":
			return v1.SpanKind_SPAN_KIND_CHAIN
		case "guardrail":
			return v1.SpanKind_SPAN_KIND_GUARDRAIL
		}
	}
	if k, _ := a.str("traceloop.span.kind"); k != "" {
		switch k {
		case "workflow", "task":
			return v1.SpanKind_SPAN_KIND_CHAIN
		case "agent":
			return v1.SpanKind_SPAN_KIND_AGENT
		case "tool":
			return v1.SpanKind_SPAN_KIND_TOOL
		}
	}
	if t, _ := a.str("llm.request.type"); t != "" { // OpenLLMetry
		if t == "embedding" {
			return v1.SpanKind_SPAN_KIND_EMBEDDING
		}
		return v1.SpanKind_SPAN_KIND_GENERATION
	}
	if name == "guardrail" || len(a.withPrefix("litellm.guardrail.")) > 0 || a.m["guardrail_name"] != nil || a.m["veritrace.guardrail.outcome"] != nil {
		return v1.SpanKind_SPAN_KIND_GUARDRAIL
	}
	if name == "litellm_request" || name == "raw_gen_ai_request" {
		return v1.SpanKind_SPAN_KIND_GENERATION
	}
	if m, _ := a.str("gen_ai.request.model", "gen_ai.system", "gen_ai.provider.name", "llm.model_name"); m != "" {
		return v1.SpanKind_SPAN_KIND_GENERATION
	}
	if a.m["gen_ai.tool.name"] != nil {
		return v1.SpanKind_SPAN_KIND_TOOL
	}
	return v1.SpanKind_SPAN_KIND_OTHER
}

// spanStatus maps the OTLP status; an error's message falls back to the
// first exception event's type and message, then error.type.
func spanStatus(a *attrs, sp *trace.Span) *v1.Status {
	switch sp.GetStatus().GetCode() {
	case trace.Status_STATUS_CODE_OK:
		return &v1.Status{Code: v1.StatusCode_STATUS_CODE_OK}
	case trace.Status_STATUS_CODE_ERROR:
	default:
		return nil
	}
	st := &v1.Status{Code: v1.StatusCode_STATUS_CODE_ERROR, Message: sp.GetStatus().GetMessage()}
	if st.Message == "" {
		for _, e := range sp.GetEvents() {
			if e.GetName() == "exception" {
				ea := newAttrs(e.GetAttributes())
				typ, _ := ea.str("exception.type")
				msg, _ := ea.str("exception.message")
				st.Message = strings.TrimPrefix(typ+": "+msg, ": ")
				break
			}
		}
	}
	if st.Message == "" {
		st.Message, _ = a.str("error.type")
	}
	st.Message = clip(st.Message, 1024)
	return st
}

func mapModel(a *attrs) *v1.Model {
	m := &v1.Model{}
	var k string
	m.Provider, k = a.str("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
	a.use(k)
	m.RequestModel, k = a.str("gen_ai.request.model", "llm.model_name", "langfuse.observation.model.name")
	a.use(k)
	m.ResponseModel, k = a.str("gen_ai.response.model")
	a.use(k)
	m.ResponseId, k = a.str("gen_ai.response.id")
	a.use(k)
	params, _ := a.structured("llm.invocation_parameters", "langfuse.observation.model.parameters")
	pm, _ := params.(map[string]any)
	fparam := func(attr, key string) *float64 {
		if f, k, ok := a.num(attr); ok {
			a.use(k)
			return &f
		}
		if f, ok := anyNum(pm[key]); ok {
			return &f
		}
		return nil
	}
	iparam := func(attr, key string) *int64 {
		if i, k, ok := a.integer(attr); ok {
			a.use(k)
			return &i
		}
		if f, ok := anyNum(pm[key]); ok && f == float64(int64(f)) {
			i := int64(f)
			return &i
		}
		return nil
	}
	m.Temperature = fparam("gen_ai.request.temperature", "temperature")
	m.TopP = fparam("gen_ai.request.top_p", "top_p")
	m.TopK = fparam("gen_ai.request.top_k", "top_k")
	m.MaxTokens = iparam("gen_ai.request.max_tokens", "max_tokens")
	m.Seed = iparam("gen_ai.request.seed", "seed")
	m.StopSequences, k = a.list("gen_ai.request.stop_sequences")
	a.use(k)
	m.FinishReasons, k = a.list("gen_ai.response.finish_reasons", "llm.finish_reason")
	a.use(k)
	if proto.Equal(m, &v1.Model{}) {
		return nil
	}
	return m
}

func mapUsage(a *attrs) *v1.Usage {
	u := &v1.Usage{}
	var k string
	var ok bool
	if u.InputTokens, k, ok = a.integer("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"); ok {
		a.use(k)
	}
	if u.OutputTokens, k, ok = a.integer("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"); ok {
		a.use(k)
	}
	if u.Cost, k, ok = a.num("veritrace.usage.cost", "gen_ai.usage.cost", "llm.cost.total", "litellm.cost.total_cost", "litellm.cost.total", "gen_ai.cost.total_cost"); ok {
		a.use(k)
		u.Currency, k = a.str("veritrace.usage.currency")
		a.use(k)
		if u.Currency == "" {
			u.Currency = "USD"
		}
	} else if cd, k := a.structured("langfuse.observation.cost_details"); cd != nil {
		if f, ok := anyNum(asMap(cd)["total"]); ok {
			u.Cost, u.Currency = f, "USD"
			a.use(k)
		}
	}
	if u.InputTokens < 0 || u.OutputTokens < 0 || u.Cost < 0 {
		return u // validation names the field
	}
	if proto.Equal(u, &v1.Usage{}) {
		return nil
	}
	return u
}

// Content attributes, mapped into Content and so left out of the free
// attributes (the OTLP source keeps them).
var (
	inputKeys  = []string{"gen_ai.input.messages", "gen_ai.prompt", "llm.input_messages"}
	outputKeys = []string{"gen_ai.output.messages", "gen_ai.completion", "llm.output_messages"}
)

func mapContent(kind v1.SpanKind, name string, st *v1.Status, a *attrs, events []*event) *v1.Content {
	c := &v1.Content{}
	if v, k := a.structured("gen_ai.system_instructions"); v != nil {
		c.SystemInstructions = partsText(v)
		a.use(k)
	}
	if v, k := a.structured("gen_ai.input.messages"); v != nil {
		c.InputMessages = messages(v, "user")
		a.use(k)
	}
	if v, k := a.structured("gen_ai.output.messages"); v != nil {
		c.OutputMessages = messages(v, "assistant")
		a.use(k)
	}
	// The details event (current conventions) and per-message events
	// (deprecated) carry content on span events or log records.
	for _, e := range events {
		switch e.name {
		case "gen_ai.client.inference.operation.details":
			if v, _ := e.a.structured("gen_ai.system_instructions"); v != nil && c.SystemInstructions == "" {
				c.SystemInstructions = partsText(v)
			}
			if v, _ := e.a.structured("gen_ai.input.messages"); v != nil && len(c.InputMessages) == 0 {
				c.InputMessages = messages(v, "user")
			}
			if v, _ := e.a.structured("gen_ai.output.messages"); v != nil && len(c.OutputMessages) == 0 {
				c.OutputMessages = messages(v, "assistant")
			}
		case "gen_ai.content.prompt": // deprecated (semantic conventions 1.26, 1.27)
			if v, _ := e.a.structured("gen_ai.prompt"); v != nil && len(c.InputMessages) == 0 {
				c.InputMessages = messages(v, "user")
			}
		case "gen_ai.content.completion":
			if v, _ := e.a.structured("gen_ai.completion"); v != nil && len(c.OutputMessages) == 0 {
				c.OutputMessages = messages(v, "assistant")
			}
		}
	}
	// Deprecated: the whole prompt or completion as one span attribute.
	if v, k := a.structured("gen_ai.prompt"); v != nil && len(c.InputMessages) == 0 {
		c.InputMessages = messages(v, "user")
		a.use(k)
	}
	if v, k := a.structured("gen_ai.completion"); v != nil && len(c.OutputMessages) == 0 {
		c.OutputMessages = messages(v, "assistant")
		a.use(k)
	}
	if len(c.InputMessages) == 0 {
		c.InputMessages = flatMessages(a, "gen_ai.prompt", "")
	}
	if len(c.OutputMessages) == 0 {
		c.OutputMessages = flatMessages(a, "gen_ai.completion", "")
	}
	if len(c.InputMessages) == 0 {
		c.InputMessages = flatMessages(a, "llm.input_messages", "message.")
	}
	if len(c.OutputMessages) == 0 {
		c.OutputMessages = flatMessages(a, "llm.output_messages", "message.")
	}
	if len(c.InputMessages) == 0 && len(c.OutputMessages) == 0 {
		c.InputMessages, c.OutputMessages = eventMessages(events)
	}
	in, inKey := a.str("input.value", "traceloop.entity.input", "langfuse.observation.input")
	out, outKey := a.str("output.value", "traceloop.entity.output", "langfuse.observation.output")
	switch kind {
	case v1.SpanKind_SPAN_KIND_GENERATION:
		// The step's input and output are its messages: mapped or already
		// held by the messages, never kept twice.
		a.use(inKey, outKey)
		if len(c.InputMessages) == 0 && in != "" {
			c.InputMessages = messages(parseJSON(in), "user")
			a.use(inKey)
		}
		if len(c.OutputMessages) == 0 && out != "" {
			c.OutputMessages = messages(parseJSON(out), "assistant")
			a.use(outKey)
		}
	case v1.SpanKind_SPAN_KIND_RETRIEVAL:
		c.Retrieval = mapRetrieval(a, in, inKey)
	case v1.SpanKind_SPAN_KIND_TOOL:
		c.ToolCall = mapTool(a, in, inKey, out, outKey)
	case v1.SpanKind_SPAN_KIND_GUARDRAIL:
		c.Guardrail = mapGuardrail(a, name, st)
	}
	if c.Retrieval == nil && (a.m["gen_ai.retrieval.documents"] != nil || a.m["gen_ai.data_source.id"] != nil) {
		c.Retrieval = mapRetrieval(a, "", "")
	}
	if c.ToolCall == nil && a.m["gen_ai.tool.name"] != nil {
		c.ToolCall = mapTool(a, "", "", "", "")
	}
	if proto.Equal(c, &v1.Content{}) {
		return nil
	}
	return c
}

func parseJSON(s string) any {
	return plain(&common.AnyValue{Value: &common.AnyValue_StringValue{StringValue: s}})
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func firstText(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s := anyText(m[k]); s != "" {
			return s
		}
	}
	return ""
}

// jsonText renders a value for a field that holds JSON text (tool
// arguments): strings as they are, anything else as JSON.
func jsonText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if v == nil {
		return ""
	}
	return anyText(v)
}

// partsText joins the text of GenAI instruction parts (an array of
// {type, content}), or returns a plain string.
func partsText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []any:
		var texts []string
		for _, p := range x {
			if s, ok := p.(string); ok {
				texts = append(texts, s)
				continue
			}
			pm := asMap(p)
			if t := firstText(pm, "content", "text"); t != "" {
				texts = append(texts, t)
			}
		}
		return strings.Join(texts, "\n")
	case map[string]any:
		return firstText(x, "content", "text")
	}
	return anyText(v)
}

// messages reads GenAI messages ({role, parts[, finish_reason]}), OpenAI
// style messages ({role, content, tool_calls}), a single message, or plain
// text (as one message of defaultRole).
func messages(v any, defaultRole string) []*v1.Message {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		if x == "" {
			return nil
		}
		return []*v1.Message{{Role: defaultRole, Parts: []*v1.MessagePart{textPart(x)}}}
	case map[string]any:
		if _, ok := x["messages"]; ok { // {"messages": [...]} (LangChain-style inputs)
			return messages(x["messages"], defaultRole)
		}
		if msg := message(x, defaultRole); msg != nil {
			return []*v1.Message{msg}
		}
		return []*v1.Message{{Role: defaultRole, Parts: []*v1.MessagePart{textPart(anyText(x))}}}
	case []any:
		var out []*v1.Message
		for _, e := range x {
			switch em := e.(type) {
			case map[string]any:
				if msg := message(em, defaultRole); msg != nil {
					out = append(out, msg)
				}
			case string:
				out = append(out, &v1.Message{Role: defaultRole, Parts: []*v1.MessagePart{textPart(em)}})
			}
		}
		return out
	}
	return []*v1.Message{{Role: defaultRole, Parts: []*v1.MessagePart{textPart(anyText(v))}}}
}

func textPart(s string) *v1.MessagePart { return &v1.MessagePart{Part: &v1.MessagePart_Text{Text: s}} }

func message(m map[string]any, defaultRole string) *v1.Message {
	msg := &v1.Message{Role: firstText(m, "role"), FinishReason: firstText(m, "finish_reason")}
	if msg.Role == "" {
		msg.Role = defaultRole
	}
	if parts, ok := m["parts"].([]any); ok {
		for _, p := range parts {
			if mp := part(asMap(p)); mp != nil {
				msg.Parts = append(msg.Parts, mp)
			}
		}
	}
	switch c := m["content"].(type) {
	case string:
		if c != "" {
			msg.Parts = append(msg.Parts, textPart(c))
		}
	case []any: // OpenAI content parts
		for _, p := range c {
			pm := asMap(p)
			if t := firstText(pm, "text", "content"); t != "" {
				msg.Parts = append(msg.Parts, textPart(t))
			} else if u := firstText(asMap(pm["image_url"]), "url"); u != "" {
				msg.Parts = append(msg.Parts, &v1.MessagePart{Part: &v1.MessagePart_Uri{Uri: u}})
			}
		}
	}
	if calls, ok := m["tool_calls"].([]any); ok {
		for _, tc := range calls {
			t := asMap(tc)
			fn := asMap(t["function"])
			msg.Parts = append(msg.Parts, &v1.MessagePart{Part: &v1.MessagePart_ToolCall{ToolCall: &v1.ToolCallRequest{
				Id: firstText(t, "id"), Name: firstText(fn, "name"), Arguments: jsonText(fn["arguments"]),
			}}})
		}
	}
	if id := firstText(m, "tool_call_id"); id != "" && msg.Role == "tool" && len(msg.Parts) == 1 {
		if t, ok := msg.Parts[0].Part.(*v1.MessagePart_Text); ok {
			msg.Parts[0] = &v1.MessagePart{Part: &v1.MessagePart_ToolCallResponse{ToolCallResponse: &v1.ToolCallResponse{Id: id, Result: t.Text}}}
		}
	}
	if len(msg.Parts) == 0 && msg.FinishReason == "" {
		return nil
	}
	return msg
}

// part reads one GenAI message part.
func part(p map[string]any) *v1.MessagePart {
	if p == nil {
		return nil
	}
	switch firstText(p, "type") {
	case "text", "":
		if t := firstText(p, "content", "text"); t != "" {
			return textPart(t)
		}
		return nil
	case "tool_call":
		return &v1.MessagePart{Part: &v1.MessagePart_ToolCall{ToolCall: &v1.ToolCallRequest{
			Id: firstText(p, "id"), Name: firstText(p, "name"), Arguments: jsonText(p["arguments"]),
		}}}
	case "tool_call_response":
		r := p["response"]
		if r == nil {
			r = p["result"]
		}
		return &v1.MessagePart{Part: &v1.MessagePart_ToolCallResponse{ToolCallResponse: &v1.ToolCallResponse{Id: firstText(p, "id"), Result: jsonText(r)}}}
	case "uri", "file":
		if u := firstText(p, "uri", "file_id"); u != "" {
			return &v1.MessagePart{Part: &v1.MessagePart_Uri{Uri: u}}
		}
	case "blob":
		data, err := base64.StdEncoding.DecodeString(firstText(p, "content"))
		if err == nil {
			return &v1.MessagePart{Part: &v1.MessagePart_Blob{Blob: &v1.Blob{MimeType: firstText(p, "mime_type"), Data: data}}}
		}
	case "reasoning":
		return &v1.MessagePart{Part: &v1.MessagePart_Reasoning{Reasoning: firstText(p, "content", "text")}}
	}
	return textPart(anyText(p)) // an unknown part type is kept as its JSON
}

// flatMessages reads flattened messages: "prefix.N.role", "prefix.N.content"
// (deprecated gen_ai.prompt.N / gen_ai.completion.N), or with an inner
// prefix "prefix.N.message.role" (OpenInference), with their tool calls.
func flatMessages(a *attrs, prefix, inner string) []*v1.Message {
	var out []*v1.Message
	for _, g := range a.indexed(prefix) {
		get := func(k string) string { return scalarText(g[inner+k]) }
		msg := &v1.Message{Role: get("role"), FinishReason: get("finish_reason")}
		if c := get("content"); c != "" {
			msg.Parts = append(msg.Parts, textPart(c))
		}
		// OpenInference content parts: message.contents.M.message_content.text
		var keys []string
		for k := range g {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if strings.HasPrefix(k, inner+"contents.") && strings.HasSuffix(k, ".message_content.text") {
				msg.Parts = append(msg.Parts, textPart(scalarText(g[k])))
			}
		}
		calls := map[string]*v1.ToolCallRequest{}
		var order []string
		for _, k := range keys {
			rest, ok := strings.CutPrefix(k, inner+"tool_calls.")
			if !ok {
				continue
			}
			n, field, _ := strings.Cut(rest, ".")
			tc := calls[n]
			if tc == nil {
				tc = &v1.ToolCallRequest{}
				calls[n] = tc
				order = append(order, n)
			}
			switch field {
			case "tool_call.id", "id":
				tc.Id = scalarText(g[k])
			case "tool_call.function.name", "name":
				tc.Name = scalarText(g[k])
			case "tool_call.function.arguments", "arguments":
				tc.Arguments = scalarText(g[k])
			}
		}
		for _, n := range order {
			msg.Parts = append(msg.Parts, &v1.MessagePart{Part: &v1.MessagePart_ToolCall{ToolCall: calls[n]}})
		}
		if len(msg.Parts) > 0 || msg.Role != "" {
			out = append(out, msg)
		}
	}
	return out
}

// eventMessages reads the deprecated per-message events:
// gen_ai.{system,user,assistant,tool}.message and gen_ai.choice, with the
// content in the event's attributes or body.
func eventMessages(events []*event) (in, out []*v1.Message) {
	for _, e := range events {
		role, ok := map[string]string{
			"gen_ai.system.message": "system", "gen_ai.user.message": "user",
			"gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool",
		}[e.name]
		body := asMap(e.body)
		if body == nil {
			body = map[string]any{}
		}
		for _, k := range []string{"content", "role", "tool_calls", "id", "message", "finish_reason"} {
			if _, set := body[k]; !set {
				if v, _ := e.a.structured(k, "gen_ai."+k); v != nil {
					body[k] = v
				}
			}
		}
		switch {
		case ok:
			if id := firstText(body, "id"); id != "" && role == "tool" {
				body["tool_call_id"] = id
			}
			if msg := message(body, role); msg != nil {
				in = append(in, msg)
			}
		case e.name == "gen_ai.choice":
			inner := asMap(body["message"])
			if inner == nil {
				inner = body
			}
			if inner["finish_reason"] == nil {
				inner["finish_reason"] = body["finish_reason"]
			}
			if msg := message(inner, "assistant"); msg != nil {
				out = append(out, msg)
			}
		}
	}
	return in, out
}

func mapRetrieval(a *attrs, in, inKey string) *v1.Retrieval {
	r := &v1.Retrieval{}
	var k string
	r.DataSource, k = a.str("gen_ai.data_source.id")
	a.use(k)
	if r.Query, k = a.str("gen_ai.retrieval.query.text"); r.Query != "" {
		a.use(k)
	} else if in != "" {
		r.Query = in
		a.use(inKey)
	}
	if v, k := a.structured("gen_ai.retrieval.documents"); v != nil {
		a.use(k)
		list, _ := v.([]any)
		for _, d := range list {
			r.Documents = append(r.Documents, document(asMap(d), len(r.Documents)))
		}
	}
	if len(r.Documents) == 0 {
		for _, g := range a.indexed("retrieval.documents") {
			d := map[string]any{}
			for k, v := range g {
				d[strings.TrimPrefix(k, "document.")] = plain(v)
			}
			r.Documents = append(r.Documents, document(d, len(r.Documents)))
		}
	}
	if proto.Equal(r, &v1.Retrieval{}) {
		return nil
	}
	return r
}

// document reads a retrieved document; the metadata (an object or a JSON
// string) may give the source URI, version and digest. A document without
// an id gets "#N", its position.
func document(d map[string]any, n int) *v1.Document {
	meta := asMap(d["metadata"])
	get := func(keys ...string) string {
		if s := firstText(d, keys...); s != "" {
			return s
		}
		return firstText(meta, keys...)
	}
	doc := &v1.Document{
		Id: get("id"), SourceUri: get("source_uri", "uri", "source", "url"),
		Version: get("version"), ContentDigest: get("content_digest", "digest"),
		Text: firstText(d, "content", "text"),
	}
	if doc.Id == "" {
		doc.Id = fmt.Sprintf("#%d", n)
	}
	if f, ok := anyNum(d["score"]); ok {
		doc.Score = f
	}
	return doc
}

func mapTool(a *attrs, in, inKey, out, outKey string) *v1.ToolCall {
	t := &v1.ToolCall{}
	var k string
	t.Name, k = a.str("gen_ai.tool.name", "tool.name")
	a.use(k)
	if t.Name == "" {
		t.Name, _ = a.str("traceloop.entity.name")
	}
	t.CallId, k = a.str("gen_ai.tool.call.id", "tool_call.id")
	a.use(k)
	t.Type, k = a.str("gen_ai.tool.type")
	a.use(k)
	if v, k := a.structured("gen_ai.tool.call.arguments", "tool.parameters"); v != nil {
		t.Arguments = jsonText(v)
		a.use(k)
	} else if in != "" {
		t.Arguments = in
		a.use(inKey)
	}
	if v, k := a.structured("gen_ai.tool.call.result"); v != nil {
		t.Result = jsonText(v)
		a.use(k)
	} else if out != "" {
		t.Result = out
		a.use(outKey)
	}
	if proto.Equal(t, &v1.ToolCall{}) {
		return nil
	}
	return t
}

func mapGuardrail(a *attrs, name string, st *v1.Status) *v1.Guardrail {
	g := &v1.Guardrail{}
	var k string
	if g.Name, k = a.str("veritrace.guardrail.name", "litellm.guardrail.name", "guardrail_name"); g.Name == "" {
		g.Name = name
	}
	a.use(k)
	outcome, k := a.str("veritrace.guardrail.outcome", "litellm.guardrail.status", "guardrail_status")
	a.use(k)
	switch strings.ToLower(outcome) {
	case "passed", "pass", "success", "allowed", "not_run":
		g.Outcome = v1.GuardrailOutcome_GUARDRAIL_OUTCOME_PASSED
	case "flagged", "flag", "warned":
		g.Outcome = v1.GuardrailOutcome_GUARDRAIL_OUTCOME_FLAGGED
	case "modified", "masked", "redacted":
		g.Outcome = v1.GuardrailOutcome_GUARDRAIL_OUTCOME_MODIFIED
	case "blocked", "block", "guardrail_intervened", "intervened", "failure", "failed":
		g.Outcome = v1.GuardrailOutcome_GUARDRAIL_OUTCOME_BLOCKED
	case "":
		if st.GetCode() == v1.StatusCode_STATUS_CODE_ERROR {
			g.Outcome = v1.GuardrailOutcome_GUARDRAIL_OUTCOME_BLOCKED
		}
	}
	if v, k := a.structured("veritrace.guardrail.detail", "litellm.guardrail.response", "guardrail_response"); v != nil {
		g.Detail = jsonText(v)
		a.use(k)
	}
	return g
}

// Version reference attributes (docs/OTLP.md): our own, then the common
// aliases for prompts.
var versionKinds = []struct {
	kind   v1.VersionKind
	word   string
	names  []string
	labels []string
}{
	{v1.VersionKind_VERSION_KIND_PROMPT, "prompt",
		[]string{"veritrace.prompt.name", "gen_ai.prompt.name", "langfuse.observation.prompt.name", "llm.prompt_template.name"},
		[]string{"veritrace.prompt.label", "langfuse.observation.prompt.version", "llm.prompt_template.version"}},
	{v1.VersionKind_VERSION_KIND_POLICY, "policy", []string{"veritrace.policy.name"}, []string{"veritrace.policy.label"}},
	{v1.VersionKind_VERSION_KIND_PIPELINE, "pipeline", []string{"veritrace.pipeline.name"}, []string{"veritrace.pipeline.label"}},
}

// versionRefs reads the version references of a span: veritrace.<kind>.version
// (a registered id, or a label together with veritrace.<kind>.name), or a
// name and a label from our attributes or the common aliases.
func versionRefs(a *attrs) []VersionRef {
	var out []VersionRef
	for _, vk := range versionKinds {
		ref := VersionRef{Kind: vk.kind}
		idKey := "veritrace." + vk.word + ".version"
		if v, k := a.str(idKey); v != "" {
			ref.Attributes = append(ref.Attributes, k)
			if isVersionID(v) {
				ref.ID = v
			} else {
				ref.Label = v
			}
		}
		if ref.ID == "" {
			if n, k := a.str(vk.names...); n != "" {
				ref.Name = n
				ref.Attributes = append(ref.Attributes, k)
			}
			if ref.Label == "" {
				if l, k := a.str(vk.labels...); l != "" {
					ref.Label = l
					ref.Attributes = append(ref.Attributes, k)
				}
			}
		}
		if len(ref.Attributes) > 0 {
			out = append(out, ref)
		}
	}
	return out
}

func isVersionID(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// ResourceAttributes are the resource attributes a mapped span carries
// among its free attributes (when it has none of that key), so that
// queries and aggregates can group by them: service and deployment. A
// value is copied only when it is a scalar of at most maxResourceValue
// bytes: a resource is stored once per trace, and its copies must stay
// small. Every resource attribute stays in the source, and retention
// rules see them all.
var ResourceAttributes = []string{"service.name", "service.version", "service.namespace", "deployment.environment", "deployment.environment.name"}

// maxResourceValue bounds a resource attribute copied into a span.
const maxResourceValue = 256

// freeAttributes are the span's attributes not mapped into structured
// fields, plus the resource attributes of ResourceAttributes, at most
// MaxAttributes (in key order; AttrOmitted counts the rest).
func freeAttributes(a, ra *attrs) map[string]*structpb.Value {
	var keys []string
	for k := range a.m {
		if !a.used[k] && !contentKey(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := map[string]*structpb.Value{}
	for _, k := range ResourceAttributes {
		if v, ok := ra.m[k]; ok && a.m[k] == nil && len(scalarText(v)) > 0 && len(scalarText(v)) <= maxResourceValue {
			out[k] = toValue(v, 0)
		}
	}
	omitted := 0
	for _, k := range keys {
		if len(out) >= MaxAttributes-1 {
			omitted++
			continue
		}
		out[k] = toValue(a.m[k], 0)
	}
	if omitted > 0 {
		out[AttrOmitted] = structpb.NewNumberValue(float64(omitted))
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// contentPrefixes are further content attributes of contentKey: every
// attribute whose key starts with one.
var contentPrefixes = []string{"retrieval.documents."}

// contentKey reports content-bearing attributes that are mapped into
// Content (when present) and never copied into free attributes: the
// structured content holds them, the OTLP source holds them as sent.
func contentKey(k string) bool {
	for _, p := range contentPrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	for _, keys := range [][]string{inputKeys, outputKeys} {
		for _, p := range keys {
			if strings.HasPrefix(k, p) && (len(k) == len(p) || k[len(p)] == '.') {
				return true
			}
		}
	}
	return false
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xc0) == 0x80 {
		n--
	}
	return s[:n]
}
