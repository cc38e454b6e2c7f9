package rpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit"
	"github.com/veritrace/veritrace/audit/bundle"
	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/retention"
)

// TenantHeader names the tenant of a request. Without it, a key bound to
// one tenant acts on that tenant, any other key on "default".
const TenantHeader = "Veritrace-Tenant"

// DefaultOTLPMaxConcurrent is the default of OTLPOptions.MaxConcurrent.
const DefaultOTLPMaxConcurrent = 64

// DefaultMaxRequestBytes is the default limit on a request message.
const DefaultMaxRequestBytes = 4 << 20

// DefaultMaxTraceAnswerBytes is the default Options.MaxTraceAnswerBytes.
const DefaultMaxTraceAnswerBytes = 4 << 20

// Options configure NewHandler.
type Options struct {
	// MaxRequestBytes limits a request message (default 4 MiB).
	MaxRequestBytes int
	// MaxTraceAnswerBytes caps the span content (span, otlp_json,
	// decode_error) one GetTrace answer gives, and the payloads it holds in
	// memory; the rest is paged (next_page_token). The tree and the entry
	// headers, at most audit.MaxPathSpans, come with every page. Default
	// DefaultMaxTraceAnswerBytes.
	MaxTraceAnswerBytes int
	// AllowPlaintextKeys accepts API keys over plaintext HTTP from
	// non-loopback addresses: for a proxy that terminates TLS. Off by default.
	AllowPlaintextKeys bool
	Logger             *slog.Logger
	// Now is the clock (key expiry, access records). Default time.Now.
	Now func() time.Time
	// RefusalPeriod is how long refused requests of one burst (one peer,
	// one key) are counted before a summary is written to the access log
	// (docs/ACCESS.md). Default DefaultRefusalPeriod; negative: every
	// refusal is recorded on its own.
	RefusalPeriod time.Duration
	// AuthFailureBurst and AuthFailureRate limit, per peer, the requests
	// that fail authentication before the peer is answered
	// resource_exhausted (defaults DefaultAuthFailureBurst and
	// DefaultAuthFailureRate per second).
	AuthFailureBurst int
	AuthFailureRate  float64
	// Retention classifies appended spans and serves RetentionService.
	// Default: a retention.Service over the ledger, without background
	// sweeps (the caller runs those).
	Retention *retention.Service
	// OTLP configures OpenTelemetry ingest.
	OTLP OTLPOptions
	// MaxInflightBytes bounds the bytes of append requests (AppendSpans,
	// RegisterVersion, OTLP exports over every transport) read and handled
	// at once, server-wide; more wait for room (back-pressure). Default
	// DefaultInflightRequests maximal Connect requests; never below the
	// largest single request (MaxRequestBytes, OTLP.MaxBytes).
	MaxInflightBytes int64
	// MaxQueueWait is how long a request waits for room before it is
	// refused with resource_exhausted (an OTLP export waiting for an
	// export slot: unavailable; its two waits together last at most
	// this long): nil, DefaultMaxQueueWait; zero (or
	// less), as long as the request lives, that is as long as its client
	// waits (serve --max-queue-wait takes the same values). QueueWait
	// says which.
	MaxQueueWait *time.Duration
	// MaxKeyInflightBytes bounds the bytes of append requests one API key
	// holds under MaxInflightBytes at once; its further requests wait for
	// room like any other (default: half of MaxInflightBytes; never below
	// the largest single request nor above MaxInflightBytes). So one
	// app's key, stalled or flooding, leaves room for the others.
	MaxKeyInflightBytes int64
	// BodyTimeout is how long an admitted append's body may make no
	// progress: a body that sends nothing for that long is cut and its
	// bytes released (default DefaultBodyTimeout).
	BodyTimeout time.Duration
	// MinBodyRate is the least average rate, in bytes a second, at which
	// an admitted append's body must arrive once BodyTimeout has passed
	// since its admission: a body behind it is cut and its bytes
	// released (default DefaultMinBodyRate).
	MinBodyRate int64
	// otlpAppend replaces the ledger's Append for OTLP ingest, for tests
	// that inject storage faults.
	otlpAppend func(ctx context.Context, tenant string, recs []ledger.Record) ([]ledger.Receipt, error)
}

// QueueWait returns how long a request waits for room before it is
// refused (MaxQueueWait, or its default); 0: as long as its client waits.
func (opts Options) QueueWait() time.Duration {
	if opts.MaxQueueWait == nil {
		return DefaultMaxQueueWait
	}
	return max(*opts.MaxQueueWait, 0)
}

func (opts *Options) defaults(l *ledger.Ledger) {
	if opts.MaxTraceAnswerBytes <= 0 {
		opts.MaxTraceAnswerBytes = DefaultMaxTraceAnswerBytes
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.OTLP.MaxBytes <= 0 {
		opts.OTLP.MaxBytes = otlp.DefaultMaxBytes
	}
	if opts.OTLP.MaxConcurrent <= 0 {
		opts.OTLP.MaxConcurrent = DefaultOTLPMaxConcurrent
	}
	if opts.OTLP.MaxKeyConcurrent <= 0 {
		opts.OTLP.MaxKeyConcurrent = opts.OTLP.MaxConcurrent / 2
	}
	opts.OTLP.MaxKeyConcurrent = min(max(opts.OTLP.MaxKeyConcurrent, 1), opts.OTLP.MaxConcurrent)
	if opts.OTLP.MaxExpandedBytes <= 0 {
		opts.OTLP.MaxExpandedBytes = 4 * opts.OTLP.MaxBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxInflightBytes <= 0 {
		opts.MaxInflightBytes = DefaultInflightRequests * int64(opts.MaxRequestBytes)
	}
	largest := max(int64(opts.MaxRequestBytes), int64(opts.OTLP.MaxBytes))
	opts.MaxInflightBytes = max(opts.MaxInflightBytes, largest)
	if opts.MaxKeyInflightBytes <= 0 {
		opts.MaxKeyInflightBytes = opts.MaxInflightBytes / 2
	}
	opts.MaxKeyInflightBytes = min(max(opts.MaxKeyInflightBytes, largest), opts.MaxInflightBytes)
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = DefaultBodyTimeout
	}
	if opts.MinBodyRate <= 0 {
		opts.MinBodyRate = DefaultMinBodyRate
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RefusalPeriod == 0 {
		opts.RefusalPeriod = DefaultRefusalPeriod
	}
	if opts.Retention == nil {
		opts.Retention = &retention.Service{L: l, SessionField: audit.FieldSession, Now: opts.Now, Log: opts.Logger}
	}
}

// handlerOptions are the options of every Connect handler: the read limit,
// panic recovery and the auth interceptor.
func handlerOptions(opts Options, auth *authInterceptor, readMax int) []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithReadMaxBytes(readMax),
		gzipOption(readMax),
		connect.WithRecover(func(ctx context.Context, spec connect.Spec, _ http.Header, p any) error {
			opts.Logger.ErrorContext(ctx, "handler panic", "procedure", spec.Procedure, "panic", fmt.Sprint(p))
			return connect.NewError(connect.CodeInternal, fmt.Errorf("internal error"))
		}),
		connect.WithInterceptors(auth),
	}
}

// mountOTLP serves OpenTelemetry ingest on mux: the OTLP gRPC services and
// OTLP/HTTP (docs/OTLP.md), through the same keys, rules and append path
// as the Connect API.
func mountOTLP(mux *http.ServeMux, s *service, auth *authInterceptor, opts Options) {
	b := &otlpBackend{service: s, auth: auth, opts: opts.OTLP, append: s.l.AppendUnless}
	if opts.otlpAppend != nil {
		// Tests' stand-ins check no precondition: spans classified before
		// a policy change may commit after it.
		b.append = func(ctx context.Context, tenant string, recs []ledger.Record, _ ledger.Unless) ([]ledger.Receipt, error) {
			return opts.otlpAppend(ctx, tenant, recs)
		}
	}
	for path, h := range otlp.NewGRPCHandlers(b, handlerOptions(opts, auth, opts.OTLP.MaxBytes)...) {
		mux.Handle(path, s.inflight.gate(h, opts.OTLP.MaxBytes, true))
	}
	h := otlp.NewHTTPHandler(b, int64(opts.OTLP.MaxBytes), opts.Logger)
	mux.Handle(otlp.TracesPath, h)
	mux.Handle(otlp.LogsPath, h)
}

// Handler serves the API. Close it after the HTTP servers using it (and its
// OTLP handler) have stopped and before the ledger is closed.
type Handler struct {
	http.Handler
	s      *service
	auth   *authInterceptor
	opts   Options
	active *activeRequests
}

// InflightStats reports the bound of in-flight append bytes: what it holds
// and how many requests wait for room.
func (h *Handler) InflightStats() InflightStats { return h.s.inflight.stats() }

// Close writes the access log's pending refusal summaries (docs/ACCESS.md).
// Requests that still arrive are recorded one by one.
func (h *Handler) Close(ctx context.Context) error { return h.auth.refusals.close(ctx) }

// OTLPHandler returns a handler serving only OpenTelemetry ingest (OTLP
// gRPC and OTLP/HTTP), for dedicated listeners such as the SDKs' default
// ports 4317 and 4318. It shares h's access recording: the same refusal
// bursts and limiter of failed authentications, closed by h.Close.
func (h *Handler) OTLPHandler() http.Handler {
	mux := http.NewServeMux()
	mountOTLP(mux, h.s, h.auth, h.opts)
	return h.active.count(withTransport(h.auth.frontHandler(mux), h.opts.AllowPlaintextKeys))
}

// NewHandler returns the HTTP handler serving the Veritrace services over
// Connect, gRPC and gRPC-Web, the gRPC health check, gRPC reflection, and
// OpenTelemetry ingest (OTLP gRPC and OTLP/HTTP). Appends wait for room
// under Options.MaxInflightBytes before their bodies are read: the server
// serving it MUST use HTTP2Config, whose flow-control windows let waiting
// HTTP/2 streams share a connection with running ones.
func NewHandler(l *ledger.Ledger, opts Options) *Handler {
	opts.defaults(l)
	s := &service{l: l, log: opts.Logger, now: opts.Now, retention: opts.Retention,
		inflight: newInflight(opts.MaxInflightBytes, opts.MaxKeyInflightBytes, int64(opts.OTLP.MaxConcurrent), int64(opts.OTLP.MaxKeyConcurrent), opts.QueueWait(), opts.BodyTimeout, opts.MinBodyRate, opts.Logger)}
	auth := newAuthInterceptor(l, opts)
	handlerOpts := handlerOptions(opts, auth, opts.MaxRequestBytes)
	mux := http.NewServeMux()
	ingestPath, ingest := veritracev1connect.NewIngestServiceHandler(&ingestService{s}, handlerOpts...)
	mux.Handle(ingestPath, appendsGated(s.inflight, ingest, opts.MaxRequestBytes))
	mux.Handle(veritracev1connect.NewLedgerServiceHandler(&ledgerService{s}, handlerOpts...))
	mux.Handle(veritracev1connect.NewAdminServiceHandler(&adminService{s}, handlerOpts...))
	mux.Handle(auditHandler(newAuditService(s, opts.MaxTraceAnswerBytes), handlerOpts))
	mux.Handle(veritracev1connect.NewRetentionServiceHandler(&retentionService{service: s, r: opts.Retention}, handlerOpts...))
	mux.Handle(veritracev1connect.NewIdentityServiceHandler(&identityService{s}, handlerOpts...))
	// Health and reflection stay open: they reveal nothing the published
	// protos do not (docs/ACCESS.md).
	names := []string{veritracev1connect.IngestServiceName, veritracev1connect.LedgerServiceName,
		veritracev1connect.AuditServiceName, veritracev1connect.RetentionServiceName, veritracev1connect.AdminServiceName,
		veritracev1connect.IdentityServiceName}
	mux.Handle(grpchealth.NewHandler(&healthChecker{l: l, r: opts.Retention, services: names}))
	reflector := grpcreflect.NewStaticReflector(names...)
	mux.Handle(grpcreflect.NewHandlerV1(reflector))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	mountOTLP(mux, s, auth, opts)
	active := &activeRequests{}
	return &Handler{Handler: active.count(withTransport(auth.frontHandler(mux), opts.AllowPlaintextKeys)), s: s, auth: auth, opts: opts, active: active}
}

// auditHandler serves AuditService. ExportBundle streams a zip file, which
// is compressed already: its handler offers no gzip, so that Connect does
// not compress it again (a fifth of an export's time) for clients that
// accept gzip. The other procedures keep it.
func auditHandler(svc *auditService, opts []connect.HandlerOption) (string, http.Handler) {
	path, h := veritracev1connect.NewAuditServiceHandler(svc, opts...)
	_, export := veritracev1connect.NewAuditServiceHandler(svc, append(slices.Clone(opts), connect.WithCompression("gzip", nil, nil))...)
	return path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == veritracev1connect.AuditServiceExportBundleProcedure {
			export.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// healthChecker answers the gRPC health check from the ledger's state: a
// failed ledger serves nothing; below the disk space reserve IngestService
// (and the server as a whole) is NOT_SERVING while reads go on. While an
// erasure or sweep that start-up could not finish waits (Resume logged
// it), RetentionService is NOT_SERVING and the rest serves.
type healthChecker struct {
	l        *ledger.Ledger
	r        *retention.Service
	services []string
}

func (c *healthChecker) Check(_ context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if req.Service != "" && !slices.Contains(c.services, req.Service) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %s", req.Service))
	}
	h := c.l.Health()
	status := grpchealth.StatusServing
	switch {
	case h.Failed != nil:
		status = grpchealth.StatusNotServing
	case h.LowSpace && (req.Service == "" || req.Service == veritracev1connect.IngestServiceName):
		status = grpchealth.StatusNotServing
	case req.Service == veritracev1connect.RetentionServiceName && c.r != nil && len(c.r.Unfinished()) > 0:
		status = grpchealth.StatusNotServing
	}
	return &grpchealth.CheckResponse{Status: status}, nil
}

type service struct {
	l         *ledger.Ledger
	log       *slog.Logger
	now       func() time.Time
	retention *retention.Service
	// inflight bounds the bytes of appends read and handled at once, on
	// every listener (Options.MaxInflightBytes), and the OTLP exports
	// (OTLPOptions.MaxConcurrent, MaxKeyConcurrent).
	inflight *inflight
}

// prepareSpan is the path of every ingested span, native or OTLP: it
// validates the span (field is its path in the request, for errors) and
// makes its ledger record, with the retention class classify (the rules
// of the revision it is appended under) gives it. Its errors are Connect
// errors.
func (s *service) prepareSpan(classify func(retention.SpanFacts) string, field string, sp *v1.Span, maxBytes int) (ledger.Record, error) {
	rec, err := spanRecord(field, sp, maxBytes)
	if err != nil {
		return rec, err
	}
	rec.RetentionClass = spanClass(classify, sp)
	return rec, nil
}

func (s *service) fail(ctx context.Context, procedure string, err error, name recordNamer) error {
	return toConnect(ctx, s.log, procedure, err, name)
}

// checkpointMsg converts a checkpoint for the wire.
func checkpointMsg(cp *ledger.Checkpoint) *v1.SignedCheckpoint {
	return &v1.SignedCheckpoint{Note: string(cp.Note), Origin: cp.Origin, Size: cp.Size, RootHash: cp.Root[:]}
}

func hashesMsg[T ~[]tlog.Hash](hs T) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

type ingestService struct{ *service }

func (s *ingestService) AppendSpans(ctx context.Context, req *connect.Request[v1.AppendSpansRequest]) (*connect.Response[v1.AppendSpansResponse], error) {
	const proc = veritracev1connect.IngestServiceAppendSpansProcedure
	_, tenant := principalFrom(ctx)
	spans := req.Msg.GetSpans()
	if len(spans) == 0 || len(spans) > ledger.MaxBatch {
		return nil, invalid("spans", "a batch holds 1 to %d spans, got %d", ledger.MaxBatch, len(spans))
	}
	for i, sp := range spans {
		// The OTLP source is the record of what an OpenTelemetry exporter
		// sent, and marks resource entries, which the sweep keeps while
		// their trace is kept: only the OTLP endpoints write it.
		if sp.GetOtlp() != nil {
			return nil, invalid(fmt.Sprintf("spans[%d].otlp", i), "is set only by the OTLP endpoints (/v1/traces, /v1/logs); a native span must leave it empty")
		}
	}
	// Classified under the policy in force where the spans commit: again
	// if a policy change commits first (retention.Service.AppendSpans).
	receipts, err := s.retention.AppendSpans(ctx, tenant, func(c *retention.Classification) ([]ledger.Record, error) {
		recs := make([]ledger.Record, len(spans))
		for i, sp := range spans {
			var err error
			if recs[i], err = s.prepareSpan(c.Class, fmt.Sprintf("spans[%d]", i), sp, maxSpanBytes); err != nil {
				return nil, err
			}
		}
		return recs, nil
	}, nil)
	if err != nil {
		return nil, s.fail(ctx, proc, err, func(i int) (string, string) {
			return fmt.Sprintf("spans[%d]", i), fmt.Sprintf("trace_id %x, span_id %x", spans[i].GetTraceId(), spans[i].GetSpanId())
		})
	}
	resp := &v1.AppendSpansResponse{Receipts: make([]*v1.Receipt, len(receipts))}
	for i, r := range receipts {
		resp.Receipts[i] = &v1.Receipt{
			TraceId: spans[i].GetTraceId(), SpanId: spans[i].GetSpanId(),
			Index: r.Index, LeafHash: r.LeafHash[:], AppendedAt: timestamppb.New(r.AppendedAt), Duplicate: r.Duplicate,
		}
	}
	if req.Msg.GetWaitCheckpoint() {
		cp, err := s.l.Checkpoint(ctx, tenant, true)
		if err != nil {
			return nil, s.fail(ctx, proc, err, nil)
		}
		resp.Checkpoint = checkpointMsg(cp)
		for _, r := range receipts {
			p, leaf, size, err := s.l.InclusionProof(ctx, tenant, r.Index, cp.Size)
			if err != nil {
				return nil, s.fail(ctx, proc, err, nil)
			}
			resp.Proofs = append(resp.Proofs, &v1.InclusionProof{Index: r.Index, TreeSize: size, LeafHash: leaf[:], Hashes: hashesMsg(p)})
		}
	}
	return connect.NewResponse(resp), nil
}

func (s *ingestService) RegisterVersion(ctx context.Context, req *connect.Request[v1.RegisterVersionRequest]) (*connect.Response[v1.RegisterVersionResponse], error) {
	_, tenant := principalFrom(ctx)
	rec, id, err := versionRecord(req.Msg)
	if err != nil {
		return nil, err
	}
	receipts, err := s.l.Append(ctx, tenant, []ledger.Record{rec})
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.IngestServiceRegisterVersionProcedure, err, func(int) (string, string) {
			return "label", fmt.Sprintf("%s %q label %q", format.VersionKind(rec.SubKind), req.Msg.GetName(), req.Msg.GetLabel())
		})
	}
	r := receipts[0]
	return connect.NewResponse(&v1.RegisterVersionResponse{Id: hex.EncodeToString(id[:]), Index: r.Index, LeafHash: r.LeafHash[:], Created: !r.Duplicate}), nil
}

func (s *ingestService) GetVersion(ctx context.Context, req *connect.Request[v1.GetVersionRequest]) (*connect.Response[v1.GetVersionResponse], error) {
	_, tenant := principalFrom(ctx)
	id, err := parseVersionID(req.Msg.GetId())
	if err != nil {
		return nil, invalid("id", "%v", err)
	}
	e, err := s.l.GetVersion(ctx, tenant, id)
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.IngestServiceGetVersionProcedure, err, nil)
	}
	v, err := decodeVersion(e)
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.IngestServiceGetVersionProcedure, err, nil)
	}
	return connect.NewResponse(&v1.GetVersionResponse{Version: v}), nil
}

func (s *ingestService) ListVersions(ctx context.Context, req *connect.Request[v1.ListVersionsRequest]) (*connect.Response[v1.ListVersionsResponse], error) {
	_, tenant := principalFrom(ctx)
	k := req.Msg.GetKind()
	if k < v1.VersionKind_VERSION_KIND_UNSPECIFIED || k > v1.VersionKind_VERSION_KIND_PIPELINE {
		return nil, invalid("kind", "unknown version kind %d", k)
	}
	if req.Msg.GetName() != "" && k == v1.VersionKind_VERSION_KIND_UNSPECIFIED {
		return nil, invalid("kind", "required when name is given")
	}
	size, err := pageSize(req.Msg.GetPageSize())
	if err != nil {
		return nil, err
	}
	var after []byte
	if t := req.Msg.GetPageToken(); t != "" {
		var err error
		if after, err = base64.RawURLEncoding.DecodeString(t); err != nil || len(after) < 3 {
			return nil, invalid("page_token", "not a token returned by ListVersions")
		}
	}
	vs, next, err := s.l.ListVersions(ctx, tenant, format.VersionKind(k), req.Msg.GetName(), after, size)
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.IngestServiceListVersionsProcedure, err, nil)
	}
	resp := &v1.ListVersionsResponse{}
	for _, v := range vs {
		resp.Versions = append(resp.Versions, &v1.Version{
			Id: hex.EncodeToString(v.ID[:]), Kind: v1.VersionKind(v.Kind), Name: v.Name, Label: v.Label, Index: v.Index,
		})
	}
	if next != nil {
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString(next)
	}
	return connect.NewResponse(resp), nil
}

// decodeVersion returns a version entry as a Version. A payload that
// cannot be decoded gives a Version with the header's facts and
// DecodeError set; only an erased payload is an error.
func decodeVersion(e *ledger.Entry) (*v1.Version, error) {
	if e.Erased {
		return nil, fmt.Errorf("version entry %d: %w", e.Header.Index, ledger.ErrKeyDestroyed)
	}
	k := format.VersionKind(e.Header.SubKind)
	v := &v1.Version{}
	if m, err := bundle.ParsePayload(format.KindVersion, e.Payload); err != nil {
		v.Kind, v.DecodeError = v1.VersionKind(k), err.Error()
	} else {
		v = m.(*v1.Version)
	}
	id := e.Header.Refs.Ref(k)
	v.Id = hex.EncodeToString(id[:])
	v.Index = e.Header.Index
	v.RegisteredAt = timestamppb.New(e.Header.AppendedAt)
	return v, nil
}

// entryRecord decodes an entry's payload for an answer: a Span, Version
// or AccessRecord, or the JSON text of a tombstone, retention or hold
// entry. A payload that is not decodable (bundle.DecodePayload's rules,
// which every reader and the bundle verifier share) gives nil and an
// error saying why, so that it is shown as such in every encoding.
func entryRecord(e *ledger.Entry) (any, error) {
	switch k := e.Header.Kind; k {
	case format.KindVersion:
		v, err := decodeVersion(e)
		if err != nil || v.DecodeError != "" {
			return nil, errors.New(v.GetDecodeError())
		}
		return v, nil
	case format.KindSpan, format.KindAccess:
		m, err := bundle.ParsePayload(k, e.Payload)
		if err != nil {
			return nil, err
		}
		return m, nil
	default:
		if _, err := bundle.DecodePayload(k, e.Payload); err != nil {
			return nil, err
		}
		return string(e.Payload), nil
	}
}

type ledgerService struct{ *service }

func (s *ledgerService) GetCheckpoint(ctx context.Context, req *connect.Request[v1.GetCheckpointRequest]) (*connect.Response[v1.GetCheckpointResponse], error) {
	_, tenant := principalFrom(ctx)
	cp, err := s.l.Checkpoint(ctx, tenant, req.Msg.GetFresh())
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.LedgerServiceGetCheckpointProcedure, err, nil)
	}
	return connect.NewResponse(&v1.GetCheckpointResponse{Checkpoint: checkpointMsg(cp), VerifierKey: s.l.VerifierKey()}), nil
}

func (s *ledgerService) GetInclusionProof(ctx context.Context, req *connect.Request[v1.GetInclusionProofRequest]) (*connect.Response[v1.GetInclusionProofResponse], error) {
	const proc = veritracev1connect.LedgerServiceGetInclusionProofProcedure
	_, tenant := principalFrom(ctx)
	p, leaf, size, err := s.l.InclusionProof(ctx, tenant, req.Msg.GetIndex(), req.Msg.GetTreeSize())
	if err != nil {
		return nil, s.fail(ctx, proc, err, nil)
	}
	resp := &v1.GetInclusionProofResponse{Proof: &v1.InclusionProof{Index: req.Msg.GetIndex(), TreeSize: size, LeafHash: leaf[:], Hashes: hashesMsg(p)}}
	if cp, err := s.l.CheckpointAt(ctx, tenant, size); err == nil {
		resp.Checkpoint = checkpointMsg(cp)
	}
	return connect.NewResponse(resp), nil
}

func (s *ledgerService) GetConsistencyProof(ctx context.Context, req *connect.Request[v1.GetConsistencyProofRequest]) (*connect.Response[v1.GetConsistencyProofResponse], error) {
	_, tenant := principalFrom(ctx)
	p, size, err := s.l.ConsistencyProof(ctx, tenant, req.Msg.GetOldSize(), req.Msg.GetNewSize())
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.LedgerServiceGetConsistencyProofProcedure, err, nil)
	}
	return connect.NewResponse(&v1.GetConsistencyProofResponse{OldSize: req.Msg.GetOldSize(), NewSize: size, Hashes: hashesMsg(p)}), nil
}

// headerProto is an entry header as GetEntry and GetTrace's span nodes
// give it.
func headerProto(h *format.Header) *v1.EntryHeader {
	hex32 := func(b [32]byte) string {
		if b == ([32]byte{}) {
			return ""
		}
		return hex.EncodeToString(b[:])
	}
	out := &v1.EntryHeader{
		FormatVersion: format.FormatVersion, Tenant: h.Tenant, Kind: v1.EntryKind(h.Kind), Index: h.Index,
		AppendedAt:     timestamppb.New(h.AppendedAt),
		Versions:       &v1.VersionRefs{Prompt: hex32(h.Refs[0]), Policy: hex32(h.Refs[1]), Pipeline: hex32(h.Refs[2])},
		RetentionClass: h.RetentionClass, PrevLeafHash: h.PrevLeafHash[:], PayloadCommitment: h.Commitment[:],
	}
	switch h.Kind {
	case format.KindSpan:
		out.SpanKind = v1.SpanKind(h.SubKind)
		out.TraceId, out.SpanId = h.TraceID[:], h.SpanID[:]
		if h.ParentSpanID != ([8]byte{}) {
			out.ParentSpanId = h.ParentSpanID[:]
		}
	case format.KindVersion:
		out.VersionKind = v1.VersionKind(h.SubKind)
	case format.KindAccess:
		out.AccessOutcome = v1.AccessOutcome(h.SubKind)
	}
	return out
}

func (s *ledgerService) GetEntry(ctx context.Context, req *connect.Request[v1.GetEntryRequest]) (*connect.Response[v1.GetEntryResponse], error) {
	const proc = veritracev1connect.LedgerServiceGetEntryProcedure
	_, tenant := principalFrom(ctx)
	e, err := s.l.GetEntry(ctx, tenant, req.Msg.GetIndex())
	if err != nil {
		return nil, s.fail(ctx, proc, err, nil)
	}
	msg := &v1.Entry{
		Header:      headerProto(e.Header),
		HeaderBytes: e.HeaderBytes, LeafHash: e.LeafHash[:], Payload: e.Payload, Salt: e.Salt,
		Erased: e.Erased, ErasedByTombstone: e.ErasedBy,
	}
	if !e.Erased {
		record, err := entryRecord(e)
		if err != nil {
			msg.DecodeError = err.Error()
		}
		switch r := record.(type) {
		case *v1.Span:
			msg.Record = &v1.Entry_Span{Span: r}
			// A rendering aid: a source that does not render leaves it empty.
			if j, err := otlp.SourceJSON(r.GetOtlp(), s.resourceScopeOf(ctx, tenant, e.Header, r.GetOtlp())); err == nil {
				msg.OtlpJson = j
			}
		case *v1.Version:
			msg.Record = &v1.Entry_Version{Version: r}
		case *v1.AccessRecord:
			msg.Record = &v1.Entry_Access{Access: r}
		case string:
			msg.Record = &v1.Entry_RecordJson{RecordJson: r}
		}
	}
	return connect.NewResponse(&v1.GetEntryResponse{Entry: msg}), nil
}

// resourceScopeOf returns the resource and scope an OTLP span or log
// record entry refers to: the resource_scope of the resource entry of its
// trace (docs/OTLP.md), nil when it is not there (erased) or the entry has
// none. A rendering aid: a failure to read it leaves it out.
func (s *service) resourceScopeOf(ctx context.Context, tenant string, h *format.Header, src *v1.OtlpSource) []byte {
	if f := bundle.FormOf(src); f != bundle.OTLPSpan && f != bundle.OTLPLogRecord {
		return nil
	}
	want := bundle.ResourceEntrySpanID(h.TraceID[:], src.GetResourceScopeSha256())
	size, err := s.l.Size(ctx, tenant)
	if err != nil {
		return nil
	}
	idxs, err := s.l.SpansOfTrace(ctx, tenant, h.TraceID, size)
	if err != nil {
		return nil
	}
	hs, err := s.l.Headers(ctx, tenant, idxs)
	if err != nil {
		return nil
	}
	for _, rh := range hs {
		if rh.SpanID != want {
			continue
		}
		e, err := s.l.GetEntry(ctx, tenant, rh.Index)
		if err != nil || e.Erased {
			return nil
		}
		sp := &v1.Span{}
		if proto.Unmarshal(e.Payload, sp) != nil {
			return nil
		}
		b := sp.GetOtlp().GetResourceScope()
		if sum := sha256.Sum256(b); !bytes.Equal(sum[:], src.GetResourceScopeSha256()) {
			return nil
		}
		return b
	}
	return nil
}
