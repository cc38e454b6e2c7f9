package otlp

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"

	logs "go.opentelemetry.io/proto/slim/otlp/logs/v1"
	trace "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// SourceJSON renders a span's OTLP source as OTLP JSON (hex trace and span
// ids), for people to read; "" when the span has none. The source bytes
// stay authoritative.
func SourceJSON(src *v1.OtlpSource) (string, error) {
	var m proto.Message
	var root idPath
	switch {
	case len(src.GetResourceSpans()) > 0:
		m, root = &trace.ResourceSpans{}, idPath{children: traceIDPaths.children[0].children}
		if err := proto.Unmarshal(src.GetResourceSpans(), m); err != nil {
			return "", fmt.Errorf("decode OTLP source: %w", err)
		}
	case len(src.GetResourceLogs()) > 0:
		m, root = &logs.ResourceLogs{}, idPath{children: logIDPaths.children[0].children}
		if err := proto.Unmarshal(src.GetResourceLogs(), m); err != nil {
			return "", fmt.Errorf("decode OTLP source: %w", err)
		}
	default:
		return "", nil
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		return "", err
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", err
	}
	base64ToHex(doc, root)
	out, err := json.MarshalIndent(doc, "", "  ")
	return string(out), err
}

// base64ToHex rewrites the ids of protojson output to OTLP JSON's hex.
func base64ToHex(v any, p idPath) {
	obj, ok := v.(map[string]any)
	if !ok {
		return
	}
	for _, c := range p.children {
		child, ok := obj[c.key]
		if !ok {
			continue
		}
		if c.size > 0 {
			if s, ok := child.(string); ok {
				if b, err := base64.StdEncoding.DecodeString(s); err == nil {
					obj[c.key] = hex.EncodeToString(b)
				}
			}
			continue
		}
		list, _ := child.([]any)
		for _, e := range list {
			base64ToHex(e, c)
		}
	}
}
