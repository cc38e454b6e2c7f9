package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
)

// queryFlags are the selector flags of query and export.
type queryFlags struct {
	trace, session, subject, from, to, version, kind, model string
	errors                                                  bool
}

func (q *queryFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&q.trace, "trace", "", "trace id: "+traceIDForms)
	fs.StringVar(&q.session, "session", "", "session id")
	fs.StringVar(&q.subject, "subject", "", "subject (end user) id")
	fs.StringVar(&q.from, "from", "", "appended at or after this time: "+timeForms)
	fs.StringVar(&q.to, "to", "", "appended before this time: "+timeForms)
	fs.StringVar(&q.version, "version", "", "a referenced prompt, policy or pipeline version id")
	fs.StringVar(&q.kind, "kind", "", "span kind: generation, embedding, retrieval, tool, agent, chain, guardrail, other")
	fs.StringVar(&q.model, "model", "", "request or response model")
	fs.BoolVar(&q.errors, "errors", false, "only spans whose status is an error")
}

func (q *queryFlags) proto() (*v1.TraceQuery, error) {
	out := &v1.TraceQuery{SessionId: q.session, SubjectId: q.subject, VersionId: q.version, Model: q.model, ErrorsOnly: q.errors}
	if q.trace != "" {
		b, err := parseTraceID("--trace", q.trace)
		if err != nil {
			return nil, err
		}
		out.TraceId = b
	}
	for name, s := range map[string]string{"from": q.from, "to": q.to} {
		if s == "" {
			continue
		}
		t, err := parseTimeFlag("--"+name, s)
		if err != nil {
			return nil, err
		}
		if name == "from" {
			out.From = timestamppb.New(t)
		} else {
			out.To = timestamppb.New(t)
		}
	}
	if q.kind != "" {
		k, ok := v1.SpanKind_value["SPAN_KIND_"+strings.ToUpper(q.kind)]
		if !ok || k == 0 {
			return nil, fmt.Errorf("--kind %q is not a span kind", q.kind)
		}
		out.Kind = v1.SpanKind(k)
	}
	return out, nil
}

func runTrace(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print the whole answer as proto JSON: every span with its content, and the versions in force")
	rest, err := parseFlags(fs, args, 1, "TRACE_ID ("+traceIDForms+")")
	if err != nil {
		return err
	}
	id, err := parseTraceID("TRACE_ID", rest[0])
	if err != nil {
		return err
	}
	t, err := fetchTrace(ctx, cf.audit(), id)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, t)
	}
	printTraceTree(stdout, t)
	return nil
}

// fetchTrace gets a trace's decision path, following GetTrace's pages
// (next_page_token) until every span of the first page has its content:
// the first page's tree, each span's content filled in from the page that
// gives it. A later page knows better of what it shows: a span erased
// since the first page is shown erased (its content, if the first page
// gave it, dropped), and an entry a later page leaves out of its tree is
// an OTLP resource entry the first page could not tell from a span (it
// read none of its payload), left out too. A span appended after the
// first page is not shown (the tree is the first page's), so a trace
// still being written is read to the end of what the first page showed.
// Each page gives the content of the first span it starts at, which is
// one the first page omitted while any is left: at most one page more
// than the first page omitted spans.
func fetchTrace(ctx context.Context, c veritracev1connect.AuditServiceClient, id []byte) (*v1.GetTraceResponse, error) {
	resp, err := c.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: id}))
	if err != nil {
		return nil, err
	}
	first := resp.Msg
	nodes := map[uint64]*v1.SpanNode{}
	walkSpanNodes(first.GetRoots(), func(n *v1.SpanNode) { nodes[n.GetIndex()] = n })
	omitted := 0
	for _, n := range nodes {
		if n.GetContentOmitted() {
			omitted++
		}
	}
	dropped, most := map[uint64]bool{}, omitted
	for token, pages := first.GetNextPageToken(), 0; token != "" && omitted > 0; pages++ {
		if pages == most {
			return nil, fmt.Errorf("GetTrace answered %d pages and %d spans of the first still have no content", pages+1, omitted)
		}
		resp, err := c.GetTrace(ctx, connect.NewRequest(&v1.GetTraceRequest{TraceId: id, PageToken: token}))
		if err != nil {
			return nil, fmt.Errorf("GetTrace page %d: %w", pages+2, err)
		}
		shown := map[uint64]*v1.SpanNode{}
		walkSpanNodes(resp.Msg.GetRoots(), func(n *v1.SpanNode) { shown[n.GetIndex()] = n })
		for i, m := range nodes {
			n := shown[i]
			before := m.GetContentOmitted()
			switch {
			case n == nil:
				dropped[i] = true
				delete(nodes, i)
			case n.GetErased():
				m.Span, m.OtlpJson, m.DecodeError, m.ContentOmitted = nil, "", "", false
				m.Erased, m.ErasedByTombstone = true, n.ErasedByTombstone
			case m.GetContentOmitted() && !n.GetContentOmitted():
				m.Span, m.OtlpJson, m.DecodeError, m.ContentOmitted = n.Span, n.OtlpJson, n.DecodeError, false
			}
			if before && (n == nil || !m.GetContentOmitted()) {
				omitted--
			}
		}
		token = resp.Msg.GetNextPageToken()
	}
	if len(dropped) > 0 {
		first.Roots = withoutNodes(first.GetRoots(), dropped)
	}
	first.NextPageToken = ""
	return first, nil
}

// walkSpanNodes calls f on every node of a tree, depth first, without
// recursion (a server may nest deeply).
func walkSpanNodes(roots []*v1.SpanNode, f func(*v1.SpanNode)) {
	stack := slices.Clone(roots)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		f(n)
		stack = append(stack, n.GetChildren()...)
	}
}

// withoutNodes returns ns without the nodes whose index is in drop, each
// dropped node's children in its place. It recurses as deep as the tree,
// which a protobuf message bounds (10,000 levels).
func withoutNodes(ns []*v1.SpanNode, drop map[uint64]bool) []*v1.SpanNode {
	var out []*v1.SpanNode
	for _, n := range ns {
		n.Children = withoutNodes(n.GetChildren(), drop)
		if drop[n.GetIndex()] {
			out = append(out, n.GetChildren()...)
			continue
		}
		out = append(out, n)
	}
	return out
}

// printTraceTree prints a trace's decision path as a tree, a span a line,
// indented under its parent: name, kind, span id, duration, status (with
// an error's message), the model and tokens of a model call, the attempt
// of a retried step, and the ledger index; then the versions in force.
// Everything from the ledger is printed escaped (bundle.Printable).
//
// Indentation stops at maxTreeIndent levels, so that the output stays
// linear in spans whatever a server sends: a deeper span's line starts
// with its depth ("[depth 40]").
func printTraceTree(w io.Writer, t *v1.GetTraceResponse) {
	fmt.Fprintf(w, "trace %x\n", t.GetTraceId())
	type item struct {
		n     *v1.SpanNode
		depth int
	}
	var stack []item
	push := func(ns []*v1.SpanNode, depth int) {
		for i := len(ns) - 1; i >= 0; i-- {
			stack = append(stack, item{ns[i], depth})
		}
	}
	push(t.GetRoots(), 1)
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		indent := strings.Repeat("  ", min(it.depth, maxTreeIndent))
		if it.depth > maxTreeIndent {
			indent += fmt.Sprintf("[depth %d] ", it.depth)
		}
		fmt.Fprintf(w, "%s%s\n", indent, spanLine(it.n))
		push(it.n.GetChildren(), it.depth+1)
	}
	if len(t.GetVersions()) > 0 {
		fmt.Fprintln(w, "versions in force:")
		for _, v := range t.GetVersions() {
			fmt.Fprintf(w, "  %-8s %s %s  %s\n", enumWord(v.GetKind(), "VERSION_KIND_"), bundle.Printable(v.GetName()), bundle.Printable(v.GetLabel()), v.GetId())
		}
	}
}

// spanLine is one span of printTraceTree.
func spanLine(n *v1.SpanNode) string {
	kind := enumWord(n.GetKind(), "SPAN_KIND_")
	sp := n.GetSpan()
	if sp == nil {
		why := "payload erased"
		if n.ErasedByTombstone != nil {
			why += fmt.Sprintf(" by tombstone %d", n.GetErasedByTombstone())
		}
		if !n.GetErased() {
			why = "payload not decodable: " + bundle.Printable(n.GetDecodeError())
		}
		return strings.TrimSpace(fmt.Sprintf("(%s)  %s  span %x  entry %d  %s", why, kind, n.GetSpanId(), n.GetIndex(), placementNote(n)))
	}
	parts := []string{bundle.Printable(sp.GetName()), kind, fmt.Sprintf("span %x", n.GetSpanId())}
	if st, en := sp.GetStartTime(), sp.GetEndTime(); st != nil && en != nil {
		parts = append(parts, en.AsTime().Sub(st.AsTime()).String())
	}
	status := enumWord(sp.GetStatus().GetCode(), "STATUS_CODE_")
	if m := sp.GetStatus().GetMessage(); m != "" {
		status += ": " + bundle.Printable(m)
	}
	parts = append(parts, status)
	if m := sp.GetModel(); m != nil {
		model := cmp.Or(m.GetResponseModel(), m.GetRequestModel())
		if model != "" {
			parts = append(parts, "model "+bundle.Printable(model))
		}
	}
	if u := sp.GetUsage(); u != nil && (u.GetInputTokens() > 0 || u.GetOutputTokens() > 0) {
		parts = append(parts, fmt.Sprintf("tokens %d in, %d out", u.GetInputTokens(), u.GetOutputTokens()))
	}
	if n.GetAttempts() > 0 {
		parts = append(parts, fmt.Sprintf("attempt %d of %d", n.GetAttempt(), n.GetAttempts()))
	}
	parts = append(parts, fmt.Sprintf("entry %d", n.GetIndex()))
	if p := placementNote(n); p != "" {
		parts = append(parts, p)
	}
	return strings.Join(parts, "  ")
}

// maxTreeIndent is how many levels printTraceTree indents.
const maxTreeIndent = 24

// placementNote says why a span is not printed under its parent, naming
// the parent its entry header gives (the span's, from a server that sends
// no header; "(unknown)" if neither is there: an erased span from such a
// server); "" when it is.
func placementNote(n *v1.SpanNode) string {
	var parent string
	switch {
	case n.GetHeader() != nil:
		parent = fmt.Sprintf("%x", n.GetHeader().GetParentSpanId())
	case n.GetSpan() != nil:
		parent = fmt.Sprintf("%x", n.GetSpan().GetParentSpanId())
	default:
		parent = "(unknown)"
	}
	switch n.GetPlacement() {
	case v1.TreePlacement_TREE_PLACEMENT_PARENT_MISSING:
		return "(parent " + parent + " not in the trace)"
	case v1.TreePlacement_TREE_PLACEMENT_PARENT_CYCLE:
		return "(parent " + parent + " is on a loop of parents: shown as a root)"
	case v1.TreePlacement_TREE_PLACEMENT_DEPTH_CAPPED:
		return "(parent " + parent + ": nested too deep, shown beside it)"
	}
	return ""
}

func runQuery(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	var qf queryFlags
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	cf.register(fs)
	qf.register(fs)
	limit := fs.Int("limit", 100, "most traces to list")
	if _, err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	q, err := qf.proto()
	if err != nil {
		return err
	}
	ac := cf.audit()
	shown := 0
	for token := ""; shown < *limit; {
		resp, err := ac.QueryTraces(ctx, connect.NewRequest(&v1.QueryTracesRequest{Query: q, PageSize: int32(min(*limit-shown, 1000)), PageToken: token}))
		if err != nil {
			return err
		}
		for _, t := range resp.Msg.GetTraces() {
			fmt.Fprintf(stdout, "%x\tfirst index %d\t%s\n", t.GetTraceId(), t.GetFirstIndex(), t.GetAppendedAt().AsTime().Format(time.RFC3339Nano))
			shown++
		}
		if token = resp.Msg.GetNextPageToken(); token == "" {
			break
		}
	}
	return nil
}

func runExport(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	var qf queryFlags
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	cf.register(fs)
	qf.register(fs)
	out := fs.String("o", "", "bundle file to write (required; must not exist)")
	known := fs.Uint64("known-size", 0, "size of a checkpoint you already hold: the bundle proves the log grew from it")
	if _, err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("export: -o FILE is required")
	}
	q, err := qf.proto()
	if err != nil {
		return err
	}
	// Refuse an existing file before asking for the export; publish below
	// refuses one created meanwhile.
	if _, err := os.Lstat(*out); err == nil {
		return fmt.Errorf("%s exists; not overwriting it", *out)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	// Write next to the destination and publish it at the end, so that a
	// failed export leaves no partial bundle behind.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".veritrace-export-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	stream, err := cf.audit().ExportBundle(ctx, connect.NewRequest(&v1.ExportBundleRequest{Selector: q, KnownTreeSize: *known}))
	if err != nil {
		tmp.Close()
		return err
	}
	n := 0
	for stream.Receive() {
		k, err := tmp.Write(stream.Msg().GetChunk())
		if err != nil {
			tmp.Close()
			return err
		}
		n += k
	}
	if err := stream.Err(); err != nil {
		tmp.Close()
		return err
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	if err := publish(tmp.Name(), *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes); verify it with: veritrace verify %s --key veritrace-data/log.pub\n"+
		"(the log's public key: DATA/log.pub on the server, by default veritrace-data/log.pub; auditors get it out of band)\n", *out, n, *out)
	return nil
}

// publish gives the complete file tmp the name dst, failing if dst exists,
// whenever it was created: a hard link is created atomically or not at all
// (a rename would replace a file created during the download). Where the
// file system has no hard links, dst is created exclusively and filled
// with a copy. tmp is left for the caller to remove.
func publish(tmp, dst string) error {
	err := os.Link(tmp, dst)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrExist):
		return fmt.Errorf("%s exists; not overwriting it", dst)
	}
	in, err := os.Open(tmp)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; not overwriting it", dst)
	} else if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err = errors.Join(err, out.Sync(), out.Close()); err != nil {
		os.Remove(dst) // ours: created exclusively above
		return err
	}
	return nil
}

func runVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	key := fs.String("key", "", "the log's verifier key file (log.pub), obtained out of band (required)")
	pinned := fs.String("pinned-checkpoint", "", "a signed checkpoint you already hold")
	rest, err := parseFlags(fs, args, 1, "BUNDLE")
	if err != nil {
		return err
	}
	path := rest[0]
	if *key == "" {
		return errors.New("verify: --key is required: the log's verifier key (log.pub), obtained out of band")
	}
	rep, err := bundle.VerifyFile(path, *key, *pinned, stdout)
	if err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("bundle NOT verified: %s", rep.Summary())
	}
	return nil
}
