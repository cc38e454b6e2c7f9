package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

// The report is bounded, so that it never exceeds MaxReportBytes: at most
// MaxReportSpans spans in detail (traces past it are listed by id, at most
// maxOmittedListed of them), each text clipped to maxViewText bytes, at
// most maxViewItems messages or documents a span, at most maxVersionsShown
// versions. What is clipped is in the entry files, and the report says so.
const (
	MaxReportSpans   = 2000
	maxOmittedListed = 10_000
	maxViewText      = 2048
	maxViewItems     = 20
	maxVersionsShown = 1000
)

// clip returns s cut to maxViewText bytes (at a character boundary), saying
// so.
func clip(s string) string { return clipTo(s, maxViewText) }

func clipTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d bytes in all; the whole text is in the entry file)", len(s))
}

// firstItems returns the first maxViewItems of xs.
func firstItems[T any](xs []T) []T { return xs[:min(len(xs), maxViewItems)] }

// ReportInfo is what the report says about the bundle as a whole.
type ReportInfo struct {
	Origin, Tenant, LogKey string
	TreeSize               uint64
	Root                   string
	CreatedAt              time.Time
	Selector               Selector
	Traces                 int
}

// ReportWriter writes report.html trace by trace.
type ReportWriter struct {
	w        io.Writer
	versions map[[32]byte]*versionView
	shown    int
	omitted  int // traces not shown in detail
	err      error
}

type versionView struct {
	ID, Kind, Name, Label, MediaType, Preview string
	Index                                     uint64
}

type msgView struct{ Role, Text string }

type spanView struct {
	Index                         uint64
	Depth                         int
	Indent                        int
	Name, Kind, Status, StatusMsg string
	Start, Duration               string
	OffsetPct, WidthPct           float64
	Provider, Model, Params       string
	InTokens, OutTokens           int64
	Cost                          string
	Session, Subject              string
	System                        string
	Inputs, Outputs               []msgView
	RetrievalQuery, DataSource    string
	Docs                          []docView
	Tool                          *toolView
	Guardrail, GuardrailOutcome   string
	GuardrailDetail               string
	Versions                      []string
	Erased                        bool
	Undecodable                   string
	Error                         bool
	Clipped                       bool // more messages or documents than shown
	// Attempt of Attempts: one of several attempts at one step (retries
	// and fallbacks, see Attempts); zero for a step tried once.
	Attempt, Attempts int
	// OTLP is the span as an OpenTelemetry exporter sent it, as text.
	OTLP string
}

type traceView struct {
	ID       string
	Start    string
	Duration string
	Spans    []spanView
	Tokens   int64
	Cost     string
	Omitted  bool
}

// NewReportWriter starts the report. versions are the bundle's version
// entries (with payloads), shown as "in force" where spans reference them.
func NewReportWriter(w io.Writer, info ReportInfo, versions []*Entry) *ReportWriter {
	r := &ReportWriter{w: w, versions: map[[32]byte]*versionView{}}
	var vs []*versionView
	for _, e := range versions {
		h, err := format.ParseHeader(e.Header)
		if err != nil || e.Erased {
			continue
		}
		id := h.Refs.Ref(format.VersionKind(h.SubKind))
		m, err := ParsePayload(format.KindVersion, e.Payload)
		if err != nil {
			vv := &versionView{ID: hex.EncodeToString(id[:]), Kind: format.VersionKind(h.SubKind).String(), Name: "(payload not decodable)",
				Preview: err.Error(), Index: h.Index}
			r.versions[id] = vv
			vs = append(vs, vv)
			continue
		}
		v := m.(*v1.Version)
		vv := &versionView{ID: hex.EncodeToString(id[:]), Kind: format.VersionKind(h.SubKind).String(), Name: clip(v.GetName()),
			Label: clip(v.GetLabel()), MediaType: clip(v.GetMediaType()), Index: h.Index, Preview: clip(string(v.GetContent()))}
		r.versions[id] = vv
		vs = append(vs, vv)
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].Index < vs[j].Index })
	more := max(0, len(vs)-maxVersionsShown)
	r.err = reportTmpl.ExecuteTemplate(w, "head", map[string]any{"Info": info, "Versions": vs[:len(vs)-more], "MoreVersions": more})
	return r
}

// Fits reports whether a trace of n spans is shown in detail; a trace
// that does not is only listed (Omitted), and its entries need not be read.
func (r *ReportWriter) Fits(n int) bool { return r.shown+n <= MaxReportSpans }

// Omitted lists a trace whose spans the report does not show.
func (r *ReportWriter) Omitted(trace [16]byte) {
	if r.omitted++; r.err == nil && r.omitted <= maxOmittedListed {
		r.err = reportTmpl.ExecuteTemplate(r.w, "trace", traceView{ID: hex.EncodeToString(trace[:]), Omitted: true})
	}
}

// Trace adds one trace's decision path; entries are its span entries.
func (r *ReportWriter) Trace(trace [16]byte, entries []*Entry) {
	if !r.Fits(len(entries)) {
		r.Omitted(trace)
		return
	}
	tb := r.StartTrace(trace)
	for _, e := range entries {
		tb.Add(e)
	}
	tb.Close()
}

// WriteTraces adds the decision paths of traces, in order, as Trace would
// one after the other: a trace is shown in detail if it fits (by its
// number of spans, sizes[i]) after the traces before it, and listed
// otherwise. read(i, add) must call add with the span entries of trace i,
// in order; it is called for the traces shown only, on up to GOMAXPROCS
// goroutines at once, each trace laid out into its own buffer, and the
// buffers written in order, at most 2·GOMAXPROCS of them held at a time.
// The report's bytes are those of Trace. It returns read's first error in
// trace order; every goroutine has ended when it returns.
func (r *ReportWriter) WriteTraces(traces [][16]byte, sizes []int, read func(i int, add func(*Entry)) error) error {
	type laidOut struct {
		buf bytes.Buffer
		err error
	}
	workers := runtime.GOMAXPROCS(0)
	pending := make(chan chan *laidOut, workers) // in trace order
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	wg.Add(1) // the producer too, so that its wg.Add calls precede Wait's end
	go func() {
		defer wg.Done()
		defer close(pending)
		shown := r.shown
		sem := make(chan struct{}, workers)
		for i, t := range traces {
			if shown+sizes[i] > MaxReportSpans {
				select {
				case pending <- nil: // listed only
					continue
				case <-done:
					return
				}
			}
			shown += sizes[i]
			out := make(chan *laidOut, 1)
			select {
			case pending <- out:
			case <-done:
				return
			}
			select {
			case sem <- struct{}{}:
			case <-done:
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				lo := &laidOut{}
				sub := &ReportWriter{w: &lo.buf, versions: r.versions}
				tb := sub.StartTrace(t)
				lo.err = read(i, tb.Add)
				tb.Close()
				if lo.err == nil {
					lo.err = sub.err
				}
				out <- lo
			}()
		}
	}()
	i := 0
	for out := range pending {
		t := traces[i]
		i++
		if out == nil {
			r.Omitted(t)
			continue
		}
		lo := <-out
		if lo.err != nil {
			return lo.err
		}
		r.shown += sizes[i-1]
		if r.err == nil {
			_, r.err = r.w.Write(lo.buf.Bytes())
		}
	}
	return r.err
}

// TraceBuilder gathers the spans of one trace for the report. It keeps of
// each span only its header and its view, whose texts are clipped, never
// its payload: a trace of big spans costs the report the views alone. An
// OpenTelemetry span is shown with its resource and scope, which its
// trace's resource entry holds: the builder keeps each resource entry's
// bytes, and the source of a span only while its resource entry has not
// been added yet (resource entries are appended before the spans that
// refer to them).
type TraceBuilder struct {
	r     *ReportWriter
	trace [16]byte
	added int
	nodes map[[8]byte]*reportNode
	all   []*reportNode
	// OTLP resource entries are shown within the spans that refer to
	// them ("as received"), not as spans: resources holds their
	// resource_scope by its SHA-256, resourceIDs the span ids of resource
	// entries, added or referred to.
	resources   map[[32]byte][]byte
	resourceIDs map[[8]byte]bool
}

type reportNode struct {
	h          *format.Header
	view       spanView
	start, end time.Time
	err        bool
	children   []*reportNode
	attempt    Attempt
	// otlp is the source of an OpenTelemetry span whose resource entry
	// was not yet added: its view's OTLP text is written at Close.
	otlp *v1.OtlpSource
}

// StartTrace starts one trace's decision path: Add each of its span
// entries (at most what Fits allowed), then Close.
func (r *ReportWriter) StartTrace(trace [16]byte) *TraceBuilder {
	return &TraceBuilder{r: r, trace: trace, nodes: map[[8]byte]*reportNode{},
		resources: map[[32]byte][]byte{}, resourceIDs: map[[8]byte]bool{}}
}

// Add adds a span entry; the entry is not kept.
func (b *TraceBuilder) Add(e *Entry) {
	h, err := format.ParseHeader(e.Header)
	if err != nil || b.r.err != nil {
		return
	}
	b.added++
	sp, undecodable := &v1.Span{}, ""
	if !e.Erased {
		if m, err := ParsePayload(format.KindSpan, e.Payload); err != nil {
			undecodable = err.Error()
		} else {
			sp = m.(*v1.Span)
		}
	}
	src := sp.GetOtlp()
	var resourceScope []byte
	switch FormOf(src) {
	case OTLPResource:
		b.resources[sha256.Sum256(src.GetResourceScope())] = src.GetResourceScope()
		b.resourceIDs[h.SpanID] = true
		return
	case OTLPSpan, OTLPLogRecord:
		b.resourceIDs[ResourceEntrySpanID(b.trace[:], src.GetResourceScopeSha256())] = true
		resourceScope = b.resourceOf(src)
	}
	n := &reportNode{h: h, view: b.r.spanView(e, h, sp, undecodable, resourceScope), start: h.AppendedAt, end: h.AppendedAt,
		err: sp.GetStatus().GetCode() == v1.StatusCode_STATUS_CODE_ERROR}
	if f := FormOf(src); (f == OTLPSpan || f == OTLPLogRecord) && resourceScope == nil {
		n.otlp = src
	}
	if sp.GetStartTime() != nil {
		n.start = sp.GetStartTime().AsTime()
	}
	if sp.GetEndTime() != nil {
		n.end = sp.GetEndTime().AsTime()
	}
	b.nodes[h.SpanID] = n
	b.all = append(b.all, n)
}

// resourceOf returns the resource_scope a span's source refers to, nil if
// its resource entry was not added.
func (b *TraceBuilder) resourceOf(src *v1.OtlpSource) []byte {
	if len(src.GetResourceScopeSha256()) != sha256.Size {
		return nil
	}
	return b.resources[[32]byte(src.GetResourceScopeSha256())]
}

// Close lays the trace out and writes it.
func (b *TraceBuilder) Close() {
	r := b.r
	if r.err != nil {
		return
	}
	r.shown += b.added
	// A span id some span refers to as its resource entry's is not shown
	// as a span, whatever the order of the entries: an erased resource
	// entry has no source to tell what it is.
	all := b.all[:0]
	for _, n := range b.all {
		if b.resourceIDs[n.h.SpanID] {
			delete(b.nodes, n.h.SpanID)
			continue
		}
		if n.otlp != nil {
			n.view.OTLP = clipTo(otlpText(n.otlp, b.resourceOf(n.otlp)), 8*maxViewText)
			n.otlp = nil
		}
		all = append(all, n)
	}
	b.all = all
	if len(b.all) == 0 {
		return
	}
	tv := traceView{ID: hex.EncodeToString(b.trace[:])}
	var roots []*reportNode
	for _, n := range b.all {
		if p := b.nodes[n.h.ParentSpanID]; p != nil && n.h.ParentSpanID != ([8]byte{}) && p != n {
			p.children = append(p.children, n)
		} else {
			roots = append(roots, n)
		}
	}
	t0, t1 := b.all[0].start, b.all[0].end
	for _, n := range b.all {
		if n.start.Before(t0) {
			t0 = n.start
		}
		if n.end.After(t1) {
			t1 = n.end
		}
	}
	markAttempts := func(ns []*reportNode) {
		in := make([]AttemptSpan, len(ns))
		for i, n := range ns {
			in[i] = AttemptSpan{Kind: v1.SpanKind(n.h.SubKind), Start: n.start, Error: n.err}
		}
		for i, a := range Attempts(in) {
			ns[i].attempt = a
		}
	}
	markAttempts(roots)
	for _, n := range b.all {
		markAttempts(n.children)
	}
	total := t1.Sub(t0)
	tv.Start, tv.Duration = t0.UTC().Format(time.RFC3339Nano), total.String()
	var costs []string
	var walk func(n *reportNode, depth int)
	walk = func(n *reportNode, depth int) {
		sv := n.view
		sv.Depth, sv.Indent = depth, depth*16
		sv.Attempt, sv.Attempts = n.attempt.N, n.attempt.Of
		if total > 0 {
			sv.OffsetPct = float64(n.start.Sub(t0)) / float64(total) * 100
			sv.WidthPct = max(float64(n.end.Sub(n.start))/float64(total)*100, 0.5)
		} else {
			sv.WidthPct = 100
		}
		tv.Tokens += sv.InTokens + sv.OutTokens
		if sv.Cost != "" {
			costs = append(costs, sv.Cost)
		}
		tv.Spans = append(tv.Spans, sv)
		sort.Slice(n.children, func(i, j int) bool { return n.children[i].start.Before(n.children[j].start) })
		for _, c := range n.children {
			walk(c, depth+1)
		}
	}
	sort.Slice(roots, func(i, j int) bool { return roots[i].start.Before(roots[j].start) })
	for _, n := range roots {
		walk(n, 0)
	}
	tv.Cost = strings.Join(costs, " + ")
	r.err = reportTmpl.ExecuteTemplate(r.w, "trace", tv)
}

func (r *ReportWriter) spanView(e *Entry, h *format.Header, s *v1.Span, undecodable string, resourceScope []byte) spanView {
	sv := spanView{Index: h.Index, Erased: e.Erased, Kind: strings.ToLower(strings.TrimPrefix(v1.SpanKind(h.SubKind).String(), "SPAN_KIND_"))}
	for k := format.VersionPrompt; k <= format.VersionPipeline; k++ {
		id := h.Refs.Ref(k)
		if id == ([32]byte{}) {
			continue
		}
		if v := r.versions[id]; v != nil {
			sv.Versions = append(sv.Versions, fmt.Sprintf("%s %s %s", k, v.Name, v.Label))
		} else {
			sv.Versions = append(sv.Versions, fmt.Sprintf("%s %x (not in bundle)", k, id[:8]))
		}
	}
	if e.Erased {
		sv.Name = "(payload erased)"
		return sv
	}
	if undecodable != "" {
		sv.Name, sv.Undecodable = "(payload not decodable)", undecodable
		return sv
	}
	sv.Name, sv.Session, sv.Subject = clip(s.GetName()), clip(s.GetSessionId()), clip(s.GetSubjectId())
	if st, et := s.GetStartTime(), s.GetEndTime(); st != nil && et != nil {
		sv.Start = st.AsTime().UTC().Format("15:04:05.000")
		sv.Duration = et.AsTime().Sub(st.AsTime()).String()
	}
	switch s.GetStatus().GetCode() {
	case v1.StatusCode_STATUS_CODE_ERROR:
		sv.Status, sv.Error = "error", true
	case v1.StatusCode_STATUS_CODE_OK:
		sv.Status = "ok"
	}
	sv.StatusMsg = clip(s.GetStatus().GetMessage())
	if m := s.GetModel(); m != nil {
		sv.Provider = clip(m.GetProvider())
		sv.Model = clip(m.GetRequestModel())
		if m.GetResponseModel() != "" && m.GetResponseModel() != m.GetRequestModel() {
			sv.Model += " → " + clip(m.GetResponseModel())
		}
		var ps []string
		if m.Temperature != nil {
			ps = append(ps, fmt.Sprintf("temperature %g", m.GetTemperature()))
		}
		if m.MaxTokens != nil {
			ps = append(ps, fmt.Sprintf("max_tokens %d", m.GetMaxTokens()))
		}
		if m.TopP != nil {
			ps = append(ps, fmt.Sprintf("top_p %g", m.GetTopP()))
		}
		sv.Params = strings.Join(ps, ", ")
	}
	if u := s.GetUsage(); u != nil {
		sv.InTokens, sv.OutTokens = u.GetInputTokens(), u.GetOutputTokens()
		if u.GetCost() > 0 {
			sv.Cost = fmt.Sprintf("%.6g %s", u.GetCost(), clip(u.GetCurrency()))
		}
	}
	c := s.GetContent()
	sv.System = clip(c.GetSystemInstructions())
	sv.Inputs, sv.Outputs = msgViews(c.GetInputMessages()), msgViews(c.GetOutputMessages())
	sv.Clipped = len(c.GetInputMessages()) > maxViewItems || len(c.GetOutputMessages()) > maxViewItems
	if rt := c.GetRetrieval(); rt != nil {
		sv.RetrievalQuery, sv.DataSource = clip(rt.GetQuery()), clip(rt.GetDataSource())
		for _, d := range firstItems(rt.GetDocuments()) {
			sv.Docs = append(sv.Docs, docView{ID: clip(d.GetId()), SourceURI: clip(d.GetSourceUri()), Version: clip(d.GetVersion()),
				Digest: clip(d.GetContentDigest()), Score: d.GetScore(), Text: clip(d.GetText())})
		}
		sv.Clipped = sv.Clipped || len(rt.GetDocuments()) > maxViewItems
	}
	if tc := c.GetToolCall(); tc != nil {
		sv.Tool = &toolView{Name: clip(tc.GetName()), CallID: clip(tc.GetCallId()), Type: clip(tc.GetType()), Arguments: clip(tc.GetArguments()), Result: clip(tc.GetResult())}
	}
	sv.OTLP = clipTo(otlpText(s.GetOtlp(), resourceScope), 8*maxViewText)
	if g := c.GetGuardrail(); g != nil {
		sv.Guardrail, sv.GuardrailDetail = clip(g.GetName()), clip(g.GetDetail())
		sv.GuardrailOutcome = strings.ToLower(strings.TrimPrefix(g.GetOutcome().String(), "GUARDRAIL_OUTCOME_"))
	}
	return sv
}

type docView struct {
	ID, SourceURI, Version, Digest, Text string
	Score                                float64
}

type toolView struct{ Name, CallID, Type, Arguments, Result string }

func msgViews(ms []*v1.Message) []msgView {
	var out []msgView
	for _, m := range firstItems(ms) {
		var parts []string
		for _, p := range firstItems(m.GetParts()) {
			switch x := p.GetPart().(type) {
			case *v1.MessagePart_Text:
				parts = append(parts, x.Text)
			case *v1.MessagePart_ToolCall:
				parts = append(parts, fmt.Sprintf("[tool call %s(%s)]", x.ToolCall.GetName(), x.ToolCall.GetArguments()))
			case *v1.MessagePart_ToolCallResponse:
				parts = append(parts, fmt.Sprintf("[tool result %s]", x.ToolCallResponse.GetResult()))
			case *v1.MessagePart_Uri:
				parts = append(parts, "[uri "+x.Uri+"]")
			case *v1.MessagePart_Blob:
				parts = append(parts, fmt.Sprintf("[%s, %d bytes]", x.Blob.GetMimeType(), len(x.Blob.GetData())))
			case *v1.MessagePart_Reasoning:
				parts = append(parts, "[reasoning] "+x.Reasoning)
			}
		}
		out = append(out, msgView{Role: clip(m.GetRole()), Text: clip(strings.Join(parts, "\n"))})
	}
	return out
}

// Close finishes the report and returns the first error met.
func (r *ReportWriter) Close() error {
	if r.err != nil {
		return r.err
	}
	return reportTmpl.ExecuteTemplate(r.w, "foot", map[string]any{"Shown": r.shown, "Max": MaxReportSpans,
		"MoreOmitted": max(0, r.omitted-maxOmittedListed)})
}

var reportTmpl = template.Must(template.New("report").Parse(`
{{define "head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Veritrace evidence: {{.Info.Tenant}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px} h3{font-size:15px;margin:16px 0 6px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:14px 16px;margin:10px 0}
.muted{color:#5d6778} code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px;word-break:break-all}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef2;vertical-align:top}
th{font-weight:600;color:#3b4454;background:#fafbfc}
.wf{position:relative;height:14px;background:#eef1f5;border-radius:3px;min-width:180px}
.bar{position:absolute;top:2px;height:10px;border-radius:2px;background:#4a78c2}
.k-generation .bar{background:#7b4fc2} .k-retrieval .bar{background:#2f9e6e} .k-tool .bar{background:#c28a2f}
.k-guardrail .bar{background:#c24f4f} .k-agent .bar{background:#2f7fc2}
.err{color:#b42318;font-weight:600} .tag{display:inline-block;padding:0 6px;border-radius:10px;background:#eef1f5;font-size:12px}
details{margin:4px 0 8px} summary{cursor:pointer;color:#2f5fa7}
pre{white-space:pre-wrap;background:#f4f5f7;border-radius:4px;padding:8px;margin:4px 0;font-size:12.5px}
.verify{border-left:4px solid #2f9e6e}
</style></head><body><main>
<h1>Evidence bundle: decision paths</h1>
<div class="muted">Tenant <b>{{.Info.Tenant}}</b> · log <code>{{.Info.Origin}}</code> · exported {{.Info.CreatedAt.UTC.Format "2006-01-02 15:04:05 MST"}} · {{.Info.Traces}} trace(s)</div>
<div class="card">
<table>
<tr><th>Selector</th><td>{{with .Info.Selector}}{{if .TraceID}}trace <code>{{.TraceID}}</code> {{end}}{{if .SessionID}}session <code>{{.SessionID}}</code> {{end}}{{if .SubjectID}}subject <code>{{.SubjectID}}</code> {{end}}{{if not .From.IsZero}}from {{.From.UTC.Format "2006-01-02T15:04:05Z"}} {{end}}{{if not .To.IsZero}}to {{.To.UTC.Format "2006-01-02T15:04:05Z"}} {{end}}{{if .VersionID}}version <code>{{.VersionID}}</code> {{end}}{{if .Kind}}kind {{.Kind}} {{end}}{{if .Model}}model <code>{{.Model}}</code> {{end}}{{if .ErrorsOnly}}errors only{{end}}{{end}} <span class="muted">(times are when the ledger appended the span)</span></td></tr>
<tr><th>Checkpoint</th><td>tree size {{.Info.TreeSize}}, root <code>{{.Info.Root}}</code></td></tr>
<tr><th>Log key</th><td><code>{{.Info.LogKey}}</code></td></tr>
</table></div>
<div class="card verify">
<h3>What to check before relying on this report</h3>
<p>This page is a view of the bundle; by itself it proves nothing. Verify the bundle on your own machine,
with the log's public key obtained from the operator out of band:</p>
<pre>veritrace verify bundle.zip --key log.pub [--pinned-checkpoint checkpoint-you-hold.txt]</pre>
<p>The verifier checks the signature over the manifest, the digest of every file (this report included), the
signed checkpoint, that each entry's payload matches the salted commitment in its header, each leaf hash, each
inclusion proof against the checkpoint, that every referenced version is in the bundle, and, given a checkpoint you
already hold, that the log only grew since. It needs no server. A bundle proves that what it holds was recorded; it
cannot prove that a trace has no other spans.</p>
</div>
<h2>Versions in force</h2>
{{if .Versions}}<div class="card"><table><tr><th>Kind</th><th>Name</th><th>Label</th><th>Entry</th><th>Id</th></tr>
{{range .Versions}}<tr><td>{{.Kind}}</td><td>{{.Name}}</td><td>{{.Label}}</td><td>{{.Index}}</td><td><code>{{.ID}}</code></td></tr>
<tr><td></td><td colspan="4"><details><summary>content ({{.MediaType}})</summary><pre>{{.Preview}}</pre></details></td></tr>{{end}}
</table>{{if .MoreVersions}}<p class="muted">… and {{.MoreVersions}} more versions, in the bundle's entry files.</p>{{end}}</div>{{else}}<p class="muted">No span in this bundle references a registered version.</p>{{end}}
<h2>Traces</h2>
{{end}}

{{define "trace"}}<div class="card">
<h3>Trace <code>{{.ID}}</code></h3>
{{if .Omitted}}<p class="muted">Not shown: this report shows at most the first spans; the trace's entries are in the bundle.</p>{{else}}
<div class="muted">started {{.Start}} · took {{.Duration}} · {{len .Spans}} span(s) · {{.Tokens}} tokens{{if .Cost}} · cost {{.Cost}}{{end}}</div>
<table>
<tr><th style="width:34%">Step</th><th>Kind</th><th>Model</th><th>Tokens in/out</th><th>Duration</th><th style="width:24%">Timeline</th></tr>
{{range .Spans}}<tr class="k-{{.Kind}}">
<td><span style="padding-left:{{.Indent}}px">{{if or .Erased .Undecodable}}<i>{{.Name}}</i>{{else}}{{.Name}}{{end}}</span>{{if .Error}} <span class="err">error</span>{{end}}{{if .Attempts}} <span class="tag" title="inferred from the spans, which do not say: sibling model calls in order of start, every one but the last failed">likely attempt {{.Attempt}} of {{.Attempts}}</span>{{end}} <span class="muted">#{{.Index}}</span></td>
<td><span class="tag">{{.Kind}}</span></td>
<td>{{if .Model}}{{.Provider}} {{.Model}}{{if .Params}}<div class="muted">{{.Params}}</div>{{end}}{{end}}</td>
<td>{{if or .InTokens .OutTokens}}{{.InTokens}} / {{.OutTokens}}{{end}}{{if .Cost}}<div class="muted">{{.Cost}}</div>{{end}}</td>
<td>{{.Duration}}</td>
<td><div class="wf"><div class="bar" style="left:{{printf "%.2f" .OffsetPct}}%;width:{{printf "%.2f" .WidthPct}}%"></div></div></td>
</tr>
<tr class="k-{{.Kind}}"><td colspan="6" style="padding-left:{{.Indent}}px">
{{if .Erased}}<span class="muted">The payload of this entry was erased; its header and proofs remain.</span>{{else if .Undecodable}}<span class="err">The payload of this entry cannot be shown: {{.Undecodable}}. Its bytes are in the entry file.</span>{{else}}
<details><summary>details</summary>
{{if .Versions}}<div>versions in force: {{range .Versions}}<span class="tag">{{.}}</span> {{end}}</div>{{end}}
{{if .StatusMsg}}<div class="err">{{.StatusMsg}}</div>{{end}}
{{if .Session}}<div class="muted">session {{.Session}}{{if .Subject}} · subject {{.Subject}}{{end}}</div>{{else if .Subject}}<div class="muted">subject {{.Subject}}</div>{{end}}
{{if .System}}<div><b>system instructions</b><pre>{{.System}}</pre></div>{{end}}
{{range .Inputs}}<div><b>input · {{.Role}}</b><pre>{{.Text}}</pre></div>{{end}}
{{range .Outputs}}<div><b>output · {{.Role}}</b><pre>{{.Text}}</pre></div>{{end}}
{{if or .RetrievalQuery .Docs}}<div><b>retrieval</b>{{if .DataSource}} from {{.DataSource}}{{end}}{{if .RetrievalQuery}}<pre>{{.RetrievalQuery}}</pre>{{end}}
<table><tr><th>Document</th><th>Source</th><th>Version</th><th>Digest</th><th>Score</th></tr>
{{range .Docs}}<tr><td>{{.ID}}</td><td>{{.SourceURI}}</td><td>{{.Version}}</td><td><code>{{.Digest}}</code></td><td>{{printf "%.4g" .Score}}</td></tr>{{if .Text}}<tr><td colspan="5"><pre>{{.Text}}</pre></td></tr>{{end}}{{end}}
</table></div>{{end}}
{{if .Clipped}}<div class="muted">Only the first {{"20"}} messages and documents are shown; all are in the entry file.</div>{{end}}
{{with .Tool}}<div><b>tool call</b> {{.Name}} <span class="muted">{{.CallID}} {{.Type}}</span><pre>arguments: {{.Arguments}}
result: {{.Result}}</pre></div>{{end}}
{{if .Guardrail}}<div><b>guardrail</b> {{.Guardrail}}: <span class="tag">{{.GuardrailOutcome}}</span>{{if .GuardrailDetail}}<pre>{{.GuardrailDetail}}</pre>{{end}}</div>{{end}}
{{if .OTLP}}<details><summary>as received over OpenTelemetry (OTLP)</summary><pre>{{.OTLP}}</pre></details>{{end}}
</details>{{end}}
</td></tr>{{end}}
</table>{{end}}
</div>
{{end}}

{{define "foot"}}{{if .MoreOmitted}}<div class="card"><p class="muted">… and {{.MoreOmitted}} more traces not shown; the manifest lists every trace and the entry files hold them.</p></div>{{end}}
<p class="muted">{{.Shown}} span(s) shown in detail (at most {{.Max}}); long texts are clipped. Generated by Veritrace.</p>
</main></body></html>
{{end}}
`))
