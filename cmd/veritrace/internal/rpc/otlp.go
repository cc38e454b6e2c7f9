package rpc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	collogs "go.opentelemetry.io/proto/slim/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// OTLPOptions configure OpenTelemetry ingest (docs/OTLP.md).
type OTLPOptions struct {
	// MaxBytes limits an OTLP request after decompression (default
	// otlp.DefaultMaxBytes).
	MaxBytes int
	// Default is the mapping configuration of tenants not in Tenants.
	Default otlp.Config
	// Tenants holds per-tenant mapping configuration.
	Tenants map[string]otlp.Config
}

func (o *OTLPOptions) config(tenant string) otlp.Config {
	if c, ok := o.Tenants[tenant]; ok {
		return c
	}
	return o.Default
}

// AttrUnverifiedVersions lists, on a span ingested over OTLP, the version
// references it made that name no registered version: they are recorded,
// never taken as verified (docs/OTLP.md).
const AttrUnverifiedVersions = "veritrace.versions.unverified"

// otlpBackend serves the OTLP transports over the same append path as
// AppendSpans.
type otlpBackend struct {
	*service
	auth *authInterceptor
	opts OTLPOptions
	// append is the ledger's Append (replaced in tests).
	append func(ctx context.Context, tenant string, recs []ledger.Record) ([]ledger.Receipt, error)
}

// Admit authenticates an OTLP/HTTP request like the interceptor does a
// Connect call: same keys, rules, tenant header and access log.
func (b *otlpBackend) Admit(r *http.Request, path string) (context.Context, error) {
	ctx, _, err := b.auth.admit(r.Context(), call{procedure: path, header: r.Header, peer: r.RemoteAddr})
	return ctx, err
}

// rejections collects why items of an export were not accepted, for
// partial_success.
type rejections struct {
	count   int64
	reasons []string
	more    int
}

// maxReasons bounds the reasons listed in a partial_success message.
const maxReasons = 20

func (r *rejections) add(rejected bool, reason string) {
	if rejected {
		r.count++
	}
	if len(r.reasons) < maxReasons {
		r.reasons = append(r.reasons, reason)
	} else {
		r.more++
	}
}

func (r *rejections) message(what string) string {
	if len(r.reasons) == 0 {
		return ""
	}
	var b strings.Builder
	if r.count > 0 {
		fmt.Fprintf(&b, "%d %s rejected; ", r.count, what)
	}
	b.WriteString(strings.Join(r.reasons, "; "))
	if r.more > 0 {
		fmt.Fprintf(&b, "; and %d more", r.more)
	}
	return b.String()
}

// pending is a mapped item on its way to the ledger.
type pending struct {
	field string
	span  *v1.Span
	rec   ledger.Record
}

func (b *otlpBackend) ExportTraces(ctx context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	rej, err := b.ingest(ctx, otlp.TraceExportProcedure, func(cfg otlp.Config, _ *rejections, add addFunc) error {
		for i, rs := range req.GetResourceSpans() {
			for j, ss := range rs.GetScopeSpans() {
				for k, sp := range ss.GetSpans() {
					m, err := otlp.MapSpan(rs, ss, sp, cfg)
					if err != nil {
						return err
					}
					if err := add(fmt.Sprintf("resourceSpans[%d].scopeSpans[%d].spans[%d]", i, j, k), m); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp := &coltrace.ExportTraceServiceResponse{}
	if msg := rej.message("spans"); msg != "" {
		resp.PartialSuccess = &coltrace.ExportTracePartialSuccess{RejectedSpans: rej.count, ErrorMessage: msg}
	}
	return resp, nil
}

func (b *otlpBackend) ExportLogs(ctx context.Context, req *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error) {
	_, tenant := principalFrom(ctx)
	subjects := &subjectLookup{s: b.service, tenant: tenant, cache: map[[24]byte]string{}}
	rej, err := b.ingest(ctx, otlp.LogsExportProcedure, func(cfg otlp.Config, rej *rejections, add addFunc) error {
		for i, rl := range req.GetResourceLogs() {
			for j, sl := range rl.GetScopeLogs() {
				for k, lr := range sl.GetLogRecords() {
					field := fmt.Sprintf("resourceLogs[%d].scopeLogs[%d].logRecords[%d]", i, j, k)
					if len(lr.GetTraceId()) == 0 || len(lr.GetSpanId()) == 0 {
						rej.add(true, field+": has no trace_id and span_id; Veritrace keeps log records only as events of a span")
						continue
					}
					m, err := otlp.MapLogRecord(rl, sl, lr, cfg)
					if err != nil {
						return err
					}
					if m.Span.SubjectId == "" {
						// Sealed with its span: under the span's subject when the
						// span is in the ledger already.
						if m.Span.SubjectId, err = subjects.of(ctx, lr.GetTraceId(), lr.GetSpanId()); err != nil {
							return err
						}
					}
					if err := add(field, m); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	resp := &collogs.ExportLogsServiceResponse{}
	if msg := rej.message("log records"); msg != "" {
		resp.PartialSuccess = &collogs.ExportLogsPartialSuccess{RejectedLogRecords: rej.count, ErrorMessage: msg}
	}
	return resp, nil
}

// addFunc takes one mapped item of an export, with its path in the
// request.
type addFunc func(field string, m *otlp.Mapped) error

// ingest runs an export: mapItems maps each item of the request and hands
// it to add, which resolves, validates and collects it; then the accepted
// items are appended. It returns what was rejected, or the error that
// fails the whole export.
func (b *otlpBackend) ingest(ctx context.Context, proc string, mapItems func(otlp.Config, *rejections, addFunc) error) (*rejections, error) {
	_, tenant := principalFrom(ctx)
	rej := &rejections{}
	refs := &versionResolver{l: b.l, tenant: tenant, cache: map[refKey]string{}}
	var items []pending
	err := mapItems(b.opts.config(tenant), rej, func(field string, m *otlp.Mapped) error {
		p, err := b.prepareOTLP(ctx, proc, tenant, field, m, refs, rej)
		if p != nil {
			items = append(items, *p)
		}
		return err
	})
	if err != nil {
		return nil, b.fail(ctx, proc, err, nil)
	}
	if err := b.appendOTLP(ctx, proc, tenant, items, rej); err != nil {
		return nil, err
	}
	return rej, nil
}

// prepareOTLP resolves a mapped span's version references and validates
// it. A span that cannot be accepted is counted in rej and nil returned;
// an error is returned only when the export as a whole must fail.
func (b *otlpBackend) prepareOTLP(ctx context.Context, proc, tenant, field string, m *otlp.Mapped, refs *versionResolver, rej *rejections) (*pending, error) {
	var unverified []string
	for _, ref := range m.Refs {
		id, why, err := refs.resolve(ctx, ref)
		if err != nil {
			return nil, b.fail(ctx, proc, err, nil)
		}
		if id == "" {
			unverified = append(unverified, why)
			rej.add(false, fmt.Sprintf("%s: %s (%s); recorded as unverified, not as a version reference", field, why, strings.Join(ref.Attributes, ", ")))
			continue
		}
		if m.Span.Versions == nil {
			m.Span.Versions = &v1.VersionRefs{}
		}
		switch ref.Kind {
		case v1.VersionKind_VERSION_KIND_PROMPT:
			m.Span.Versions.Prompt = id
		case v1.VersionKind_VERSION_KIND_POLICY:
			m.Span.Versions.Policy = id
		case v1.VersionKind_VERSION_KIND_PIPELINE:
			m.Span.Versions.Pipeline = id
		}
	}
	if len(unverified) > 0 {
		if m.Span.Attributes == nil {
			m.Span.Attributes = map[string]*structpb.Value{}
		}
		l := &structpb.ListValue{}
		for _, u := range unverified {
			l.Values = append(l.Values, structpb.NewStringValue(u))
		}
		m.Span.Attributes[AttrUnverifiedVersions] = structpb.NewListValue(l)
		if len(m.Span.Attributes) > otlp.MaxAttributes {
			// Make room, deterministically (a retry must map the same): the
			// last free attribute in key order goes; the source keeps it.
			last := ""
			for k := range m.Span.Attributes {
				if k != AttrUnverifiedVersions && k != otlp.AttrOmitted && k > last {
					last = k
				}
			}
			delete(m.Span.Attributes, last)
			omitted := m.Span.Attributes[otlp.AttrOmitted].GetNumberValue()
			m.Span.Attributes[otlp.AttrOmitted] = structpb.NewNumberValue(omitted + 1)
		}
	}
	rec, err := b.prepareSpan(ctx, proc, tenant, field, m.Span, maxOTLPSpanBytes)
	if connect.CodeOf(err) == connect.CodeInvalidArgument {
		rej.add(true, errMessage(err))
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &pending{field: field, span: m.Span, rec: rec}, nil
}

func errMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

// appendOTLP appends the accepted items in ledger batches of at most
// ledger.MaxBatch, each atomic. A span refused by the ledger for its own
// content (same ids, different content; a version reference that vanished)
// is rejected and the rest of its batch appended; any other error fails
// the export, which the exporter retries: spans already appended are then
// duplicates.
func (b *otlpBackend) appendOTLP(ctx context.Context, proc, tenant string, items []pending, rej *rejections) error {
	for len(items) > 0 {
		n := min(len(items), ledger.MaxBatch)
		batch := items[:n]
		recs := make([]ledger.Record, len(batch))
		for i := range batch {
			recs[i] = batch[i].rec
		}
		_, err := b.append(ctx, tenant, recs)
		var re *ledger.RecordError
		if errors.As(err, &re) && re.Record < len(batch) {
			cerr := toConnect(ctx, b.log, proc, err, func(i int) (string, string) {
				return batch[i].field, fmt.Sprintf("trace_id %x, span_id %x", batch[i].span.GetTraceId(), batch[i].span.GetSpanId())
			})
			switch connect.CodeOf(cerr) {
			case connect.CodeAlreadyExists, connect.CodeFailedPrecondition, connect.CodeInvalidArgument:
				rej.add(true, errMessage(cerr))
				items = append(items[:re.Record:re.Record], items[re.Record+1:]...)
				continue
			}
		}
		if err != nil {
			return b.fail(ctx, proc, err, nil)
		}
		items = items[n:]
	}
	return nil
}

// versionResolver resolves version references against the tenant's
// registry, once per reference in an export.
type versionResolver struct {
	l      *ledger.Ledger
	tenant string
	cache  map[refKey]string
}

type refKey struct {
	kind            v1.VersionKind
	id, name, label string
}

// resolve returns the registered id a reference names, or "" and why it
// names none.
func (r *versionResolver) resolve(ctx context.Context, ref otlp.VersionRef) (id, why string, err error) {
	kind := strings.ToLower(strings.TrimPrefix(ref.Kind.String(), "VERSION_KIND_"))
	key := refKey{ref.Kind, ref.ID, ref.Name, ref.Label}
	if id, ok := r.cache[key]; ok && id != "" {
		return id, "", nil
	}
	switch {
	case ref.ID != "":
		vid, perr := parseVersionID(ref.ID)
		if perr != nil {
			return "", fmt.Sprintf("%s version %q is not a version id", kind, truncate(ref.ID)), nil
		}
		e, gerr := r.l.GetVersion(ctx, r.tenant, vid)
		switch {
		case errors.Is(gerr, ledger.ErrNotFound):
			return "", fmt.Sprintf("%s version %s is not registered", kind, ref.ID), nil
		case gerr != nil:
			return "", "", gerr
		case v1.VersionKind(e.Header.SubKind) != ref.Kind:
			return "", fmt.Sprintf("version %s is not a %s version", ref.ID, kind), nil
		}
		id = ref.ID
	case ref.Name == "" || ref.Label == "":
		return "", fmt.Sprintf("%s reference %q label %q names no version: both a name and a label (or version) are needed", kind, truncate(ref.Name), truncate(ref.Label)), nil
	default:
		vid, found, lerr := r.byName(ctx, format.VersionKind(ref.Kind), ref.Name, ref.Label)
		if lerr != nil {
			return "", "", lerr
		}
		if !found {
			return "", fmt.Sprintf("%s %q label %q is not registered", kind, truncate(ref.Name), truncate(ref.Label)), nil
		}
		id = vid
	}
	r.cache[key] = id
	return id, "", nil
}

// byName finds a registered version by kind, name and label.
func (r *versionResolver) byName(ctx context.Context, kind format.VersionKind, name, label string) (string, bool, error) {
	var after []byte
	for {
		vs, next, err := r.l.ListVersions(ctx, r.tenant, kind, name, after, 1000)
		if err != nil {
			return "", false, err
		}
		for _, v := range vs {
			if v.Label == label {
				return fmt.Sprintf("%x", v.ID), true, nil
			}
		}
		if next == nil {
			return "", false, nil
		}
		after = next
	}
}

// subjectLookup finds the subject of a span already in the ledger, so
// that its events are sealed under the same subject's keys.
type subjectLookup struct {
	s      *service
	tenant string
	cache  map[[24]byte]string
}

func (sl *subjectLookup) of(ctx context.Context, traceID, spanID []byte) (string, error) {
	var key [24]byte
	if len(traceID) != 16 || len(spanID) != 8 {
		return "", nil // validation names the bad id
	}
	copy(key[:16], traceID)
	copy(key[16:], spanID)
	if s, ok := sl.cache[key]; ok {
		return s, nil
	}
	var trace [16]byte
	copy(trace[:], traceID)
	size, err := sl.s.l.Size(ctx, sl.tenant)
	if err != nil {
		return "", err
	}
	idxs, err := sl.s.l.SpansOfTrace(ctx, sl.tenant, trace, size)
	if err != nil {
		return "", err
	}
	subject := ""
	for _, idx := range idxs {
		h, err := sl.s.l.Header(ctx, sl.tenant, idx)
		if err != nil {
			return "", err
		}
		if string(h.SpanID[:]) != string(spanID) {
			continue
		}
		e, err := sl.s.l.GetEntry(ctx, sl.tenant, idx)
		if err != nil {
			return "", err
		}
		if !e.Erased {
			sp := &v1.Span{}
			if err := proto.Unmarshal(e.Payload, sp); err == nil {
				subject = sp.GetSubjectId()
			}
		}
		break
	}
	sl.cache[key] = subject
	return subject, nil
}
