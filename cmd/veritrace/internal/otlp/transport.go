package otlp

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"connectrpc.com/connect"
	collogs "go.opentelemetry.io/proto/slim/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
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
	ExportTraces(ctx context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error)
	ExportLogs(ctx context.Context, req *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error)
}

// NewGRPCHandlers returns the handlers of the OTLP gRPC services
// (TraceService/Export and LogsService/Export), served by connect-go over
// gRPC (and Connect and gRPC-Web), with gzip. The options should carry the
// authentication interceptor and the read limit.
func NewGRPCHandlers(b Backend, opts ...connect.HandlerOption) map[string]http.Handler {
	return map[string]http.Handler{
		TraceExportProcedure: connect.NewUnaryHandler(TraceExportProcedure,
			func(ctx context.Context, req *connect.Request[coltrace.ExportTraceServiceRequest]) (*connect.Response[coltrace.ExportTraceServiceResponse], error) {
				resp, err := b.ExportTraces(ctx, req.Msg)
				if err != nil {
					return nil, grpcError(err)
				}
				return connect.NewResponse(resp), nil
			}, opts...),
		LogsExportProcedure: connect.NewUnaryHandler(LogsExportProcedure,
			func(ctx context.Context, req *connect.Request[collogs.ExportLogsServiceRequest]) (*connect.Response[collogs.ExportLogsServiceResponse], error) {
				resp, err := b.ExportLogs(ctx, req.Msg)
				if err != nil {
					return nil, grpcError(err)
				}
				return connect.NewResponse(resp), nil
			}, opts...),
	}
}

// grpcError makes an overload retryable for OTLP gRPC exporters: they
// retry UNAVAILABLE, but RESOURCE_EXHAUSTED only with RetryInfo.
func grpcError(err error) error {
	if connect.CodeOf(err) == connect.CodeResourceExhausted {
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
	if r.URL.Path != TracesPath && r.URL.Path != LogsPath {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "OTLP/HTTP takes POST", http.StatusMethodNotAllowed)
		return
	}
	ct, err := MediaType(r.Header.Get("Content-Type"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return
	}
	// Authenticate before reading the body: an unauthenticated caller
	// costs no decompression.
	ctx, err := h.b.Admit(r, r.URL.Path)
	if err != nil {
		h.fail(w, ct, err)
		return
	}
	body, err := ReadBody(r, h.max)
	var bad *BadDataError
	switch {
	case errors.Is(err, ErrTooLarge):
		h.status(w, ct, http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted,
			"request body exceeds "+strconv.FormatInt(h.max, 10)+" bytes after decompression")
		return
	case errors.Is(err, ErrUnsupportedEncoding):
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return
	case errors.As(err, &bad):
		h.status(w, ct, http.StatusBadRequest, connect.CodeInvalidArgument, bad.Msg)
		return
	case err != nil:
		// The client went away or the connection failed mid-body.
		h.status(w, ct, http.StatusBadRequest, connect.CodeInvalidArgument, "could not read the request body")
		return
	}
	var resp proto.Message
	if r.URL.Path == TracesPath {
		req, err := UnmarshalTraces(ct, body)
		if err != nil {
			h.fail(w, ct, err)
			return
		}
		tr, err := h.b.ExportTraces(ctx, req)
		if err != nil {
			h.fail(w, ct, err)
			return
		}
		resp = tr
	} else {
		req, err := UnmarshalLogs(ct, body)
		if err != nil {
			h.fail(w, ct, err)
			return
		}
		lr, err := h.b.ExportLogs(ctx, req)
		if err != nil {
			h.fail(w, ct, err)
			return
		}
		resp = lr
	}
	out, err := Marshal(ct, resp)
	if err != nil {
		h.log.ErrorContext(r.Context(), "encode OTLP response", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
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
	code := connect.CodeOf(err)
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
	if httpStatus == http.StatusTooManyRequests || httpStatus == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(httpStatus)
	w.Write(body)
}
