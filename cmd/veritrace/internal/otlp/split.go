package otlp

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	logs "go.opentelemetry.io/proto/slim/otlp/logs/v1"
	resource "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/veritrace/veritrace/audit/bundle"
)

// Signal is what an export carries.
type Signal int

// The signals Veritrace takes.
const (
	Traces Signal = iota
	Logs
)

// Export is an OTLP export request split item by item, so that a bad item
// costs only itself: the containers (the request, each resource and each
// scope) must be well-formed OTLP, but a span or log record that does not
// decode, or a resource or scope that does not, is only marked.
type Export struct {
	Signal Signal
	Groups []*Group
}

// Items returns the number of spans or log records of the export.
func (e *Export) Items() int {
	n := 0
	for _, g := range e.Groups {
		n += len(g.Items)
	}
	return n
}

// Group is one instrumentation scope of one resource, with its items.
type Group struct {
	// Path is where the scope sits in the request, e.g.
	// "resourceSpans[0].scopeSpans[1]".
	Path string
	// ResourceScope is the resource and scope as received, without items:
	// the resource_scope of a resource entry (bundle.ResourceScope).
	ResourceScope []byte
	// Digest is SHA-256(ResourceScope).
	Digest   [32]byte
	Resource *resource.Resource
	Scope    *common.InstrumentationScope
	// Fixed: strings of the resource or scope that were not valid UTF-8
	// were decoded with U+FFFD (bundle.UnmarshalOTLP).
	Fixed bool
	// Err, when set, is why the resource or scope cannot be read: every
	// item of the group is rejected with it.
	Err   error
	Items []*Item
}

// Item is one span or log record.
type Item struct {
	// Raw is the item's OTLP protobuf bytes: as received in a protobuf
	// request, deterministically encoded from a JSON one.
	Raw  []byte
	Span *trace.Span
	Log  *logs.LogRecord
	// Fixed: a string's invalid UTF-8 (or, in JSON, a lone UTF-16
	// surrogate) was replaced with U+FFFD when decoding.
	Fixed bool
	// Err, when set, is why the item cannot be decoded; it is rejected.
	Err error
}

// ItemPath is where item i of g sits in the request.
func (e *Export) ItemPath(g *Group, i int) string {
	if e.Signal == Logs {
		return fmt.Sprintf("%s.logRecords[%d]", g.Path, i)
	}
	return fmt.Sprintf("%s.spans[%d]", g.Path, i)
}

// names of an export's containers: JSON (lowerCamelCase and, as protojson
// accepts, the proto names) and path words.
type signalNames struct {
	resources, scopes, items [2]string
}

var names = map[Signal]signalNames{
	Traces: {[2]string{"resourceSpans", "resource_spans"}, [2]string{"scopeSpans", "scope_spans"}, [2]string{"spans", "spans"}},
	Logs:   {[2]string{"resourceLogs", "resource_logs"}, [2]string{"scopeLogs", "scope_logs"}, [2]string{"logRecords", "log_records"}},
}

// Decode splits an export request (ExportTraceServiceRequest or
// ExportLogsServiceRequest) in the given content type. It fails (with a
// *BadDataError) only when the request is not an OTLP request at all.
func Decode(signal Signal, contentType string, body []byte) (*Export, error) {
	if contentType == ContentJSON {
		return decodeJSON(signal, body)
	}
	return decodeProto(signal, body)
}

// The field numbers of the containers: ExportTraceServiceRequest and
// ExportLogsServiceRequest hold their resources in field 1; ResourceSpans
// and ResourceLogs hold resource 1, scopes 2, schema_url 3; ScopeSpans and
// ScopeLogs hold scope 1, items 2, schema_url 3.
const (
	fieldResources = 1
	fieldScopes    = 2
	fieldItems     = 2
)

// eachField calls fn with each field of the protobuf message b: its number,
// wire type, value (for length-delimited fields, the bytes inside) and its
// whole encoding (tag included).
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, val, whole []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		val := b[n : n+m]
		if typ == protowire.BytesType {
			val, _ = protowire.ConsumeBytes(b[n:])
		}
		if err := fn(num, typ, val, b[:n+m]); err != nil {
			return err
		}
		b = b[n+m:]
	}
	return nil
}

func decodeProto(signal Signal, body []byte) (*Export, error) {
	nm := names[signal]
	ex := &Export{Signal: signal}
	ri := 0
	err := eachField(body, func(num protowire.Number, typ protowire.Type, rsBytes, _ []byte) error {
		if num != fieldResources {
			return nil // unknown fields are ignored
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("%s: not a message", nm.resources[0])
		}
		at := fmt.Sprintf("%s[%d]", nm.resources[0], ri)
		ri++
		// The resource's own fields (resource, schema URL, any unknown
		// field) as received, and its scopes.
		var own []byte
		var scopes [][]byte
		err := eachField(rsBytes, func(num protowire.Number, typ protowire.Type, val, whole []byte) error {
			if num == fieldScopes {
				if typ != protowire.BytesType {
					return fmt.Errorf("%s.%s: not a message", at, nm.scopes[0])
				}
				scopes = append(scopes, val)
				return nil
			}
			own = append(own, whole...)
			return nil
		})
		if err != nil {
			return err
		}
		for si, sc := range scopes {
			g := &Group{Path: fmt.Sprintf("%s.%s[%d]", at, nm.scopes[0], si)}
			var scopeOwn []byte
			err := eachField(sc, func(num protowire.Number, typ protowire.Type, val, whole []byte) error {
				if num == fieldItems {
					if typ != protowire.BytesType {
						return fmt.Errorf("%s.%s: not a message", g.Path, nm.items[0])
					}
					g.Items = append(g.Items, &Item{Raw: val})
					return nil
				}
				scopeOwn = append(scopeOwn, whole...)
				return nil
			})
			if err != nil {
				return err
			}
			rsc := append([]byte(nil), own...)
			rsc = protowire.AppendTag(rsc, fieldScopes, protowire.BytesType)
			rsc = protowire.AppendBytes(rsc, scopeOwn)
			g.setResourceScope(rsc)
			for _, it := range g.Items {
				it.decode(signal)
			}
			ex.Groups = append(ex.Groups, g)
		}
		return nil
	})
	if err != nil {
		return nil, badData("not a valid OTLP protobuf request: %v", err)
	}
	return ex, nil
}

// setResourceScope sets the group's resource and scope from their bytes.
func (g *Group) setResourceScope(b []byte) {
	g.ResourceScope = b
	g.Digest = sha256.Sum256(b)
	rs, fixed, err := bundle.ResourceScope(b)
	if err != nil {
		g.Err = badData("%s: the resource or scope is not valid OTLP: %v", g.Path, err)
		return
	}
	g.Resource, g.Scope, g.Fixed = rs.GetResource(), rs.GetScopeSpans()[0].GetScope(), fixed
}

// decode decodes the item's bytes.
func (it *Item) decode(signal Signal) {
	var err error
	if signal == Logs {
		it.Log = &logs.LogRecord{}
		it.Fixed, err = bundle.UnmarshalOTLP(it.Raw, it.Log)
	} else {
		it.Span = &trace.Span{}
		it.Fixed, err = bundle.UnmarshalOTLP(it.Raw, it.Span)
	}
	if err != nil {
		it.Span, it.Log = nil, nil
		it.Err = badData("not a valid OTLP message: %v", err)
	}
}

// jsonObject reads a JSON object's members; null reads as an empty object.
func jsonObject(b []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// member returns the first of keys present in m (and not null).
func member(m map[string]json.RawMessage, keys ...string) json.RawMessage {
	for _, k := range keys {
		if v, ok := m[k]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return v
		}
	}
	return nil
}

// jsonArray reads a JSON array (absent: empty).
func jsonArray(b json.RawMessage) ([]json.RawMessage, error) {
	if b == nil {
		return nil, nil
	}
	var out []json.RawMessage
	err := json.Unmarshal(b, &out)
	return out, err
}

var jsonItem = protojson.UnmarshalOptions{DiscardUnknown: true}

func decodeJSON(signal Signal, body []byte) (*Export, error) {
	nm := names[signal]
	bad := func(err error) (*Export, error) { return nil, badData("not a valid OTLP JSON request: %v", err) }
	top, err := jsonObject(body)
	if err != nil {
		return bad(err)
	}
	rss, err := jsonArray(member(top, nm.resources[:]...))
	if err != nil {
		return bad(err)
	}
	ex := &Export{Signal: signal}
	for ri, rsJSON := range rss {
		at := fmt.Sprintf("%s[%d]", nm.resources[0], ri)
		rs, err := jsonObject(rsJSON)
		if err != nil {
			return bad(fmt.Errorf("%s: %v", at, err))
		}
		scopes, err := jsonArray(member(rs, nm.scopes[:]...))
		if err != nil {
			return bad(fmt.Errorf("%s: %v", at, err))
		}
		for si, scJSON := range scopes {
			g := &Group{Path: fmt.Sprintf("%s.%s[%d]", at, nm.scopes[0], si)}
			sc, err := jsonObject(scJSON)
			if err != nil {
				return bad(fmt.Errorf("%s: %v", g.Path, err))
			}
			items, err := jsonArray(member(sc, nm.items[:]...))
			if err != nil {
				return bad(fmt.Errorf("%s: %v", g.Path, err))
			}
			g.Err = g.resourceScopeJSON(rs, sc)
			for ii, itJSON := range items {
				it := &Item{}
				it.decodeJSON(signal, fmt.Sprintf("%s.", ex.ItemPath(g, ii)), itJSON)
				g.Items = append(g.Items, it)
			}
			ex.Groups = append(ex.Groups, g)
		}
	}
	return ex, nil
}

// resourceScopeJSON decodes the resource and scope of a JSON request and
// encodes them as a resource entry's resource_scope.
func (g *Group) resourceScopeJSON(rs, sc map[string]json.RawMessage) error {
	res, scope := &resource.Resource{}, &common.InstrumentationScope{}
	fixed := false
	if b := member(rs, "resource"); b != nil {
		b, n := fixJSONText(b)
		fixed = fixed || n > 0
		if err := jsonItem.Unmarshal(b, res); err != nil {
			return badData("%s: the resource is not valid OTLP JSON: %v", g.Path, err)
		}
	}
	if b := member(sc, "scope"); b != nil {
		b, n := fixJSONText(b)
		fixed = fixed || n > 0
		if err := jsonItem.Unmarshal(b, scope); err != nil {
			return badData("%s: the scope is not valid OTLP JSON: %v", g.Path, err)
		}
	}
	var rsURL, scURL string
	for _, u := range []struct {
		raw json.RawMessage
		to  *string
	}{{member(rs, "schemaUrl", "schema_url"), &rsURL}, {member(sc, "schemaUrl", "schema_url"), &scURL}} {
		if u.raw != nil && json.Unmarshal(u.raw, u.to) != nil {
			return badData("%s: schemaUrl is not a string", g.Path)
		}
	}
	b, err := deterministic.Marshal(&trace.ResourceSpans{Resource: res, SchemaUrl: rsURL,
		ScopeSpans: []*trace.ScopeSpans{{Scope: scope, SchemaUrl: scURL}}})
	if err != nil {
		return badData("%s: %v", g.Path, err)
	}
	g.setResourceScope(b)
	g.Fixed = g.Fixed || fixed
	return g.Err
}

// decodeJSON decodes one item of a JSON request: its text made valid
// (fixJSONText), read as OTLP JSON (hex ids), and encoded as protobuf.
func (it *Item) decodeJSON(signal Signal, at string, raw json.RawMessage) {
	b, n := fixJSONText(raw)
	it.Fixed = n > 0
	var err error
	if signal == Logs {
		lr := &logs.LogRecord{}
		if err = jsonItem.Unmarshal(b, lr); err == nil {
			err = hexIDs(at, &lr.TraceId, &lr.SpanId, nil)
		}
		if err == nil {
			it.Raw, err = deterministic.Marshal(lr)
			it.Log = lr
		}
	} else {
		sp := &trace.Span{}
		if err = jsonItem.Unmarshal(b, sp); err == nil {
			err = hexIDs(at, &sp.TraceId, &sp.SpanId, &sp.ParentSpanId)
		}
		for l, link := range sp.GetLinks() {
			if err == nil {
				err = hexIDs(fmt.Sprintf("%slinks[%d].", at, l), &link.TraceId, &link.SpanId, nil)
			}
		}
		if err == nil {
			it.Raw, err = deterministic.Marshal(sp)
			it.Span = sp
		}
	}
	if err != nil {
		it.Span, it.Log, it.Raw = nil, nil, nil
		if _, ok := err.(*BadDataError); !ok {
			err = badData("not valid OTLP JSON: %v", err)
		}
		it.Err = err
	}
}

// fixJSONText makes the strings of a JSON text decodable by protojson,
// which refuses what OTLP senders sometimes send: a lone UTF-16 surrogate
// escape (OpenTelemetry JS cuts strings between the two halves of a
// surrogate pair when it truncates a value) becomes \ufffd, and bytes that
// are not valid UTF-8 become U+FFFD. It returns the text and how many
// replacements it made.
func fixJSONText(b []byte) ([]byte, int) {
	n := 0
	var out []byte // nil until the first replacement
	inString := false
	last := 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(b):
			if b[i+1] != 'u' || i+6 > len(b) {
				i++
				continue
			}
			r, ok := hex4(b[i+2 : i+6])
			if !ok {
				i += 5
				continue
			}
			lone := false
			switch {
			case r >= 0xd800 && r < 0xdc00: // high half: a low half must follow
				low, ok2 := rune(0), false
				if i+12 <= len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
					low, ok2 = hex4(b[i+8 : i+12])
				}
				if ok2 && low >= 0xdc00 && low < 0xe000 {
					i += 11
					continue
				}
				lone = true
			case r >= 0xdc00 && r < 0xe000:
				lone = true
			}
			if lone {
				out = append(out, b[last:i]...)
				out = append(out, `\ufffd`...)
				last = i + 6
				n++
			}
			i += 5
		}
	}
	if out != nil {
		b = append(out, b[last:]...)
	}
	if !utf8.Valid(b) {
		n++
		b = bytes.ToValidUTF8(b, []byte("\uFFFD"))
	}
	return b, n
}

func hex4(b []byte) (rune, bool) {
	v, err := strconv.ParseUint(string(b), 16, 16)
	return rune(v), err == nil
}
