package otlp

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

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
	// ErrExpandsTooFar is the cause of refusing an export whose entries
	// would take more than the backend's limit: answered like a body over
	// the limit (413, RESOURCE_EXHAUSTED), and not retried.
	ErrExpandsTooFar = errors.New("export too large once stored")
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
	var buf bytes.Buffer
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		if r.ContentLength > 0 && r.ContentLength <= max {
			buf.Grow(int(r.ContentLength) + 1)
		}
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

// hexIDs turns the ids of a span (or link, or log record) that protojson
// decoded from OTLP JSON back into what the sender meant.
//
// OTLP JSON writes ids as hex; protojson reads every bytes field as
// base64, and a hex string is valid base64, so it yields wrong bytes
// without an error: a 32-digit trace id becomes 24 bytes. Those bytes
// re-encode to exactly the digits sent (32 and 16 characters are whole
// base64 quanta), which are then decoded as hex. An id sent as base64
// (16 or 8 bytes after protojson) or with non-hex characters is refused.
func hexIDs(at string, trace, span, parent *[]byte) error {
	if err := hexID(at+"traceId", trace, 16); err != nil {
		return err
	}
	if err := hexID(at+"spanId", span, 8); err != nil {
		return err
	}
	if parent != nil {
		return hexID(at+"parentSpanId", parent, 8)
	}
	return nil
}

func hexID(at string, id *[]byte, size int) error {
	if len(*id) == 0 {
		return nil
	}
	bad := badData("%s: must be %d hex digits (OTLP JSON ids are hex, not base64)", at, 2*size)
	if len(*id) != 2*size*3/4 {
		return bad
	}
	b, err := hex.DecodeString(base64.StdEncoding.EncodeToString(*id))
	if err != nil {
		return bad
	}
	*id = b
	return nil
}

// Marshal encodes a response message in the content type of the request.
func Marshal(contentType string, m proto.Message) ([]byte, error) {
	if contentType == ContentJSON {
		return protojson.Marshal(m)
	}
	return proto.Marshal(m)
}
