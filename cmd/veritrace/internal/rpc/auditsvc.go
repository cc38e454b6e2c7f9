package rpc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit"
	"github.com/veritrace/veritrace/audit/bundle"
	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/ledger/format"
)

type auditService struct {
	*service
	search *audit.Searcher
	export *audit.Exporter
	// maxTraceBytes caps a GetTrace answer's span content
	// (Options.MaxTraceAnswerBytes).
	maxTraceBytes int
}

func newAuditService(s *service, maxTraceBytes int) *auditService {
	search := &audit.Searcher{L: s.l}
	return &auditService{service: s, search: search, export: &audit.Exporter{S: search, Now: s.now}, maxTraceBytes: maxTraceBytes}
}

// describeQuery names a query in the access log. Subject and session ids
// are personal data, kept for years in the access log, which erasure does
// not touch: they are named by their pseudonyms (n), so that an auditor
// can still find whose data was searched while the subject exists
// (ListAccessLog by subject) and nothing links the record to the id once
// the subject is erased.
func describeQuery(q *v1.TraceQuery, n namer) string {
	// The names first, right after the verb (namedIn reads them there):
	// each is of fixed length, so nothing a client sends comes before them
	// or pushes them past the target's cut. Then the trace id (a valid one
	// is 32 hex digits; any other is recorded by its length only, as the
	// call is refused), then the other conditions in a fixed order, free
	// text quoted.
	var names, parts []string
	if v := q.GetSessionId(); v != "" {
		names = append(names, "session="+n.id(audit.FieldSession, v))
	}
	if v := q.GetSubjectId(); v != "" {
		names = append(names, "subject="+n.id(audit.FieldSubject, v))
	}
	if t := q.GetTraceId(); len(t) == 16 {
		names = append(names, fmt.Sprintf("trace=%x", t))
	} else if len(t) > 0 {
		names = append(names, fmt.Sprintf("trace=(invalid, %d bytes)", len(t)))
	}
	for name, v := range map[string]string{"version": q.GetVersionId(), "model": q.GetModel()} {
		if v != "" {
			parts = append(parts, name+"="+quote(truncate(v), nil))
		}
	}
	if q.GetFrom() != nil {
		parts = append(parts, "from="+q.GetFrom().AsTime().Format("2006-01-02T15:04:05Z"))
	}
	if q.GetTo() != nil {
		parts = append(parts, "to="+q.GetTo().AsTime().Format("2006-01-02T15:04:05Z"))
	}
	if q.GetKind() != 0 {
		parts = append(parts, "kind="+strings.ToLower(strings.TrimPrefix(q.GetKind().String(), "SPAN_KIND_")))
	}
	if q.GetErrorsOnly() {
		parts = append(parts, "errors")
	}
	sort.Strings(parts)
	if len(names)+len(parts) == 0 {
		return "(everything)"
	}
	return strings.Join(append(names, parts...), " ")
}

// toQuery validates a TraceQuery; field is its path in the request.
func toQuery(field string, q *v1.TraceQuery) (audit.Query, bundle.Selector, error) {
	var out audit.Query
	var sel bundle.Selector
	if len(q.GetTraceId()) > 0 {
		if err := checkID(field+".trace_id", q.GetTraceId(), 16, true); err != nil {
			return out, sel, err
		}
		copy(out.TraceID[:], q.GetTraceId())
		sel.TraceID = fmt.Sprintf("%x", q.GetTraceId())
	}
	for name, v := range map[string]string{"session_id": q.GetSessionId(), "subject_id": q.GetSubjectId(), "model": q.GetModel()} {
		if err := checkString(field+"."+name, v, false); err != nil {
			return out, sel, err
		}
	}
	out.SessionID, out.SubjectID, out.Model = q.GetSessionId(), q.GetSubjectId(), q.GetModel()
	sel.SessionID, sel.SubjectID = q.GetSessionId(), q.GetSubjectId()
	for name, ts := range map[string]*timestamppb.Timestamp{"from": q.GetFrom(), "to": q.GetTo()} {
		if ts != nil {
			if err := ts.CheckValid(); err != nil {
				return out, sel, invalid(field+"."+name, "%v", err)
			}
		}
	}
	if q.GetFrom() != nil {
		out.From = q.GetFrom().AsTime()
		sel.From = out.From
	}
	if q.GetTo() != nil {
		out.To = q.GetTo().AsTime()
		sel.To = out.To
	}
	if !out.From.IsZero() && !out.To.IsZero() && !out.From.Before(out.To) {
		return out, sel, invalid(field+".to", "must be after from")
	}
	if q.GetVersionId() != "" {
		id, err := parseVersionID(q.GetVersionId())
		if err != nil {
			return out, sel, invalid(field+".version_id", "%v", err)
		}
		out.VersionID = id
		sel.VersionID = q.GetVersionId()
	}
	if k := q.GetKind(); k < 0 || k > v1.SpanKind_SPAN_KIND_OTHER {
		return out, sel, invalid(field+".kind", "unknown span kind %d", k)
	}
	out.Kind = uint8(q.GetKind())
	out.ErrorsOnly = q.GetErrorsOnly()
	sel.Kind, sel.Model, sel.ErrorsOnly = bundle.SpanKindName(out.Kind), out.Model, out.ErrorsOnly
	return out, sel, nil
}

func (s *auditService) GetTrace(ctx context.Context, req *connect.Request[v1.GetTraceRequest]) (*connect.Response[v1.GetTraceResponse], error) {
	const proc = veritracev1connect.AuditServiceGetTraceProcedure
	_, tenant := principalFrom(ctx)
	if err := checkID("trace_id", req.Msg.GetTraceId(), 16, true); err != nil {
		return nil, err
	}
	var trace [16]byte
	copy(trace[:], req.Msg.GetTraceId())
	from, err := indexToken(req.Msg.GetPageToken(), "GetTrace")
	if err != nil {
		return nil, err
	}
	p, err := s.search.DecisionPathPage(ctx, tenant, trace, from, s.maxTraceBytes)
	if errors.Is(err, audit.ErrTraceTooLarge) {
		return nil, connect.NewError(connect.CodeResourceExhausted, err)
	}
	if err != nil {
		return nil, s.fail(ctx, proc, err, nil)
	}
	resp := &v1.GetTraceResponse{TraceId: trace[:]}
	nodes := map[[8]byte]*v1.SpanNode{}
	var order []*v1.SpanNode
	parents := map[*v1.SpanNode][8]byte{}
	spans := make([]*v1.Span, len(p.Spans))
	decodeErrs := make([]error, len(p.Spans))
	for i, e := range p.Spans {
		if !e.Erased && !p.Omitted[e.Header.Index] {
			m, err := bundle.ParsePayload(format.KindSpan, e.Payload)
			if err == nil {
				spans[i] = m.(*v1.Span)
			}
			decodeErrs[i] = err
		}
	}
	// OTLP resource entries hold the resource and scope of the trace's
	// spans as received: shown within each span's otlp_json, not as spans.
	res := otlpResources(trace, p, spans)
	// The content is given in index order up to the cap, measured as sent
	// (the OTLP rendering may be larger than the payload): the first
	// span's always, then none past the first that does not fit.
	next, given := p.Next, 0
	for i, e := range p.Spans {
		h := e.Header
		if res.entries[h.Index] {
			continue
		}
		n := &v1.SpanNode{Index: h.Index, LeafHash: e.LeafHash[:], AppendedAt: timestamppb.New(h.AppendedAt),
			SpanId: h.SpanID[:], Kind: v1.SpanKind(h.SubKind), Erased: e.Erased, Header: headerProto(h), ErasedByTombstone: e.ErasedBy}
		switch {
		case e.Erased:
		case p.Omitted[h.Index] || next != 0 && h.Index >= next:
			n.ContentOmitted = true
		case decodeErrs[i] != nil:
			n.DecodeError = decodeErrs[i].Error()
		default:
			n.Span = spans[i]
			// A rendering aid: a source that does not render leaves it
			// empty rather than failing the whole answer.
			if j, err := otlp.SourceJSON(n.Span.GetOtlp(), res.of(n.Span.GetOtlp())); err == nil {
				n.OtlpJson = j
			}
		}
		if !e.Erased && !n.ContentOmitted {
			size := proto.Size(n.Span) + len(n.OtlpJson) + len(n.DecodeError)
			if given > 0 && given+size > s.maxTraceBytes {
				n.Span, n.OtlpJson, n.DecodeError, n.ContentOmitted = nil, "", "", true
				next = h.Index
			} else {
				given += size
			}
		}
		nodes[h.SpanID] = n
		parents[n] = h.ParentSpanID
		order = append(order, n)
	}
	start := func(n *v1.SpanNode) int64 {
		if n.GetSpan().GetStartTime() != nil {
			return n.GetSpan().GetStartTime().AsTime().UnixNano()
		}
		return n.GetAppendedAt().AsTime().UnixNano()
	}
	sort.SliceStable(order, func(i, j int) bool { return start(order[i]) < start(order[j]) })
	roots, kids := linkTree(order, nodes, parents)
	// Retries and fallbacks: sibling model calls, every one but the last
	// failed, are attempts at one step. Siblings are spans of one parent,
	// as sent, whatever the nesting cap does to where they are shown.
	markAttempts := func(ns []*v1.SpanNode) {
		in := make([]bundle.AttemptSpan, len(ns))
		for i, n := range ns {
			in[i] = bundle.AttemptSpan{Kind: n.Kind, Start: time.Unix(0, start(n)), Error: n.GetSpan().GetStatus().GetCode() == v1.StatusCode_STATUS_CODE_ERROR}
		}
		for i, a := range bundle.Attempts(in) {
			ns[i].Attempt, ns[i].Attempts = uint32(a.N), uint32(a.Of)
		}
	}
	markAttempts(roots)
	for _, n := range order {
		markAttempts(kids[n])
	}
	resp.Roots = nestTree(roots, kids)
	if next != 0 {
		resp.NextPageToken = indexTokenOf(next)
	}
	for _, e := range p.Versions {
		v, err := decodeVersion(e)
		if err != nil {
			return nil, s.fail(ctx, proc, err, nil)
		}
		resp.Versions = append(resp.Versions, v)
	}
	return connect.NewResponse(resp), nil
}

func (s *auditService) QueryTraces(ctx context.Context, req *connect.Request[v1.QueryTracesRequest]) (*connect.Response[v1.QueryTracesResponse], error) {
	_, tenant := principalFrom(ctx)
	q, _, err := toQuery("query", req.Msg.GetQuery())
	if err != nil {
		return nil, err
	}
	size, err := pageSize(req.Msg.GetPageSize())
	if err != nil {
		return nil, err
	}
	if req.Msg.GetWithSummaries() && size > maxSummaryPage {
		return nil, invalid("page_size", "at most %d with summaries, got %d", maxSummaryPage, size)
	}
	cursor, err := indexToken(req.Msg.GetPageToken(), "QueryTraces")
	if err != nil {
		return nil, err
	}
	hits, next, err := s.search.Traces(ctx, tenant, q, cursor, size, 0)
	if errors.Is(err, audit.ErrBadCursor) {
		return nil, invalid("page_token", "not a token returned by QueryTraces: it points beyond the log")
	}
	if err != nil {
		return nil, s.fail(ctx, veritracev1connect.AuditServiceQueryTracesProcedure, err, nil)
	}
	resp := &v1.QueryTracesResponse{}
	for _, h := range hits {
		resp.Traces = append(resp.Traces, &v1.TraceSummary{TraceId: h.TraceID[:], FirstIndex: h.FirstIndex, AppendedAt: timestamppb.New(h.AppendedAt)})
	}
	if req.Msg.GetWithSummaries() {
		if err := s.summaries(ctx, tenant, resp.Traces); err != nil {
			return nil, s.fail(ctx, veritracev1connect.AuditServiceQueryTracesProcedure, err, nil)
		}
	}
	if next != 0 {
		resp.NextPageToken = indexTokenOf(next)
	}
	return connect.NewResponse(resp), nil
}

// exportChunk is the size of the chunks a bundle is streamed in.
const exportChunk = 256 << 10

// chunkSender buffers bundle bytes and sends them in chunks.
type chunkSender struct {
	stream *connect.ServerStream[v1.ExportBundleResponse]
	buf    []byte
}

func (c *chunkSender) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), exportChunk-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		if len(c.buf) == exportChunk {
			if err := c.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (c *chunkSender) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	err := c.stream.Send(&v1.ExportBundleResponse{Chunk: c.buf})
	c.buf = make([]byte, 0, exportChunk)
	return err
}

func (s *auditService) ExportBundle(ctx context.Context, req *connect.Request[v1.ExportBundleRequest], stream *connect.ServerStream[v1.ExportBundleResponse]) error {
	const proc = veritracev1connect.AuditServiceExportBundleProcedure
	_, tenant := principalFrom(ctx)
	q, sel, err := toQuery("selector", req.Msg.GetSelector())
	if err != nil {
		return err
	}
	if sel == (bundle.Selector{}) {
		return invalid("selector", "name at least one condition: trace_id, session_id, subject_id, from, to, version_id, kind, model or errors_only")
	}
	out := &chunkSender{stream: stream, buf: make([]byte, 0, exportChunk)}
	_, err = s.export.Export(ctx, audit.ExportRequest{Tenant: tenant, Selector: sel, Query: q, KnownSize: req.Msg.GetKnownTreeSize()}, out)
	switch {
	case errors.Is(err, audit.ErrNothingSelected):
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("selector: %v", err))
	case errors.Is(err, audit.ErrErasureInProgress):
		return connect.NewError(connect.CodeUnavailable, audit.ErrErasureInProgress)
	}
	if err != nil {
		return s.fail(ctx, proc, err, nil)
	}
	return out.flush()
}

// traceResources are the OTLP resource entries of a trace that a page
// knows: their ledger indexes, and their resource_scope bytes by SHA-256.
type traceResources struct {
	entries map[uint64]bool
	bytes   map[[32]byte][]byte
}

// otlpResources finds the resource entries among a page's entries (spans
// holds their decoded payloads, nil when erased, omitted or undecodable):
// those the page read as one (audit.Path.Resources), and erased entries
// whose span id is that of the resource entry a span the page gives
// refers to. An omitted entry may be one too; the page that reads it
// leaves it out.
func otlpResources(trace [16]byte, p *audit.Path, spans []*v1.Span) traceResources {
	r := traceResources{entries: map[uint64]bool{}, bytes: map[[32]byte][]byte{}}
	refs := map[[8]byte]bool{}
	for i, e := range p.Spans {
		src := spans[i].GetOtlp()
		switch {
		case p.Resources[e.Header.Index]:
			r.entries[e.Header.Index] = true
			r.bytes[sha256.Sum256(src.GetResourceScope())] = src.GetResourceScope()
		case bundle.FormOf(src) == bundle.OTLPSpan, bundle.FormOf(src) == bundle.OTLPLogRecord:
			refs[bundle.ResourceEntrySpanID(trace[:], src.GetResourceScopeSha256())] = true
		}
	}
	for _, e := range p.Spans {
		if e.Erased && refs[e.Header.SpanID] && bundle.MayBeResourceEntry(e.Header) {
			r.entries[e.Header.Index] = true
		}
	}
	return r
}

// of returns the resource_scope a span's source refers to, nil when the
// trace's entries do not hold it.
func (r traceResources) of(src *v1.OtlpSource) []byte {
	if len(src.GetResourceScopeSha256()) != sha256.Size {
		return nil
	}
	return r.bytes[[32]byte(src.GetResourceScopeSha256())]
}

// indexTokenOf is the page token that names ledger index i: its 8 bytes,
// big-endian, in unpadded base64url. It says where to read from next, and
// nothing else.
func indexTokenOf(i uint64) string {
	return base64.RawURLEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, i))
}

// indexToken reads a page token of procedure proc (indexTokenOf); "" is 0.
func indexToken(t, proc string) (uint64, error) {
	if t == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil || len(b) != 8 {
		return 0, invalid("page_token", "not a token returned by %s", proc)
	}
	return binary.BigEndian.Uint64(b), nil
}
