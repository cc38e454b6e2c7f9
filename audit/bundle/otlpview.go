package bundle

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	common "go.opentelemetry.io/proto/slim/otlp/common/v1"
	logs "go.opentelemetry.io/proto/slim/otlp/logs/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// otlpText renders a span's OTLP source (the span or log record as the
// exporter sent it, with its resource and scope: resourceScope holds those
// of a span that refers to a resource entry, see OTLPMessage) as text for
// the report: every attribute and event, ids in hex, every string the
// sender chose quoted. "" when the span has none.
func otlpText(src *v1.OtlpSource, resourceScope []byte) string {
	var b strings.Builder
	m, err := OTLPMessage(src, resourceScope)
	if err != nil {
		return "(undecodable OTLP source: " + err.Error() + ")"
	}
	if f := FormOf(src); (f == OTLPSpan || f == OTLPLogRecord) && resourceScope == nil {
		b.WriteString("(its resource and scope are not in this bundle: their entry was erased)\n")
	}
	switch rs := m.(type) {
	case *trace.ResourceSpans:
		writeAttrs(&b, "resource", rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			fmt.Fprintf(&b, "scope: %q version %q\n", ss.GetScope().GetName(), ss.GetScope().GetVersion())
			for _, sp := range ss.GetSpans() {
				fmt.Fprintf(&b, "span: %q kind %s trace_id %x span_id %x parent %x\n", sp.GetName(), sp.GetKind(), sp.GetTraceId(), sp.GetSpanId(), sp.GetParentSpanId())
				fmt.Fprintf(&b, "time: %s to %s\n", nanoTime(sp.GetStartTimeUnixNano()), nanoTime(sp.GetEndTimeUnixNano()))
				if st := sp.GetStatus(); st != nil {
					fmt.Fprintf(&b, "status: %s %q\n", st.GetCode(), st.GetMessage())
				}
				writeAttrs(&b, "attributes", sp.GetAttributes())
				for _, e := range sp.GetEvents() {
					fmt.Fprintf(&b, "event %q at %s\n", e.GetName(), nanoTime(e.GetTimeUnixNano()))
					writeAttrs(&b, "  attributes", e.GetAttributes())
				}
				for _, l := range sp.GetLinks() {
					fmt.Fprintf(&b, "link: trace_id %x span_id %x\n", l.GetTraceId(), l.GetSpanId())
				}
			}
		}
	case *logs.ResourceLogs:
		rl := rs
		writeAttrs(&b, "resource", rl.GetResource().GetAttributes())
		for _, sl := range rl.GetScopeLogs() {
			fmt.Fprintf(&b, "scope: %q version %q\n", sl.GetScope().GetName(), sl.GetScope().GetVersion())
			for _, lr := range sl.GetLogRecords() {
				fmt.Fprintf(&b, "log record: event %q at %s, severity %s, trace_id %x span_id %x\n", lr.GetEventName(), nanoTime(lr.GetTimeUnixNano()),
					lr.GetSeverityNumber(), lr.GetTraceId(), lr.GetSpanId())
				if lr.GetBody() != nil {
					fmt.Fprintf(&b, "body: %s\n", anyValueText(lr.GetBody(), 0))
				}
				writeAttrs(&b, "attributes", lr.GetAttributes())
			}
		}
	}
	return b.String()
}

func nanoTime(n uint64) string {
	if n == 0 {
		return "(unset)"
	}
	// OTLP times are unsigned: from 2^63 ns (2262) on they do not fit an
	// int64 of nanoseconds.
	return time.Unix(int64(n/1e9), int64(n%1e9)).UTC().Format(time.RFC3339Nano)
}

func writeAttrs(b *strings.Builder, title string, kvs []*common.KeyValue) {
	if len(kvs) == 0 {
		return
	}
	fmt.Fprintf(b, "%s:\n", title)
	for _, kv := range kvs {
		fmt.Fprintf(b, "  %q = %s\n", kv.GetKey(), anyValueText(kv.GetValue(), 0))
	}
}

func anyValueText(v *common.AnyValue, depth int) string {
	if depth > 32 {
		return "…"
	}
	switch x := v.GetValue().(type) {
	case *common.AnyValue_StringValue:
		return strconv.Quote(x.StringValue)
	case *common.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *common.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *common.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *common.AnyValue_BytesValue:
		if len(x.BytesValue) <= 32 {
			return "0x" + hex.EncodeToString(x.BytesValue)
		}
		return "base64:" + base64.StdEncoding.EncodeToString(x.BytesValue)
	case *common.AnyValue_ArrayValue:
		var parts []string
		for _, e := range x.ArrayValue.GetValues() {
			parts = append(parts, anyValueText(e, depth+1))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case *common.AnyValue_KvlistValue:
		var parts []string
		for _, kv := range x.KvlistValue.GetValues() {
			parts = append(parts, strconv.Quote(kv.GetKey())+": "+anyValueText(kv.GetValue(), depth+1))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return "null"
}
