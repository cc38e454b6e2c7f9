package otlp

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"

	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	"google.golang.org/protobuf/types/known/structpb"
)

// attrs is a span's (or event's, or log record's) attributes by key. The
// first occurrence of a key wins, as in the OTel SDKs' attribute maps.
type attrs struct {
	m    map[string]*common.AnyValue
	used map[string]bool // keys mapped into structured fields
}

func newAttrs(kvs []*common.KeyValue) *attrs {
	a := &attrs{m: make(map[string]*common.AnyValue, len(kvs)), used: map[string]bool{}}
	for _, kv := range kvs {
		if _, dup := a.m[kv.GetKey()]; !dup && kv.GetKey() != "" {
			a.m[kv.GetKey()] = kv.GetValue()
		}
	}
	return a
}

// use marks keys as mapped into a structured field, so that they are not
// copied again into the span's free attributes.
func (a *attrs) use(keys ...string) {
	for _, k := range keys {
		a.used[k] = true
	}
}

// str returns the first of keys whose value is a non-empty string (or a
// number or bool, written as text), and marks it used when consume is set.
func (a *attrs) str(keys ...string) (string, string) {
	for _, k := range keys {
		if s := scalarText(a.m[k]); s != "" {
			return s, k
		}
	}
	return "", ""
}

// num returns the first of keys that holds a number (or a numeric string).
func (a *attrs) num(keys ...string) (float64, string, bool) {
	for _, k := range keys {
		if f, ok := number(a.m[k]); ok {
			return f, k, true
		}
	}
	return 0, "", false
}

// integer returns the first of keys that holds an integral number.
func (a *attrs) integer(keys ...string) (int64, string, bool) {
	for _, k := range keys {
		v := a.m[k]
		if i, ok := v.GetValue().(*common.AnyValue_IntValue); ok {
			return i.IntValue, k, true
		}
		if f, ok := number(v); ok && f == math.Trunc(f) && math.Abs(f) < 1<<62 {
			return int64(f), k, true
		}
	}
	return 0, "", false
}

// list returns the first of keys that holds a list of strings: an array,
// a JSON array in a string, or a single string.
func (a *attrs) list(keys ...string) ([]string, string) {
	for _, k := range keys {
		v, ok := a.m[k]
		if !ok {
			continue
		}
		var out []string
		switch x := plain(v).(type) {
		case []any:
			for _, e := range x {
				if s := anyText(e); s != "" {
					out = append(out, s)
				}
			}
		case string:
			out = []string{x}
		}
		if len(out) > 0 {
			return out, k
		}
	}
	return nil, ""
}

// structured returns the first of keys as a JSON-like Go value: a
// structured attribute as is, a string holding JSON parsed. Strings that
// are not JSON are returned as strings.
func (a *attrs) structured(keys ...string) (any, string) {
	for _, k := range keys {
		if v, ok := a.m[k]; ok {
			return plain(v), k
		}
	}
	return nil, ""
}

// withPrefix returns the keys with a prefix, sorted.
func (a *attrs) withPrefix(prefix string) []string {
	var out []string
	for k := range a.m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// indexed groups flattened attributes "prefix.N.rest" by N (in order):
// rest -> value.
func (a *attrs) indexed(prefix string) []map[string]*common.AnyValue {
	groups := map[int]map[string]*common.AnyValue{}
	for _, k := range a.withPrefix(prefix + ".") {
		rest := k[len(prefix)+1:]
		n, sub, ok := strings.Cut(rest, ".")
		i, err := strconv.Atoi(n)
		if !ok || err != nil || i < 0 || i > maxIndexed {
			continue
		}
		if groups[i] == nil {
			groups[i] = map[string]*common.AnyValue{}
		}
		groups[i][sub] = a.m[k]
		a.used[k] = true
	}
	idx := make([]int, 0, len(groups))
	for i := range groups {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	out := make([]map[string]*common.AnyValue, len(idx))
	for j, i := range idx {
		out[j] = groups[i]
	}
	return out
}

// maxIndexed bounds the index of flattened attributes ("llm.input_messages.N").
const maxIndexed = 10_000

// scalarText renders a scalar value as text; "" for none, lists and maps.
func scalarText(v *common.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *common.AnyValue_StringValue:
		return x.StringValue
	case *common.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *common.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *common.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	}
	return ""
}

func number(v *common.AnyValue) (float64, bool) {
	switch x := v.GetValue().(type) {
	case *common.AnyValue_IntValue:
		return float64(x.IntValue), true
	case *common.AnyValue_DoubleValue:
		return x.DoubleValue, !math.IsNaN(x.DoubleValue) && !math.IsInf(x.DoubleValue, 0)
	case *common.AnyValue_StringValue:
		f, err := strconv.ParseFloat(strings.TrimSpace(x.StringValue), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

// plain converts an AnyValue to a JSON-like Go value (string, float64,
// int64, bool, []any, map[string]any). A string that holds a JSON array or
// object is parsed: senders put structured content in JSON strings.
func plain(v *common.AnyValue) any { return plainDepth(v, 0) }

func plainDepth(v *common.AnyValue, depth int) any {
	if depth > maxDepth {
		return nil
	}
	switch x := v.GetValue().(type) {
	case *common.AnyValue_StringValue:
		s := strings.TrimSpace(x.StringValue)
		if len(s) > 1 && (s[0] == '[' || s[0] == '{') {
			if j, ok := readJSON(s); ok {
				return j
			}
		}
		return x.StringValue
	case *common.AnyValue_IntValue:
		return x.IntValue
	case *common.AnyValue_DoubleValue:
		return x.DoubleValue
	case *common.AnyValue_BoolValue:
		return x.BoolValue
	case *common.AnyValue_BytesValue:
		return base64.StdEncoding.EncodeToString(x.BytesValue)
	case *common.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, plainDepth(e, depth+1))
		}
		return out
	case *common.AnyValue_KvlistValue:
		out := make(map[string]any, len(x.KvlistValue.GetValues()))
		for _, kv := range x.KvlistValue.GetValues() {
			if _, dup := out[kv.GetKey()]; !dup {
				out[kv.GetKey()] = plainDepth(kv.GetValue(), depth+1)
			}
		}
		return out
	}
	return nil
}

// maxDepth bounds the nesting of values mapped from OTLP (the span's
// validation allows 32).
const maxDepth = 30

// anyText renders a JSON-like scalar as text.
func anyText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case int64:
		return strconv.FormatInt(x, 10)
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// anyNum reads a JSON-like number (or numeric string).
func anyNum(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case int64:
		return float64(x), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

// toValue converts an AnyValue to a protobuf Value for the span's free
// attributes. Integers beyond 2^53 and non-finite doubles become strings so
// that nothing is rounded silently; bytes become base64.
func toValue(v *common.AnyValue, depth int) *structpb.Value {
	if depth > maxDepth {
		return structpb.NewStringValue("(nested too deep)")
	}
	switch x := v.GetValue().(type) {
	case *common.AnyValue_StringValue:
		return structpb.NewStringValue(x.StringValue)
	case *common.AnyValue_BoolValue:
		return structpb.NewBoolValue(x.BoolValue)
	case *common.AnyValue_IntValue:
		if x.IntValue > 1<<53 || x.IntValue < -(1<<53) {
			return structpb.NewStringValue(strconv.FormatInt(x.IntValue, 10))
		}
		return structpb.NewNumberValue(float64(x.IntValue))
	case *common.AnyValue_DoubleValue:
		if math.IsNaN(x.DoubleValue) || math.IsInf(x.DoubleValue, 0) {
			return structpb.NewStringValue(strconv.FormatFloat(x.DoubleValue, 'g', -1, 64))
		}
		return structpb.NewNumberValue(x.DoubleValue)
	case *common.AnyValue_BytesValue:
		return structpb.NewStringValue(base64.StdEncoding.EncodeToString(x.BytesValue))
	case *common.AnyValue_ArrayValue:
		l := &structpb.ListValue{}
		for _, e := range x.ArrayValue.GetValues() {
			l.Values = append(l.Values, toValue(e, depth+1))
		}
		return structpb.NewListValue(l)
	case *common.AnyValue_KvlistValue:
		s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for _, kv := range x.KvlistValue.GetValues() {
			if _, dup := s.Fields[kv.GetKey()]; !dup {
				s.Fields[kv.GetKey()] = toValue(kv.GetValue(), depth+1)
			}
		}
		return structpb.NewStructValue(s)
	}
	return structpb.NewNullValue()
}
