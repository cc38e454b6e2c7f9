package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	collogs "go.opentelemetry.io/proto/slim/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Paths and procedures of OTLP.
const (
	TracesPath = "/v1/traces"
	LogsPath   = "/v1/logs"
	// The gRPC procedures (the OTLP protos' service names: the messages come
	// from the slim module, whose package names differ but whose wire
	// format is OTLP's).
	TraceExportProcedure = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
	LogsExportProcedure  = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
)

// RetryAfterSeconds is the Retry-After an overloaded server sends.
const RetryAfterSeconds = 2

// Backend does the work behind the OTLP transports. Its errors are
// *connect.Error values whose codes the transports translate (docs/OTLP.md).
type Backend interface {
	// Admit authenticates and authorises an OTLP/HTTP request to path
	// (TracesPath or LogsPath) and returns the context to handle it in.
	Admit(r *http.Request, path string) (context.Context, error)
	// Begin takes room to read and handle one more export, r (so that the
	// exports in progress bound the memory they hold), and returns the
	// function that gives it back; it may wait for room while ctx lives.
	// It is called before r's body is read and may replace r.Body (with
	// one that ends a body that stalls, answering through w's deadlines).
	Begin(ctx context.Context, w http.ResponseWriter, r *http.Request) (release func(), err error)
	// Export appends an export's items (Decode) and says which it rejected.
	ExportTraces(ctx context.Context, ex *Export) (*coltrace.ExportTraceServiceResponse, error)
	ExportLogs(ctx context.Context, ex *Export) (*collogs.ExportLogsServiceResponse, error)
}

// rawRequest is an export request's bytes: the handlers split it item by
// item themselves (Decode), so that a bad item costs only itself, where a
// codec would refuse the whole request.
type rawRequest struct{ body []byte }

// rawCodec reads requests as their bytes and writes responses as protobuf
// or, for the Connect protocol's JSON, proto JSON. A JSON request is read
// as OTLP JSON (hex ids).
type rawCodec struct{ name string }

func (c rawCodec) Name() string { return c.name }

func (c rawCodec) Marshal(m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("cannot marshal %T", m)
	}
	if c.name == "json" {
		return protojson.Marshal(pm)
	}
	return proto.Marshal(pm)
}

func (c rawCodec) Unmarshal(b []byte, m any) error {
	switch x := m.(type) {
	case *rawRequest:
		x.body = append([]byte(nil), b...)
		return nil
	case proto.Message:
		if c.name == "json" {
			return protojson.Unmarshal(b, x)
		}
		return proto.Unmarshal(b, x)
	}
	return fmt.Errorf("cannot unmarshal into %T", m)
}

// requestContentType is the OTLP content type of a gRPC, gRPC-Web or
// Connect request, from its codec.
func requestContentType(h http.Header) string {
	if strings.Contains(h.Get("Content-Type"), "json") {
		return ContentJSON
	}
	return ContentProtobuf
}

// NewGRPCHandlers returns the handlers of the OTLP gRPC services
// (TraceService/Export and LogsService/Export), served by connect-go over
// gRPC (and Connect and gRPC-Web), with gzip. The options should carry the
// authentication interceptor and the read limit.
func NewGRPCHandlers(b Backend, opts ...connect.HandlerOption) map[string]http.Handler {
	opts = append(opts, connect.WithCodec(rawCodec{"proto"}), connect.WithCodec(rawCodec{"json"}))
	return map[string]http.Handler{
		TraceExportProcedure: connect.NewUnaryHandler(TraceExportProcedure,
			func(ctx context.Context, req *connect.Request[rawRequest]) (*connect.Response[coltrace.ExportTraceServiceResponse], error) {
				ex, err := Decode(Traces, requestContentType(req.Header()), req.Msg.body)
				if err != nil {
					return nil, connect.NewError(connect.CodeInvalidArgument, err)
				}
				resp, err := b.ExportTraces(ctx, ex)
				if err != nil {
					return nil, GRPCError(err)
				}
				return connect.NewResponse(resp), nil
			}, opts...),
		LogsExportProcedure: connect.NewUnaryHandler(LogsExportProcedure,
			func(ctx context.Context, req *connect.Request[rawRequest]) (*connect.Response[collogs.ExportLogsServiceResponse], error) {
				ex, err := Decode(Logs, requestContentType(req.Header()), req.Msg.body)
				if err != nil {
					return nil, connect.NewError(connect.CodeInvalidArgument, err)
				}
				resp, err := b.ExportLogs(ctx, ex)
				if err != nil {
					return nil, GRPCError(err)
				}
				return connect.NewResponse(resp), nil
			}, opts...),
	}
}

// GRPCError makes an overload retryable for OTLP gRPC exporters: they
// retry UNAVAILABLE, but RESOURCE_EXHAUSTED only with RetryInfo. Every
// refusal of a valid export for load goes through it: the ledger's, and
// the server's bound of in-flight bytes (rpc, inflight.gate). An export
// too large (ErrTooLarge, ErrExpandsTooFar) stays RESOURCE_EXHAUSTED: it
// is the client's data, and would be refused again.
func GRPCError(err error) error {
	if connect.CodeOf(err) == connect.CodeResourceExhausted && !errors.Is(err, ErrExpandsTooFar) && !errors.Is(err, ErrTooLarge) {
		return connect.NewError(connect.CodeUnavailable, errors.New(errMessage(err)))
	}
	return err
}

func errMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

// NewHTTPHandler returns the OTLP/HTTP handler: POST TracesPath and
// LogsPath, with application/x-protobuf or application/json bodies, gzip
// or not, at most maxBytes after decompression; the reply is in the
// request's content type.
func NewHTTPHandler(b Backend, maxBytes int64, log *slog.Logger) http.Handler {
	return &httpHandler{b: b, max: maxBytes, log: log}
}

type httpHandler struct {
	b   Backend
	max int64
	log *slog.Logger
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		// A panic costs its request, never the server, and is answered
		// like the gRPC handlers' (connect.WithRecover): an internal error.
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.ErrorContext(r.Context(), "OTLP/HTTP handler panic", "path", r.URL.Path, "panic", fmt.Sprint(p))
			h.status(w, ContentJSON, http.StatusInternalServerError, connect.CodeInternal, "internal error")
		}
	}()
	if r.URL.Path != TracesPath && r.URL.Path != LogsPath {
		http.NotFound(w, r)
		return
	}
	// Every error answer is a google.rpc.Status (OTLP/HTTP), in the
	// request's content type, or in JSON when that is not an OTLP one.
	ct, ctErr := MediaType(r.Header.Get("Content-Type"))
	if ctErr != nil {
		ct = ContentJSON
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.status(w, ct, http.StatusMethodNotAllowed, connect.CodeUnimplemented, "OTLP/HTTP takes POST, not "+r.Method)
		return
	}
	if ctErr != nil {
		h.status(w, ct, http.StatusUnsupportedMediaType, connect.CodeInvalidArgument, ctErr.Error())
		return
	}
	// Authenticate before reading the body: an unauthenticated caller
	// costs no decompression.
	ctx, err := h.b.Admit(r, r.URL.Path)
	if err != nil {
		h.fail(w, ct, err)
		return
	}
	release, err := h.b.Begin(ctx, w, r)
	if err != nil {
		h.fail(w, ct, err)
		return
	}
	defer release()
	body, err := ReadBody(r, h.max)
	var bad *BadDataError
	switch {
	case errors.Is(err, ErrTooLarge):
		h.status(w, ct, http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted,
			"request body exceeds "+strconv.FormatInt(h.max, 10)+" bytes after decompression")
		return
	case errors.Is(err, ErrUnsupportedEncoding):
		h.status(w, ct, http.StatusUnsupportedMediaType, connect.CodeInvalidArgument, err.Error())
		return
	case errors.As(err, &bad):
		h.status(w, ct, http.StatusBadRequest, connect.CodeInvalidArgument, bad.Msg)
		return
	case errors.As(err, new(*connect.Error)):
		// The server cut a body that made no progress (--body-timeout,
		// --min-body-rate): the error says so in words.
		h.fail(w, ct, err)
		return
	case err != nil:
		// The client went away or the connection failed mid-body.
		h.status(w, ct, http.StatusBadRequest, connect.CodeInvalidArgument, "could not read the request body")
		return
	}
	signal := Traces
	if r.URL.Path == LogsPath {
		signal = Logs
	}
	ex, err := Decode(signal, ct, body)
	if err != nil {
		h.fail(w, ct, err)
		return
	}
	var resp proto.Message
	if signal == Traces {
		resp, err = h.b.ExportTraces(ctx, ex)
	} else {
		resp, err = h.b.ExportLogs(ctx, ex)
	}
	if err != nil {
		h.fail(w, ct, err)
		return
	}
	out, err := Marshal(ct, resp)
	if err != nil {
		h.log.ErrorContext(r.Context(), "encode OTLP response", "err", err)
		h.status(w, ct, http.StatusInternalServerError, connect.CodeInternal, "internal error")
		return
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// fail answers an error with the status OTLP/HTTP prescribes for it and a
// google.rpc.Status body.
func (h *httpHandler) fail(w http.ResponseWriter, ct string, err error) {
	var bad *BadDataError
	if errors.As(err, &bad) {
		h.status(w, ct, http.StatusBadRequest, connect.CodeInvalidArgument, bad.Msg)
		return
	}
	if errors.Is(err, ErrExpandsTooFar) {
		h.status(w, ct, http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted, errMessage(err))
		return
	}
	code := connect.CodeOf(err)
	var ce *connect.Error
	if errors.As(err, &ce) {
		// The limiter of failed authentications says how long to wait.
		if ra := ce.Meta().Get("Retry-After"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
	}
	h.status(w, ct, HTTPStatus(code), code, errMessage(err))
}

// HTTPStatus is the OTLP/HTTP status of a Connect code: bad data is 400,
// never a 5xx; overload is 429 (resource exhausted) or 503, both retryable.
func HTTPStatus(code connect.Code) int {
	switch code {
	case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeOutOfRange, connect.CodeAlreadyExists:
		return http.StatusBadRequest
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeResourceExhausted:
		return http.StatusTooManyRequests
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded, connect.CodeAborted, connect.CodeCanceled:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (h *httpHandler) status(w http.ResponseWriter, ct string, httpStatus int, code connect.Code, msg string) {
	body, err := Marshal(ct, &spb.Status{Code: int32(code), Message: msg})
	if err != nil {
		http.Error(w, msg, httpStatus)
		return
	}
	if (httpStatus == http.StatusTooManyRequests || httpStatus == http.StatusServiceUnavailable) && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(httpStatus)
	w.Write(body)
}
