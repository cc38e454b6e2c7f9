package otlp

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	collogs "go.opentelemetry.io/proto/slim/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Content types of OTLP/HTTP.
const (
	ContentProtobuf = "application/x-protobuf"
	ContentJSON     = "application/json"
)

// DefaultMaxBytes is the default limit on an OTLP request body after
// decompression.
const DefaultMaxBytes = 16 << 20

// Errors of reading and decoding a request; the HTTP handler maps them to
// status codes (415, 413, 400).
var (
	ErrUnsupportedMediaType = errors.New("unsupported content type: OTLP/HTTP takes application/x-protobuf or application/json")
	ErrUnsupportedEncoding  = errors.New("unsupported Content-Encoding: OTLP/HTTP takes gzip or none")
	ErrTooLarge             = errors.New("request body too large")
)

// BadDataError is a body that is not a valid OTLP message. Its text names
// what is wrong and where, and goes to the client.
type BadDataError struct{ Msg string }

func (e *BadDataError) Error() string { return e.Msg }

func badData(format string, args ...any) error {
	return &BadDataError{Msg: fmt.Sprintf(format, args...)}
}

// MediaType returns the OTLP content type of a Content-Type header value,
// ignoring parameters, or ErrUnsupportedMediaType.
func MediaType(header string) (string, error) {
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return "", ErrUnsupportedMediaType
	}
	switch mt {
	case ContentProtobuf, ContentJSON:
		return mt, nil
	}
	return "", ErrUnsupportedMediaType
}

// ReadBody reads a request body of at most max bytes after decompression
// (gzip or none, per Content-Encoding). Compressed input is inflated only
// up to max+1 bytes: a small body that would inflate past the limit is
// refused with ErrTooLarge without being inflated whole.
func ReadBody(r *http.Request, max int64) ([]byte, error) {
	body := http.MaxBytesReader(nil, r.Body, max)
	var src io.Reader = body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, readError(err, "gzip body")
		}
		defer zr.Close()
		src = zr
	default:
		return nil, ErrUnsupportedEncoding
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 && r.ContentLength <= max && src == io.Reader(body) {
		buf.Grow(int(r.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(src, max+1))
	if err != nil {
		return nil, readError(err, "body")
	}
	if n > max {
		return nil, ErrTooLarge
	}
	return buf.Bytes(), nil
}

func readError(err error, what string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return ErrTooLarge
	}
	if errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, io.ErrUnexpectedEOF) {
		return badData("%s: not valid gzip: %v", what, err)
	}
	return fmt.Errorf("read %s: %w", what, err)
}

// UnmarshalTraces decodes an ExportTraceServiceRequest in the given
// content type.
func UnmarshalTraces(contentType string, body []byte) (*coltrace.ExportTraceServiceRequest, error) {
	req := &coltrace.ExportTraceServiceRequest{}
	return req, unmarshal(contentType, body, req, traceIDPaths)
}

// UnmarshalLogs decodes an ExportLogsServiceRequest in the given content
// type.
func UnmarshalLogs(contentType string, body []byte) (*collogs.ExportLogsServiceRequest, error) {
	req := &collogs.ExportLogsServiceRequest{}
	return req, unmarshal(contentType, body, req, logIDPaths)
}

func unmarshal(contentType string, body []byte, m proto.Message, ids idPath) error {
	if contentType == ContentProtobuf {
		if err := proto.Unmarshal(body, m); err != nil {
			return badData("not a valid OTLP protobuf message: %v", err)
		}
		return nil
	}
	conv, err := hexIDsToBase64(body, ids)
	if err != nil {
		return err
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(conv, m); err != nil {
		return badData("not a valid OTLP JSON message: %v", err)
	}
	return nil
}

// Marshal encodes a response message in the content type of the request.
func Marshal(contentType string, m proto.Message) ([]byte, error) {
	if contentType == ContentJSON {
		return protojson.Marshal(m)
	}
	return proto.Marshal(m)
}

// idPath describes where ids sit in an OTLP JSON document: at a key, the
// size of the id (bytes) or the nested paths below it. Each key is given
// in lowerCamelCase, the OTLP JSON spelling; the proto field name
// (snake_case) is accepted too, as protojson does.
type idPath struct {
	key      string
	size     int // > 0: a hex id of this many bytes
	children []idPath
}

var traceIDPaths = idPath{children: []idPath{{key: "resourceSpans", children: []idPath{
	{key: "scopeSpans", children: []idPath{{key: "spans", children: []idPath{
		{key: "traceId", size: 16}, {key: "spanId", size: 8}, {key: "parentSpanId", size: 8},
		{key: "links", children: []idPath{{key: "traceId", size: 16}, {key: "spanId", size: 8}}},
	}}}},
}}}}

var logIDPaths = idPath{children: []idPath{{key: "resourceLogs", children: []idPath{
	{key: "scopeLogs", children: []idPath{{key: "logRecords", children: []idPath{
		{key: "traceId", size: 16}, {key: "spanId", size: 8},
	}}}},
}}}}

// hexIDsToBase64 rewrites the trace and span ids of an OTLP JSON document
// from hex (OTLP JSON, either case) to base64 (proto3 JSON) so that
// protojson decodes them to the right bytes. Without this, protojson reads
// a 32-digit hex trace id as base64 and silently yields 24 wrong bytes.
// Numbers are kept as written (int64 fields may be strings or numbers).
func hexIDsToBase64(body []byte, root idPath) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, badData("not a valid OTLP JSON message: %v", err)
	}
	if dec.More() {
		return nil, badData("not a valid OTLP JSON message: data after the top-level object")
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, badData("not a valid OTLP JSON message: the top level is not an object")
	}
	if err := rewriteIDs(doc, root, ""); err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

func rewriteIDs(v any, p idPath, path string) error {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil // protojson reports the wrong type
	}
	for _, c := range p.children {
		keys := []string{c.key}
		if sk := snake(c.key); sk != c.key {
			keys = append(keys, sk)
		}
		for _, key := range keys {
			child, ok := obj[key]
			if !ok {
				continue
			}
			at := path + "." + c.key
			if path == "" {
				at = c.key
			}
			if c.size > 0 {
				s, ok := child.(string)
				if !ok {
					if child == nil {
						continue
					}
					return badData("%s: must be a hex string", at)
				}
				b, err := parseHexID(s, c.size)
				if err != nil {
					return badData("%s: %v", at, err)
				}
				obj[key] = base64.StdEncoding.EncodeToString(b)
				continue
			}
			list, ok := child.([]any)
			if !ok {
				continue // protojson reports the wrong type
			}
			for i, e := range list {
				if err := rewriteIDs(e, c, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// parseHexID parses an OTLP JSON id: empty, or exactly 2*size hex digits in
// either case.
func parseHexID(s string, size int) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) != 2*size {
		return nil, fmt.Errorf("must be %d hex digits (OTLP JSON ids are hex, not base64), got %d characters", 2*size, len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("must be %d hex digits (OTLP JSON ids are hex, not base64)", 2*size)
	}
	return b, nil
}

// snake turns a lowerCamelCase key into its snake_case proto name.
func snake(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
