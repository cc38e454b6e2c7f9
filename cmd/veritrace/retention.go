package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/retention"
)

func runErase(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := flag.NewFlagSet("erase", flag.ContinueOnError)
	cf.register(fs)
	subject := fs.String("subject", "", "erase a data subject's payloads")
	session := fs.String("session", "", "erase a session's payloads")
	var traces stringList
	fs.Var(&traces, "trace", "erase a trace's payloads (repeatable); a trace id is "+traceIDForms)
	basis := fs.String("legal-basis", "", `legal basis, e.g. "GDPR Art. 17(1)(a)" (required)`)
	reason := fs.String("reason", "", "why (required)")
	ticket := fs.String("ticket", "", "external ticket reference")
	id := fs.String("request-id", "", "request id, for retries (default: a new one)")
	dry := fs.Bool("dry-run", false, "list what would be erased; change nothing")
	receipt := fs.String("receipt", "", "write the signed receipt (JSON, then the signature) to this file")
	if _, err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	if *id == "" {
		// Made up here, and shown before the request is sent: the server
		// may have stored the request before an error (or the answer may
		// be lost), and asking again with the same id is how it is
		// carried out once.
		*id = uuid.NewString()
		fmt.Fprintf(os.Stderr, "erasure request %s\n", *id)
	}
	req := &v1.EraseRequest{RequestId: *id, SubjectId: *subject, SessionId: *session, LegalBasis: *basis, Reason: *reason, Ticket: *ticket, DryRun: *dry}
	for _, t := range traces {
		b, err := parseTraceID("--trace", t)
		if err != nil {
			return err
		}
		req.TraceIds = append(req.TraceIds, b)
	}
	resp, err := cf.retention().Erase(ctx, connect.NewRequest(req))
	if err != nil {
		return eraseError(*id, err)
	}
	e := resp.Msg.GetErasure()
	// The answer lists the first entries of each list; the counts are the
	// lists' lengths (GetErasure pages through them).
	listed := fmt.Sprint(e.GetErased())
	if n := uint64(len(e.GetErased())); n < e.GetErasedCount() {
		listed = fmt.Sprintf("%s (the first %d)", listed, n)
	}
	if e.GetState() == "dry-run" {
		fmt.Fprintf(stdout, "dry run %s: would erase %d entries %s; %d held\n", e.GetRequestId(), e.GetErasedCount(), listed, e.GetHeldCount())
	} else {
		fmt.Fprintf(stdout, "erasure %s %s: erased %d entries %s; tombstone at index %d; %d held\n", e.GetRequestId(), e.GetState(), e.GetErasedCount(), listed, e.GetTombstoneIndex(), e.GetHeldCount())
	}
	for _, h := range e.GetHeld() {
		fmt.Fprintf(stdout, "  held: entry %d by hold %s (case %s)\n", h.GetIndex(), bundle.Printable(h.GetHoldId()), bundle.Printable(h.GetCaseRef()))
	}
	if n := uint64(len(e.GetHeld())); n < e.GetHeldCount() {
		fmt.Fprintf(stdout, "  ... and %d more held\n", e.GetHeldCount()-n)
	}
	if e.GetState() == "done" && e.GetHeldCount() > 0 {
		fmt.Fprintln(stdout, heldAdvice(e))
	}
	if *receipt != "" && e.GetReceipt() != "" {
		if err := os.WriteFile(*receipt, []byte(e.GetReceipt()+"\n"+e.GetReceiptSignature()), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "receipt written to %s\n", *receipt)
	}
	return nil
}

// heldAdvice says, after an erasure that legal holds kept entries from,
// which holds keep them and what to do: the request is done and its id
// used up (asking again with it answers this outcome), so the entries are
// erased by a new request once the holds are released.
func heldAdvice(e *v1.Erasure) string {
	var holds []string
	for _, h := range e.GetHeld() {
		if id := bundle.Printable(h.GetHoldId()); !slices.Contains(holds, id) {
			holds = append(holds, id)
		}
	}
	which := "hold " + strings.Join(holds, ", ")
	if len(holds) > 1 {
		which = "holds " + strings.Join(holds, ", ")
	}
	if uint64(len(e.GetHeld())) < e.GetHeldCount() {
		which += fmt.Sprintf(" and others (veritrace erasure %s --from %d lists the rest)", e.GetRequestId(), len(e.GetHeld()))
	}
	return fmt.Sprintf("%d entries held by %s were not erased: request %s is done and its id used up; "+
		"erase again with a new --request-id once they are released (veritrace hold list)", e.GetHeldCount(), which, e.GetRequestId())
}

// eraseError names the request id of a failed erasure request and, unless
// the server refused the request as asked, says how to ask again: with
// the same id, which the server carries out once however often it is
// asked (an erasure refused beside another plan, one whose answer was
// lost, or one stored and left unfinished).
func eraseError(id string, err error) error {
	return requestError("erasure request", id, err, fmt.Sprintf("the same id is carried out once; veritrace erasure %s shows it once stored", id))
}

// holdError is eraseError for `hold place`: the same id places one hold.
func holdError(id string, err error) error {
	return requestError("hold request", id, err, "the same id places one hold; veritrace hold list shows it once placed")
}

// requestError names the request id of a failed idempotent request (what
// names the kind of request) and, unless the server refused the request
// as asked (bad input, no permission, nothing to do, an id used for
// another request), how to ask again with it; why says why that is safe.
func requestError(what, id string, err error, why string) error {
	switch connect.CodeOf(err) {
	case connect.CodeInvalidArgument, connect.CodePermissionDenied, connect.CodeUnauthenticated,
		connect.CodeNotFound, connect.CodeAlreadyExists, connect.CodeFailedPrecondition:
		return fmt.Errorf("%s %s: %w", what, id, err)
	}
	return fmt.Errorf("%s %s: %w; ask again with the same flags and --request-id %s (%s)", what, id, err, id, why)
}

func runErasure(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := flag.NewFlagSet("erasure", flag.ContinueOnError)
	cf.register(fs)
	from := fs.Uint64("from", 0, "position in the lists of erased and held entries to show from (the answer's next_from)")
	pageSize := fs.Int("page-size", 0, "entries of each list to show, 1 to 10000 (default 1000)")
	rest, err := parseFlags(fs, args, 1, "REQUEST_ID (veritrace erasures lists them)")
	if err != nil {
		return err
	}
	if !retention.ValidRequestID(rest[0]) {
		return fmt.Errorf("REQUEST_ID %q: a request id is %s (veritrace erasures lists the tenant's)", bundle.Printable(rest[0]), retention.RequestIDSyntax)
	}
	resp, err := cf.retention().GetErasure(ctx, connect.NewRequest(&v1.GetErasureRequest{RequestId: rest[0], From: *from, PageSize: int32(*pageSize)}))
	if connect.CodeOf(err) == connect.CodeNotFound {
		return fmt.Errorf("%w (veritrace erasures lists the tenant's erasure requests and sweeps)", err)
	}
	if err != nil {
		return err
	}
	return printJSON(stdout, resp.Msg)
}

// runErasures lists the tenant's erasure requests and sweeps, newest
// first, one a line: when requested, kind, id, state, what it selected,
// how many entries it erased and held, its tombstone and legal basis.
func runErasures(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := flag.NewFlagSet("erasures", flag.ContinueOnError)
	cf.register(fs)
	all := fs.Bool("all", false, "list every erasure request and sweep (default: the newest --limit)")
	limit := fs.Int("limit", 100, "how many to list without --all, 1 to 1000")
	if _, err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	if *limit < 1 || *limit > 1000 {
		return fmt.Errorf("--limit %d: want 1 to 1000", *limit)
	}
	rc := cf.retention()
	token := ""
	for {
		resp, err := rc.ListErasures(ctx, connect.NewRequest(&v1.ListErasuresRequest{PageSize: int32(*limit), PageToken: token}))
		if err != nil {
			return err
		}
		for _, e := range resp.Msg.GetErasures() {
			tomb := "-"
			if e.TombstoneIndex != nil {
				tomb = fmt.Sprint(e.GetTombstoneIndex())
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\t%s\terased %d\theld %d\ttombstone %s\t%s\n",
				e.GetRequestedAt().AsTime().UTC().Format(time.RFC3339), bundle.Printable(e.GetKind()), bundle.Printable(e.GetRequestId()),
				bundle.Printable(e.GetState()), bundle.Printable(e.GetSelector()), e.GetErasedCount(), e.GetHeldCount(), tomb, bundle.Printable(e.GetLegalBasis()))
		}
		token = resp.Msg.GetNextPageToken()
		if token == "" {
			return nil
		}
		if !*all {
			fmt.Fprintf(stdout, "... more: veritrace erasures --all\n")
			return nil
		}
	}
}

func runHold(ctx context.Context, args []string, stdout io.Writer) error {
	cf, fs, err := subcommand("hold", "place, release or list", args)
	if err != nil {
		return err
	}
	switch args[0] {
	case "place":
		var sc struct{ subject, session, trace, from, to string }
		tenant := fs.Bool("whole-tenant", false, "hold every entry of the tenant")
		fs.StringVar(&sc.subject, "subject", "", "hold a data subject's entries")
		fs.StringVar(&sc.session, "session", "", "hold a session's entries")
		fs.StringVar(&sc.trace, "trace", "", "hold a trace ("+traceIDForms+")")
		fs.StringVar(&sc.from, "from", "", "hold entries appended from this time ("+timeForms+")")
		fs.StringVar(&sc.to, "to", "", "... until this time")
		caseRef := fs.String("case", "", "case reference (required)")
		reason := fs.String("reason", "", "why (required)")
		id := fs.String("request-id", "", "request id, for retries (default: a new one); exits 3 if the hold this id placed has been released since")
		if _, err := parseFlags(fs, args[1:], 0, ""); err != nil {
			return err
		}
		scope := &v1.HoldScope{Tenant: *tenant, SubjectId: sc.subject, SessionId: sc.session}
		if sc.trace != "" {
			if scope.TraceId, err = parseTraceID("--trace", sc.trace); err != nil {
				return err
			}
		}
		for name, s := range map[string]string{"from": sc.from, "to": sc.to} {
			if s == "" {
				continue
			}
			t, err := parseTimeFlag("--"+name, s)
			if err != nil {
				return err
			}
			if name == "from" {
				scope.From = timestamppb.New(t)
			} else {
				scope.To = timestamppb.New(t)
			}
		}
		if *id == "" {
			// As for erase: shown before the request is sent, since the
			// server may place the hold and its answer be lost; asking
			// again with the same id places it once.
			*id = uuid.NewString()
			fmt.Fprintf(os.Stderr, "hold request %s\n", *id)
		}
		resp, err := cf.retention().PlaceHold(ctx, connect.NewRequest(&v1.PlaceHoldRequest{RequestId: *id, Scope: scope, CaseRef: *caseRef, Reason: *reason}))
		if err != nil {
			return holdError(*id, err)
		}
		return holdPlaced(stdout, *id, resp.Msg)
	case "release":
		reason := fs.String("reason", "", "why (required)")
		rest, err := parseFlags(fs, args[1:], 1, "HOLD_ID")
		if err != nil {
			return err
		}
		resp, err := cf.retention().ReleaseHold(ctx, connect.NewRequest(&v1.ReleaseHoldRequest{HoldId: rest[0], Reason: *reason}))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "released hold %s, recorded at index %d\n", resp.Msg.GetHold().GetId(), resp.Msg.GetIndex())
		return nil
	case "list":
		all := fs.Bool("all", false, "include released holds")
		if _, err := parseFlags(fs, args[1:], 0, ""); err != nil {
			return err
		}
		resp, err := cf.retention().ListHolds(ctx, connect.NewRequest(&v1.ListHoldsRequest{All: *all}))
		if err != nil {
			return err
		}
		for _, h := range resp.Msg.GetHolds() {
			sc := h.GetScope()
			// A scope that names nothing covers every entry (none is
			// placed so; said plainly rather than taken for the tenant).
			what := "every entry (no scope recorded)"
			switch {
			case sc.GetTenant():
				what = "tenant"
			case sc.GetSubjectId() != "":
				what = "subject " + bundle.Printable(sc.GetSubjectId()) + pseudonymText(sc.GetPseudonym())
			case sc.GetSessionId() != "":
				what = "session " + bundle.Printable(sc.GetSessionId()) + pseudonymText(sc.GetPseudonym())
			case sc.GetErased():
				what = erasedScope(sc.GetPseudonymKind()) + pseudonymText(sc.GetPseudonym())
			case len(sc.GetTraceId()) > 0:
				what = fmt.Sprintf("trace %x", sc.GetTraceId())
			case sc.GetFrom() != nil || sc.GetTo() != nil:
				what = fmt.Sprintf("time %s..%s", sc.GetFrom().AsTime().Format(time.RFC3339), sc.GetTo().AsTime().Format(time.RFC3339))
			}
			state := "active"
			if h.GetReleasedAt() != nil {
				state = "released " + h.GetReleasedAt().AsTime().Format(time.RFC3339)
			}
			// The request id last, only for holds placed with one: the
			// columns before it are the same for every hold.
			request := ""
			if r := h.GetRequestId(); r != "" {
				request = "\trequest " + bundle.Printable(r)
			}
			fmt.Fprintf(stdout, "%s\t%s\tcase %s\t%s\t%q%s\n", h.GetId(), what, bundle.Printable(h.GetCaseRef()), state, h.GetReason(), request)
		}
		return nil
	}
	return fmt.Errorf("hold: unknown subcommand %q (place, release, list)", args[0])
}

// exitHoldReleased is the exit status of `hold place` answered with a
// hold that its request id placed earlier and that has been released
// since: nothing is held (README, "A compliance officer's session").
const exitHoldReleased = 3

// holdPlaced prints the answer to `hold place` with request id id. A hold
// placed earlier under the same id and released since is an answer too
// (the request was asked again after a lost answer, and another officer
// released the hold meanwhile): it is said plainly to be not in force,
// and the command fails with exitHoldReleased, so that neither a reader
// nor a script takes the data for held.
func holdPlaced(stdout io.Writer, id string, resp *v1.PlaceHoldResponse) error {
	h := resp.GetHold()
	if h.GetReleasedAt() == nil {
		fmt.Fprintf(stdout, "placed hold %s (case %s, request %s), recorded at index %d\n", h.GetId(), bundle.Printable(h.GetCaseRef()), id, resp.GetIndex())
		return nil
	}
	released := h.GetReleasedAt().AsTime().Format(time.RFC3339)
	fmt.Fprintf(stdout, "hold %s (case %s) was placed by request %s at %s by key %s, and released at %s by key %s (%q): it is NOT in force\n",
		h.GetId(), bundle.Printable(h.GetCaseRef()), id, h.GetPlacedAt().AsTime().Format(time.RFC3339), bundle.Printable(h.GetPlacedBy()),
		released, bundle.Printable(h.GetReleasedBy()), h.GetReleaseReason())
	return &exitError{code: exitHoldReleased, err: fmt.Errorf("hold request %s: its hold %s was released at %s and holds nothing; to hold the data again, place a new hold with a new request id", id, h.GetId(), released)}
}

func runRetention(ctx context.Context, args []string, stdout io.Writer) error {
	cf, fs, err := subcommand("retention", "show or set", args)
	if err != nil {
		return err
	}
	switch args[0] {
	case "show":
		if _, err := parseFlags(fs, args[1:], 0, ""); err != nil {
			return err
		}
		resp, err := cf.retention().GetRetention(ctx, connect.NewRequest(&v1.GetRetentionRequest{}))
		if err != nil {
			return err
		}
		return printJSON(stdout, resp.Msg.GetPolicy())
	case "set":
		reason := fs.String("reason", "", "why (required when the change shortens any period)")
		rest, err := parseFlags(fs, args[1:], 1, "POLICY.json (a RetentionPolicy in proto JSON, as `retention show` prints; - for stdin)")
		if err != nil {
			return err
		}
		b, err := readInput(rest[0])
		if err != nil {
			return err
		}
		p := &v1.RetentionPolicy{}
		if err := protojson.Unmarshal(b, p); err != nil {
			return fmt.Errorf("%s: %w", rest[0], err)
		}
		resp, err := cf.retention().SetRetention(ctx, connect.NewRequest(&v1.SetRetentionRequest{Policy: p, Reason: *reason}))
		if err != nil {
			return err
		}
		// The server answers the policy in force, recording nothing, when
		// the rules are those it has (docs/RETENTION.md).
		if rev := resp.Msg.GetPolicy().GetRevision(); rev == p.GetRevision() {
			fmt.Fprintf(stdout, "retention policy unchanged: revision %d is in force, nothing was recorded\n", rev)
		} else {
			fmt.Fprintf(stdout, "retention policy revision %d recorded at index %d\n", rev, resp.Msg.GetIndex())
		}
		return nil
	}
	return fmt.Errorf("retention: unknown subcommand %q (show, set)", args[0])
}

func runSweep(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := flag.NewFlagSet("sweep", flag.ContinueOnError)
	cf.register(fs)
	if _, err := parseFlags(fs, args, 0, ""); err != nil {
		return err
	}
	resp, err := cf.retention().Sweep(ctx, connect.NewRequest(&v1.SweepRequest{}))
	if err != nil {
		return err
	}
	m := resp.Msg
	if m.TombstoneIndex == nil {
		fmt.Fprintf(stdout, "nothing expired (%d held)\n", m.GetHeld())
		return nil
	}
	fmt.Fprintf(stdout, "expired %d entries (%d held); tombstone at index %d\n", m.GetExpired(), m.GetHeld(), m.GetTombstoneIndex())
	return nil
}

// pseudonymText is " (pseudonym:...)" after a hold's subject or session,
// "" for a hold a server has not named by a pseudonym (one an earlier
// build stored, listed before the server upgraded it).
func pseudonymText(p string) string {
	if p == "" {
		return ""
	}
	return " (pseudonym:" + bundle.Printable(p) + ")"
}

// erasedScope names an erased hold scope by its kind: "erased subject" or
// "erased session" ("erased subject or session" from a server that does
// not say).
func erasedScope(kind string) string {
	switch kind {
	case "subject", "session":
		return "erased " + kind
	}
	return "erased subject or session"
}
