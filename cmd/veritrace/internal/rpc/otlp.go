package rpc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"connectrpc.com/connect"
	collogs "go.opentelemetry.io/proto/slim/otlp/collector/logs/v1"
	coltrace "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/veritrace/veritrace/audit"
	"github.com/veritrace/veritrace/audit/bundle"
	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/retention"
)

// OTLPOptions configure OpenTelemetry ingest (docs/OTLP.md).
type OTLPOptions struct {
	// MaxBytes limits an OTLP request after decompression (default
	// otlp.DefaultMaxBytes).
	MaxBytes int
	// MaxExpandedBytes limits what one export may add to the log: the
	// payloads of its entries, its resource entries included (default 4 ×
	// MaxBytes). An export past it is refused (413, RESOURCE_EXHAUSTED).
	MaxExpandedBytes int
	// MaxConcurrent bounds the exports read and handled at once (default
	// 64); more wait for a slot, before their body is read, for at most
	// Options.MaxQueueWait, then are refused retryably (unavailable). With
	// MaxBytes and the batch size it bounds the memory and the decoding
	// work exports hold.
	MaxConcurrent int
	// MaxKeyConcurrent bounds the exports of one API key read and handled
	// at once, its share of MaxConcurrent (default half of it, at least
	// 1; never above it): a key's further exports wait for its share
	// first, then for a slot, within the same Options.MaxQueueWait, so
	// that one app's exports, many or slow, leave slots for the others.
	MaxKeyConcurrent int
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
	// append is the ledger's AppendUnless (replaced in tests).
	append retention.Appender
}

// Admit authenticates an OTLP/HTTP request like the interceptor does a
// Connect call: same keys, rules, tenant header and access log.
func (b *otlpBackend) Admit(r *http.Request, path string) (context.Context, error) {
	ctx, _, err := b.auth.admit(r.Context(), call{procedure: path, header: r.Header, peer: r.RemoteAddr})
	return ctx, err
}

// Begin waits, before r's body is read, for room for an OTLP/HTTP export:
// its bytes under the server's bound of in-flight appends and its API
// key's share of it, then one of the export slots (inflight.enter); once
// admitted its body is held to the body timeout (r.Body is replaced:
// inflight.bodyDeadline). Past --max-queue-wait it is refused retryably:
// resource_exhausted (429) waiting for bytes, unavailable (503 with
// Retry-After) waiting for a slot. Waiting unread is safe only on a
// server configured with HTTP2Config: with Go's default windows, streams
// waiting unread fill their connection's window, which the streams in
// progress on the same connection need to finish (a load test found that
// deadlock).
func (b *otlpBackend) Begin(ctx context.Context, w http.ResponseWriter, r *http.Request) (func(), error) {
	return b.inflight.enter(ctx, w, r, b.opts.MaxBytes, true)
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

func (b *otlpBackend) ExportTraces(ctx context.Context, ex *otlp.Export) (*coltrace.ExportTraceServiceResponse, error) {
	rej, err := b.ingest(ctx, otlp.TraceExportProcedure, ex)
	if err != nil {
		return nil, err
	}
	resp := &coltrace.ExportTraceServiceResponse{}
	if msg := rej.message("spans"); msg != "" {
		resp.PartialSuccess = &coltrace.ExportTracePartialSuccess{RejectedSpans: rej.count, ErrorMessage: msg}
	}
	return resp, nil
}

func (b *otlpBackend) ExportLogs(ctx context.Context, ex *otlp.Export) (*collogs.ExportLogsServiceResponse, error) {
	rej, err := b.ingest(ctx, otlp.LogsExportProcedure, ex)
	if err != nil {
		return nil, err
	}
	resp := &collogs.ExportLogsServiceResponse{}
	if msg := rej.message("log records"); msg != "" {
		resp.PartialSuccess = &collogs.ExportLogsPartialSuccess{RejectedLogRecords: rej.count, ErrorMessage: msg}
	}
	return resp, nil
}

// Limits of an export's work.
const (
	// maxSubjectProbe bounds the payloads of a trace read to find its
	// subject, once per trace and export.
	maxSubjectProbe = 64
	// maxBatchBytes bounds the payload bytes of one ledger batch (and so
	// what an export holds in memory beside its request).
	maxBatchBytes = 32 << 20
	// maxAppendAttempts bounds the appends of one batch: each retry drops
	// a record that a concurrent request made conflict.
	maxAppendAttempts = 4
)

// ingestion is one export on its way to the ledger. Its items are mapped in
// request order and appended in batches as they are mapped; each trace of
// the export is looked up in the ledger at most once (its span identities,
// and, when an item names no subject, the subject of the trace).
type ingestion struct {
	b            *otlpBackend
	ctx          context.Context
	proc, tenant string
	cfg          otlp.Config
	ex           *otlp.Export
	rej          *rejections
	refs         *versionResolver
	size         uint64 // the log's size when the export began (0: not read)
	traces       map[[16]byte]*traceState
	// seen holds the identity of every record this export appends, with
	// the SHA-256 of its payload.
	seen        map[[24]byte][32]byte
	expanded    int // payload bytes appended so far
	maxExpanded int
	batch       []pendingRecord
	batchBytes  int
}

// traceState is what an export knows of one of its traces.
type traceState struct {
	id [16]byte
	// subject and session are the first named by an item of the export,
	// else (probed) by a span of the trace in the ledger.
	subject, session string
	probed           bool
	// existing maps the span ids of the trace's entries in the ledger
	// (loaded) to their headers.
	loaded   bool
	existing map[[8]byte]*format.Header
	// closed: an erasure closed the trace (loaded); its items are
	// refused.
	closed    bool
	resources map[[32]byte]*resourceState
}

// resourceState is a resource entry of a trace, for one group's resource
// and scope.
type resourceState struct {
	g      *otlp.Group
	spanID [8]byte
	// stored: the entry is in the log (or was, and was erased), or in a
	// batch of this export.
	stored bool
	// bad, when set, is why items under it are rejected.
	bad string
}

// pendingRecord is a record of the current batch.
type pendingRecord struct {
	field string // the item's path in the request; "" for a resource entry
	rec   ledger.Record
	trace *traceState
	// res is the resource entry the record is, or the item refers to.
	res *resourceState
	// facts classify the item when its batch is appended, under the
	// policy in force there (flush); nil for a resource entry.
	facts *retention.SpanFacts
	// spanClass, for a log record whose span is in the log, is that span's
	// class: the record's is the longer-kept of it and its own (classify).
	spanClass string
}

// ErrExportTooLarge is the cause of refusing an export whose entries would
// pass OTLPOptions.MaxExpandedBytes.
var ErrExportTooLarge = otlp.ErrExpandsTooFar

func (b *otlpBackend) ingest(ctx context.Context, proc string, ex *otlp.Export) (*rejections, error) {
	_, tenant := principalFrom(ctx)
	in := &ingestion{
		b: b, ctx: ctx, proc: proc, tenant: tenant, cfg: b.opts.config(tenant), ex: ex, rej: &rejections{},
		refs:   &versionResolver{l: b.l, tenant: tenant, cache: map[refKey]string{}},
		traces: map[[16]byte]*traceState{}, seen: map[[24]byte][32]byte{},
		maxExpanded: b.opts.MaxExpandedBytes,
	}
	if err := in.survey(); err != nil {
		return nil, err
	}
	for _, g := range ex.Groups {
		for i, it := range g.Items {
			if err := in.add(g, ex.ItemPath(g, i), it); err != nil {
				return nil, err
			}
		}
	}
	if err := in.flush(); err != nil {
		return nil, err
	}
	return in.rej, nil
}

// survey reads what the export says of its traces before any item is
// mapped: the subject and session each trace's items name, and what the
// export would add to the log at least (its items, and each resource and
// scope once per trace), which must not pass the limit.
func (in *ingestion) survey() error {
	type pair struct {
		trace  [16]byte
		digest [32]byte
	}
	pairs := map[pair]bool{}
	least := 0
	for _, g := range in.ex.Groups {
		if g.Err != nil {
			continue
		}
		for _, it := range g.Items {
			if it.Err != nil || len(it.TraceID()) != 16 {
				continue
			}
			ts := in.trace(it.TraceID())
			if ts.subject == "" || ts.session == "" {
				subject, session := g.Principal(it, in.cfg)
				if ts.subject == "" {
					ts.subject = subject
				}
				if ts.session == "" {
					ts.session = session
				}
			}
			if p := (pair{ts.id, g.Digest}); !pairs[p] {
				pairs[p] = true
				least += len(g.ResourceScope)
			}
			least += len(it.Raw)
		}
	}
	if least > in.maxExpanded {
		return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"%w: this export would add at least %d bytes to the log (its items, and each resource and scope once per trace), more than the limit of %d; send fewer traces per export, or a smaller resource",
			ErrExportTooLarge, least, in.maxExpanded))
	}
	return nil
}

func (in *ingestion) trace(id []byte) *traceState {
	var k [16]byte
	copy(k[:], id)
	ts := in.traces[k]
	if ts == nil {
		ts = &traceState{id: k, resources: map[[32]byte]*resourceState{}}
		in.traces[k] = ts
	}
	return ts
}

// add maps one item, and queues it (after its trace's resource entry, the
// first time) or rejects it.
func (in *ingestion) add(g *otlp.Group, field string, it *otlp.Item) error {
	switch {
	case g.Err != nil:
		in.rej.add(true, fmt.Sprintf("%s: %v", field, g.Err))
		return nil
	case it.Err != nil:
		in.rej.add(true, fmt.Sprintf("%s: %v", field, it.Err))
		return nil
	case it.Log != nil && (len(it.Log.GetTraceId()) == 0 || len(it.Log.GetSpanId()) == 0):
		in.rej.add(true, field+": has no trace_id and span_id; Veritrace keeps log records only as events of a span")
		return nil
	}
	var m *otlp.Mapped
	if it.Log != nil {
		m = otlp.MapLogRecord(g, it, in.cfg)
	} else {
		m = otlp.MapSpan(g, it, in.cfg)
	}
	if err := in.resolveVersions(field, m); err != nil {
		return err
	}
	lenientOTLP(m)
	rec, err := spanRecord(field, m.Span, maxOTLPSpanBytes)
	if connect.CodeOf(err) == connect.CodeInvalidArgument {
		in.rej.add(true, errMessage(err))
		return nil
	}
	if err != nil {
		return err
	}
	ts := in.trace(m.Span.GetTraceId())
	if err := in.loadTrace(ts); err != nil {
		return err
	}
	if ts.closed {
		in.rej.add(true, fmt.Sprintf("%s: %v", field, &ledger.TraceClosedError{Trace: ts.id}))
		return nil
	}
	// Sealed with its trace: an item that names no subject inherits the
	// trace's, which chooses its data key and its subject index term,
	// never its payload (docs/OTLP.md, "Subjects").
	subject, session, err := in.traceSubject(ts)
	if err != nil {
		return err
	}
	rec.Subject = m.Span.GetSubjectId()
	if m.FullSubject != "" {
		rec.Subject = m.FullSubject // the payload's is clipped
	}
	if rec.Subject == "" {
		rec.Subject = subject
	}
	if m.Span.GetSessionId() == "" && session != "" {
		rec.Terms = append(rec.Terms, ledger.Term{Field: audit.FieldSession, Value: []byte(session)})
	}
	spanClass, facts, err := in.classOf(g, it, m.Span, ts)
	if err != nil {
		return err
	}
	dup, why, err := in.identity(ts, &rec)
	if err != nil {
		return err
	}
	if why != "" {
		in.rej.add(true, fmt.Sprintf("%s (trace_id %x, span_id %x): %s", field, rec.TraceID, rec.SpanID, why))
		return nil
	}
	if dup {
		return nil // appended before: a retry adds nothing
	}
	res, err := in.resource(ts, g)
	if err != nil {
		return err
	}
	if res.bad != "" {
		delete(in.seen, identityKey(&rec))
		in.rej.add(true, fmt.Sprintf("%s: %s", field, res.bad))
		return nil
	}
	if in.expanded+len(rec.Payload) > in.maxExpanded {
		delete(in.seen, identityKey(&rec))
		in.rej.add(true, fmt.Sprintf("%s: not appended: the export's entries passed the limit of %d bytes", field, in.maxExpanded))
		return nil
	}
	if !res.stored {
		if err := in.queueResource(ts, res, subject, session); err != nil {
			return err
		}
		if res.bad != "" {
			delete(in.seen, identityKey(&rec))
			in.rej.add(true, fmt.Sprintf("%s: %s", field, res.bad))
			return nil
		}
	}
	in.queue(pendingRecord{field: field, rec: rec, trace: ts, res: res, facts: facts, spanClass: spanClass})
	if len(in.batch) >= ledger.MaxBatch-1 || in.batchBytes >= maxBatchBytes {
		return in.flush()
	}
	return nil
}

func (in *ingestion) queue(p pendingRecord) {
	in.batch = append(in.batch, p)
	in.batchBytes += len(p.rec.Payload)
	in.expanded += len(p.rec.Payload)
}

func identityKey(r *ledger.Record) [24]byte {
	var k [24]byte
	copy(k[:16], r.TraceID[:])
	copy(k[16:], r.SpanID[:])
	return k
}

// resolveVersions resolves a mapped span's version references. A
// reference that names no registered version is recorded as unverified
// and named in the partial success; the span is kept.
func (in *ingestion) resolveVersions(field string, m *otlp.Mapped) error {
	var unverified []string
	for _, ref := range m.Refs {
		id, why, err := in.refs.resolve(in.ctx, ref)
		if err != nil {
			return in.b.fail(in.ctx, in.proc, err, nil)
		}
		if id == "" {
			unverified = append(unverified, why)
			in.rej.add(false, fmt.Sprintf("%s: %s (%s); recorded as unverified, not as a version reference", field, why, strings.Join(ref.Attributes, ", ")))
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
		l := &structpb.ListValue{}
		for _, u := range unverified {
			l.Values = append(l.Values, structpb.NewStringValue(u))
		}
		m.SetAttribute(AttrUnverifiedVersions, structpb.NewListValue(l))
	}
	return nil
}

// classOf returns what classifies an item when its batch is appended
// (classify), under the policy in force there: its facts, every string
// attribute it was sent with (and its resource's), and, for a log record
// whose span is in the log, that span's class, so that an event is kept
// at least as long as the span it belongs to.
func (in *ingestion) classOf(g *otlp.Group, it *otlp.Item, sp *v1.Span, ts *traceState) (spanClass string, facts *retention.SpanFacts, err error) {
	if it.Log != nil && len(sp.GetParentSpanId()) == 8 {
		if err := in.loadTrace(ts); err != nil {
			return "", nil, err
		}
		if h := ts.existing[[8]byte(sp.GetParentSpanId())]; h != nil {
			spanClass = h.RetentionClass
		}
	}
	return spanClass, &retention.SpanFacts{
		Kind: uint8(sp.GetKind()), Error: sp.GetStatus().GetCode() == v1.StatusCode_STATUS_CODE_ERROR, Attributes: g.RetentionAttributes(it),
	}, nil
}

// loadTrace reads the span identities of a trace's entries in the log,
// once per export.
func (in *ingestion) loadTrace(ts *traceState) error {
	if ts.loaded {
		return nil
	}
	ctx, l := in.ctx, in.b.l
	if in.size == 0 {
		size, err := l.Size(ctx, in.tenant)
		if err != nil {
			return in.b.fail(ctx, in.proc, err, nil)
		}
		in.size = max(size, 1)
	}
	idxs, err := l.SpansOfTrace(ctx, in.tenant, ts.id, in.size)
	if err != nil {
		return in.b.fail(ctx, in.proc, err, nil)
	}
	hs, err := l.Headers(ctx, in.tenant, idxs)
	if err != nil {
		return in.b.fail(ctx, in.proc, err, nil)
	}
	if _, ts.closed, err = l.ClosedBy(ctx, in.tenant, ts.id); err != nil {
		return in.b.fail(ctx, in.proc, err, nil)
	}
	ts.existing = make(map[[8]byte]*format.Header, len(hs))
	for _, h := range hs {
		ts.existing[h.SpanID] = h
	}
	ts.loaded = true
	return nil
}

// traceSubject returns the subject and session of a trace: those its
// items in the export name, else those of a span of the trace already in
// the log (roots first, at most maxSubjectProbe payloads read, once per
// export). "" when neither names one.
func (in *ingestion) traceSubject(ts *traceState) (string, string, error) {
	if ts.subject != "" || ts.probed {
		return ts.subject, ts.session, nil
	}
	ts.probed = true
	if err := in.loadTrace(ts); err != nil {
		return "", "", err
	}
	hs := make([]*format.Header, 0, len(ts.existing))
	for _, h := range ts.existing {
		hs = append(hs, h)
	}
	sort.Slice(hs, func(i, j int) bool {
		ri, rj := hs[i].ParentSpanID == [8]byte{}, hs[j].ParentSpanID == [8]byte{}
		if ri != rj {
			return ri
		}
		return hs[i].Index < hs[j].Index
	})
	for _, h := range hs[:min(len(hs), maxSubjectProbe)] {
		e, err := in.b.l.GetEntry(in.ctx, in.tenant, h.Index)
		if err != nil {
			return "", "", in.b.fail(in.ctx, in.proc, err, nil)
		}
		sp := &v1.Span{}
		if e.Erased || proto.Unmarshal(e.Payload, sp) != nil {
			continue
		}
		if ts.session == "" {
			ts.session = sp.GetSessionId()
		}
		if sp.GetSubjectId() != "" {
			ts.subject = sp.GetSubjectId()
			break
		}
	}
	return ts.subject, ts.session, nil
}

// identity checks a record against the log and the export before it is
// sealed: dup when the same record was appended before (a retry), why
// when its identity is taken by other content.
func (in *ingestion) identity(ts *traceState, rec *ledger.Record) (dup bool, why string, err error) {
	key := identityKey(rec)
	sum := sha256.Sum256(rec.Payload)
	if prev, ok := in.seen[key]; ok {
		if prev == sum {
			return true, "", nil
		}
		return false, "another item of this export has the same trace_id and span_id with different content", nil
	}
	same, erased, idx, found, err := in.existing(ts, rec.SpanID, rec.Payload)
	switch {
	case err != nil:
		return false, "", err
	case found && same:
		in.seen[key] = sum
		return true, "", nil
	case found && erased:
		return false, fmt.Sprintf("a span with the same identity was appended at index %d and has been erased", idx), nil
	case found:
		return false, fmt.Sprintf("a span with the same identity exists at index %d with different content", idx), nil
	}
	in.seen[key] = sum
	return false, "", nil
}

// existing compares a payload with the log's entry of that span id in the
// trace, if there is one. An erased entry is never the same.
func (in *ingestion) existing(ts *traceState, spanID [8]byte, payload []byte) (same, erased bool, index uint64, found bool, err error) {
	if err := in.loadTrace(ts); err != nil {
		return false, false, 0, false, err
	}
	h := ts.existing[spanID]
	if h == nil {
		return false, false, 0, false, nil
	}
	e, err := in.b.l.GetEntry(in.ctx, in.tenant, h.Index)
	if err != nil {
		return false, false, 0, false, in.b.fail(in.ctx, in.proc, err, nil)
	}
	return !e.Erased && bytes.Equal(e.Payload, payload), e.Erased, h.Index, true, nil
}

// resource returns the state of the trace's resource entry for a group.
func (in *ingestion) resource(ts *traceState, g *otlp.Group) (*resourceState, error) {
	if rs := ts.resources[g.Digest]; rs != nil {
		return rs, nil
	}
	rs := &resourceState{g: g, spanID: resourceEntryID(ts.id, g)}
	ts.resources[g.Digest] = rs
	if err := in.loadTrace(ts); err != nil {
		return nil, err
	}
	if h := ts.existing[rs.spanID]; h != nil {
		e, err := in.b.l.GetEntry(in.ctx, in.tenant, h.Index)
		if err != nil {
			return nil, in.b.fail(in.ctx, in.proc, err, nil)
		}
		// An erased resource entry stays what its items refer to.
		sp := &v1.Span{}
		if e.Erased || (proto.Unmarshal(e.Payload, sp) == nil && bytes.Equal(sp.GetOtlp().GetResourceScope(), g.ResourceScope)) {
			rs.stored = true
		} else {
			rs.bad = fmt.Sprintf("the identity of its trace's resource entry (span_id %x) is taken by entry %d", rs.spanID, h.Index)
		}
	}
	return rs, nil
}

func resourceEntryID(trace [16]byte, g *otlp.Group) [8]byte {
	return bundle.ResourceEntrySpanID(trace[:], g.Digest[:])
}

// queueResource queues a trace's resource entry for a group, sealed with
// the trace's subject; its retention class is set when its batch is
// appended (the longest-kept class of the items that refer to it).
func (in *ingestion) queueResource(ts *traceState, rs *resourceState, subject, session string) error {
	sp := otlp.ResourceEntry(ts.id[:], rs.g)
	payload, err := marshal.Marshal(sp)
	if err != nil {
		return in.b.fail(in.ctx, in.proc, err, nil)
	}
	if len(payload) > maxOTLPSpanBytes {
		rs.bad = fmt.Sprintf("its resource and scope take %d bytes, more than the limit of %d", len(payload), maxOTLPSpanBytes)
		return nil
	}
	rec := ledger.Record{Kind: format.KindSpan, SubKind: uint8(sp.GetKind()), Subject: subject, Payload: payload}
	copy(rec.TraceID[:], sp.GetTraceId())
	copy(rec.SpanID[:], sp.GetSpanId())
	if session != "" {
		rec.Terms = []ledger.Term{{Field: audit.FieldSession, Value: []byte(session)}}
	}
	in.seen[identityKey(&rec)] = sha256.Sum256(payload)
	rs.stored = true
	in.queue(pendingRecord{rec: rec, trace: ts, res: rs})
	return nil
}

// flush appends the batch. A record the ledger refuses for its own content
// (its identity taken meanwhile by a concurrent request; a version
// reference that vanished) is rejected with the items that depend on it,
// and the rest appended again, at most maxAppendAttempts times; any other
// error fails the export, which the exporter retries (what was appended is
// then recognised as duplicates).
func (in *ingestion) flush() error {
	for attempt := 1; len(in.batch) > 0; attempt++ {
		// Classified under the policy in force where the batch commits:
		// again if a policy change commits first.
		_, err := in.b.retention.AppendSpans(in.ctx, in.tenant, func(c *retention.Classification) ([]ledger.Record, error) {
			in.classify(c)
			recs := make([]ledger.Record, len(in.batch))
			for i := range in.batch {
				recs[i] = in.batch[i].rec
			}
			return recs, nil
		}, in.b.append)
		if err == nil {
			break
		}
		var re *ledger.RecordError
		if !errors.As(err, &re) || re.Record >= len(in.batch) || attempt >= maxAppendAttempts {
			return in.b.fail(in.ctx, in.proc, err, nil)
		}
		bad := in.batch[re.Record]
		// An erasure closed a trace meanwhile: every record of it goes.
		var tc *ledger.TraceClosedError
		closed := errors.As(re.Err, &tc)
		cerr := toConnect(in.ctx, in.b.log, in.proc, err, func(int) (string, string) {
			if bad.field == "" {
				return "resource entry", fmt.Sprintf("trace_id %x, span_id %x", bad.rec.TraceID, bad.rec.SpanID)
			}
			return bad.field, fmt.Sprintf("trace_id %x, span_id %x", bad.rec.TraceID, bad.rec.SpanID)
		})
		switch connect.CodeOf(cerr) {
		case connect.CodeAlreadyExists, connect.CodeFailedPrecondition, connect.CodeInvalidArgument:
		default:
			return in.b.fail(in.ctx, in.proc, err, nil)
		}
		keep := in.batch[:0]
		for i, p := range in.batch {
			switch {
			case closed && p.rec.TraceID == tc.Trace:
				p.trace.closed = true // its later items too
				if p.field != "" {
					in.rej.add(true, fmt.Sprintf("%s: %v", p.field, tc))
				}
			case i == re.Record && p.field == "":
				p.res.bad = fmt.Sprintf("its trace's resource entry could not be appended: %s", errMessage(cerr))
			case i == re.Record:
				in.rej.add(true, errMessage(cerr))
			case p.field != "" && p.res == bad.res && bad.field == "":
				in.rej.add(true, fmt.Sprintf("%s: %s", p.field, bad.res.bad))
			default:
				keep = append(keep, p)
			}
		}
		in.batch = keep
	}
	in.batch, in.batchBytes = in.batch[:0], 0
	return nil
}

// classify gives the batch's items their retention classes under c: a
// log record whose span is in the log its span's class if no rule of c
// matches it, else the longer-kept of its rule's class and its span's
// (retention.Classification.Longer). Then each resource entry
// the class, among those of the items in the batch that refer to it, that
// c keeps longest (the sweep keeps it longer still while its trace is kept:
// docs/RETENTION.md, "Resource entries").
func (in *ingestion) classify(c *retention.Classification) {
	for i := range in.batch {
		p := &in.batch[i]
		if p.facts == nil {
			continue
		}
		p.rec.RetentionClass = c.Class(*p.facts)
		switch {
		case p.spanClass == "":
		case p.rec.RetentionClass == retention.DefaultClass:
			// No rule names the record: it is kept with its span, no
			// longer (an event holding a model's output does not outlive
			// the model call a rule keeps briefly).
			p.rec.RetentionClass = p.spanClass
		default:
			// A rule in force where it commits names it: that rule
			// applies, and the record stays at least as long as its span.
			p.rec.RetentionClass = c.Longer(p.rec.RetentionClass, p.spanClass)
		}
	}
	for i := range in.batch {
		p := &in.batch[i]
		if p.field != "" {
			continue
		}
		best := ""
		for _, q := range in.batch {
			if q.field != "" && q.res == p.res {
				best = c.Longer(best, q.rec.RetentionClass)
			}
		}
		p.rec.RetentionClass = best
	}
}

// errMessage is the text of an error for a client, without its code.
func errMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
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

// byName finds a registered version by kind, name and label: it seeks the
// tenant's version index to just before the label, so that it reads the
// label's entry (and, at most, entries of labels that sort between).
func (r *versionResolver) byName(ctx context.Context, kind format.VersionKind, name, label string) (string, bool, error) {
	// ListVersions continues after the index key (kind, name, 0, after);
	// the greatest key below (kind, name, 0, label) starts with this.
	after := append(append([]byte{byte(kind)}, name...), 0)
	after = append(after, label[:len(label)-1]...)
	if c := label[len(label)-1]; c > 0 {
		after = append(after, c-1)
	}
	for {
		vs, next, err := r.l.ListVersions(ctx, r.tenant, kind, name, after, 16)
		if err != nil {
			return "", false, err
		}
		for _, v := range vs {
			switch {
			case v.Label == label:
				return fmt.Sprintf("%x", v.ID), true, nil
			case v.Label > label:
				return "", false, nil
			}
		}
		if next == nil {
			return "", false, nil
		}
		after = next
	}
}
