package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/otlp"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
	"github.com/veritrace/veritrace/policy"
	"github.com/veritrace/veritrace/retention"
)

// rule is how one procedure is authorised and recorded.
type rule struct {
	perm policy.Permission
	// record: allowed calls are recorded in the access log (reads of
	// payloads, exports, key and tenant changes). Denied calls always are.
	record bool
	// target names what a call accesses, for the access log.
	target func(msg any, n namer) string
	// also, if set, returns a further permission the call's message needs
	// ("" for none): decided with perm, before the target is named.
	also func(msg any) policy.Permission
}

// rules is the single table of who may call what. A procedure missing from
// it is refused.
var rules = map[string]rule{
	veritracev1connect.IngestServiceAppendSpansProcedure:         {perm: policy.AppendSpans},
	veritracev1connect.IngestServiceRegisterVersionProcedure:     {perm: policy.RegisterVersions},
	veritracev1connect.IngestServiceGetVersionProcedure:          {perm: policy.ReadVersions, record: true, target: versionTarget},
	veritracev1connect.IngestServiceListVersionsProcedure:        {perm: policy.ReadVersions},
	veritracev1connect.LedgerServiceGetCheckpointProcedure:       {perm: policy.ReadProofs},
	veritracev1connect.LedgerServiceGetInclusionProofProcedure:   {perm: policy.ReadProofs},
	veritracev1connect.LedgerServiceGetConsistencyProofProcedure: {perm: policy.ReadProofs},
	veritracev1connect.LedgerServiceGetEntryProcedure:            {perm: policy.ReadEntries, record: true, target: entryTarget},
	veritracev1connect.LedgerServiceListAccessLogProcedure:       {perm: policy.ReadAccessLog, record: true, target: accessLogTarget, also: accessLogFilterPerm},
	veritracev1connect.AuditServiceGetTraceProcedure:             {perm: policy.ReadEntries, record: true, target: traceTarget},
	veritracev1connect.AuditServiceQueryTracesProcedure:          {perm: policy.ReadEntries, record: true, target: queryTarget},
	veritracev1connect.AuditServiceExportBundleProcedure:         {perm: policy.ExportEvidence, record: true, target: exportTarget},
	veritracev1connect.RetentionServiceGetRetentionProcedure:     {perm: policy.ManageRetention, record: true},
	veritracev1connect.RetentionServiceSetRetentionProcedure:     {perm: policy.ManageRetention, record: true, target: setRetentionTarget},
	veritracev1connect.RetentionServiceSweepProcedure:            {perm: policy.ManageRetention, record: true},
	veritracev1connect.RetentionServicePlaceHoldProcedure:        {perm: policy.ManageHolds, record: true, target: holdTarget},
	veritracev1connect.RetentionServiceReleaseHoldProcedure:      {perm: policy.ManageHolds, record: true, target: releaseTarget},
	veritracev1connect.RetentionServiceListHoldsProcedure:        {perm: policy.ManageHolds, record: true},
	veritracev1connect.RetentionServiceEraseProcedure:            {perm: policy.EraseData, record: true, target: eraseTarget},
	veritracev1connect.RetentionServiceGetErasureProcedure:       {perm: policy.EraseData, record: true, target: erasureTarget},
	veritracev1connect.AdminServiceCreateKeyProcedure:            {perm: policy.ManageKeys, record: true, target: createKeyTarget},
	veritracev1connect.AdminServiceListKeysProcedure:             {perm: policy.ManageKeys},
	veritracev1connect.AdminServiceRevokeKeyProcedure:            {perm: policy.ManageKeys, record: true, target: revokeKeyTarget},
	veritracev1connect.AdminServiceCreateTenantProcedure:         {perm: policy.ManageTenants, record: true, target: createTenantTarget},
	veritracev1connect.AdminServiceListTenantsProcedure:          {perm: policy.ListTenants},
	veritracev1connect.AuditServiceAggregateTracesProcedure:      {perm: policy.ReadEntries, record: true, target: aggregateTarget},
	veritracev1connect.IdentityServiceWhoAmIProcedure:            {perm: policy.ReadOwnKey},
	veritracev1connect.RetentionServiceListErasuresProcedure:     {perm: policy.EraseData, record: true},
	// OpenTelemetry ingest: gRPC procedures and OTLP/HTTP paths. Like
	// AppendSpans, appends are entries themselves and are not recorded again.
	otlp.TraceExportProcedure: {perm: policy.AppendSpans},
	otlp.LogsExportProcedure:  {perm: policy.AppendSpans},
	otlp.TracesPath:           {perm: policy.AppendSpans},
	otlp.LogsPath:             {perm: policy.AppendSpans},
}

type ctxKey int

const (
	principalKey ctxKey = iota
	tenantKey
	transportKey
	authenticatedKey
)

// transportInfo is what the HTTP layer knows of a request.
type transportInfo struct {
	peer string
	// keysAllowed: API keys may travel on this connection (TLS, loopback, or
	// plaintext explicitly allowed).
	keysAllowed bool
}

// withTransport records, for the interceptor, whether the connection may
// carry API keys.
func withTransport(next http.Handler, allowPlaintext bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ti := transportInfo{peer: r.RemoteAddr, keysAllowed: allowPlaintext || r.TLS != nil || isLoopback(r.RemoteAddr)}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), transportKey, ti)))
	})
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// principalFrom returns the authenticated principal and tenant of a
// request; the interceptor has put them there.
func principalFrom(ctx context.Context) (*policy.Principal, string) {
	p, _ := ctx.Value(principalKey).(*policy.Principal)
	t, _ := ctx.Value(tenantKey).(string)
	return p, t
}

// authInterceptor authenticates every call, authorises it from the rules
// table, and records it in the access log before the answer is sent.
type authInterceptor struct {
	l        *ledger.Ledger
	holds    *retention.Service // names a hold's subject (releaseTarget)
	log      *slog.Logger
	now      func() time.Time
	limiter  *failureLimiter
	refusals *refusals
}

// newAuthInterceptor makes the interceptor of NewHandler; opts are taken as
// they are (NewHandler fills in defaults: a zero RefusalPeriod here records
// every refusal on its own).
func newAuthInterceptor(l *ledger.Ledger, opts Options) *authInterceptor {
	a := &authInterceptor{l: l, holds: opts.Retention, log: opts.Logger, now: opts.Now,
		limiter: newFailureLimiter(opts.AuthFailureBurst, opts.AuthFailureRate)}
	a.refusals = &refusals{period: opts.RefusalPeriod, now: opts.Now, write: a.write, log: opts.Logger, bursts: map[burstKey]*burst{}}
	return a
}

// call is one request on its way through the interceptor.
type call struct {
	procedure string
	header    http.Header
	peer      string
	msg       any // nil for streams
	// read, for a stream, reads its first request message once the key is
	// authenticated, so that the decision is recorded with its target. It
	// returns nil if the message could not be read.
	read func() any
}

// admit authenticates and authorises a call. On success it returns the
// context for the handler. On refusal it records the denial and returns
// the Connect error to send.
func (a *authInterceptor) admit(ctx context.Context, c call) (context.Context, *accessEvent, error) {
	ev := &accessEvent{procedure: c.procedure, peer: c.peer, time: a.now(), outcome: format.AccessAllowed}
	r, ok := rules[c.procedure]
	if !ok {
		ev.deny(connect.CodePermissionDenied, "procedure is not in the access table")
		return nil, ev, a.refuse(ctx, ev, ledger.SystemTenant)
	}
	p, err := a.authenticate(ctx, c, ev)
	if err != nil {
		return nil, ev, err
	}
	tenant := c.header.Get(TenantHeader)
	if tenant == "" {
		tenant = p.DefaultTenant(ledger.DefaultTenant)
	}
	ev.tenant = tenant
	if c.msg == nil && c.read != nil {
		c.msg = c.read()
	}
	err = policy.Decide(p, r.perm, tenant)
	if err == nil && r.also != nil && c.msg != nil {
		if more := r.also(c.msg); more != "" {
			err = policy.Decide(p, more, tenant)
		}
	}
	if r.target != nil && c.msg != nil {
		ev.target = r.target(c.msg, a.namer(ctx, tenant, err == nil))
	}
	if err != nil {
		msg := err.Error()
		if errors.Is(err, policy.ErrTenantDenied) {
			// Same words whether or not the tenant exists.
			msg = fmt.Sprintf("this API key may not access tenant %q", tenant)
		}
		ev.deny(connect.CodePermissionDenied, msg)
		log := a.logTenant(ctx, r.perm, tenant)
		ev.keyBound = p.BoundTo(log)
		return nil, ev, a.refuse(ctx, ev, log)
	}
	ctx = context.WithValue(ctx, principalKey, p)
	ctx = context.WithValue(ctx, tenantKey, tenant)
	return ctx, ev, nil
}

// authenticate is the first half of admit: a malformed tenant header is
// refused (unrecorded), then the API key is checked, and a failure is
// refused as unauthenticated (recorded, and counted by the limiter of
// failed authentications). The front handler (frontHandler) runs it before
// a request's body is read; the interceptor then reuses its result.
func (a *authInterceptor) authenticate(ctx context.Context, c call, ev *accessEvent) (*policy.Principal, error) {
	// A header that cannot name a tenant is refused before anything else,
	// and not recorded: it names nothing to record.
	if tenant := c.header.Get(TenantHeader); tenant != "" {
		if err := format.ValidateTenant(tenant); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s header: %v", TenantHeader, err))
		}
	}
	if au, ok := ctx.Value(authenticatedKey).(*authenticated); ok && au.header == c.header.Get("Authorization") {
		ev.keyID, ev.role, ev.keyKnown = au.keyID, au.p.Role, true
		return au.p, nil
	}
	ti, _ := ctx.Value(transportKey).(transportInfo)
	if !ti.keysAllowed {
		return nil, a.refuseUnauthenticated(ctx, ev, "API keys are accepted only over TLS or from loopback (see --allow-plaintext-keys)")
	}
	p, keyID, err := authenticate(ctx, a.l, c.header.Get("Authorization"), ev.time)
	ev.keyID = keyID
	var ae *authError
	switch {
	case errors.As(err, &ae):
		ev.keyKnown = ae.keyKnown
		return nil, a.refuseUnauthenticated(ctx, ev, ae.msg)
	case err != nil:
		return nil, toConnect(ctx, a.log, c.procedure, err, nil)
	}
	ev.role, ev.keyKnown = p.Role, true
	return p, nil
}

// logTenant is the log an access is recorded in: the tenant's own when the
// permission concerns a tenant that exists, else the system log.
func (a *authInterceptor) logTenant(ctx context.Context, perm policy.Permission, tenant string) string {
	if perm.Global() {
		return ledger.SystemTenant
	}
	if _, err := a.l.Size(ctx, tenant); err != nil {
		return ledger.SystemTenant
	}
	return tenant
}

// refuse records (or counts, see refusals) a denial and returns the error
// for the client. If the denial cannot be recorded the client gets
// Unavailable instead: nothing is answered unrecorded.
func (a *authInterceptor) refuse(ctx context.Context, ev *accessEvent, logTenant string) error {
	if err := a.refusals.refuse(ctx, ev, logTenant, true); err != nil {
		return err
	}
	return connect.NewError(ev.code, errors.New(ev.reason))
}

// refuseUnauthenticated refuses a request that failed authentication.
// Once its peer has failed too often (failureLimiter) it is answered
// resource_exhausted with a Retry-After hint, and counted in its burst
// without a record of its own.
func (a *authInterceptor) refuseUnauthenticated(ctx context.Context, ev *accessEvent, reason string) error {
	ev.deny(connect.CodeUnauthenticated, reason)
	wait := a.limiter.fail(peerKey(ev.peer), ev.time)
	if wait == 0 {
		return a.refuse(ctx, ev, ledger.SystemTenant)
	}
	secs := int64((wait + time.Second - 1) / time.Second)
	ev.deny(connect.CodeResourceExhausted, fmt.Sprintf("too many failed authentications from this address; retry in %ds", secs))
	if err := a.refusals.refuse(ctx, ev, ledger.SystemTenant, false); err != nil {
		return err
	}
	cerr := connect.NewError(connect.CodeResourceExhausted, errors.New(ev.reason))
	cerr.Meta().Set("Retry-After", strconv.FormatInt(secs, 10))
	if d, err := connect.NewErrorDetail(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(secs) * time.Second)}); err == nil {
		cerr.AddDetail(d)
	}
	return cerr
}

// record records an access (allowed or failed) in a log, durably, and
// returns the record's index.
func (a *authInterceptor) record(ctx context.Context, ev *accessEvent, logTenant string) (uint64, error) {
	return a.appendRecord(ctx, ev.proto(), logTenant)
}

// write appends an access record to a log and returns once it is durable,
// even if the client has gone away meanwhile.
func (a *authInterceptor) write(ctx context.Context, r *v1.AccessRecord, logTenant string) error {
	_, err := a.appendRecord(ctx, r, logTenant)
	return err
}

// appendRecord is write, returning the record's index.
func (a *authInterceptor) appendRecord(ctx context.Context, r *v1.AccessRecord, logTenant string) (uint64, error) {
	payload, err := marshal.Marshal(r)
	if err != nil {
		return 0, toConnect(ctx, a.log, r.GetProcedure(), err, nil)
	}
	rec := ledger.Record{Kind: format.KindAccess, SubKind: uint8(r.GetOutcome()), RetentionClass: accessRetentionClass, Payload: payload}
	rs, err := a.l.Append(context.WithoutCancel(ctx), logTenant, []ledger.Record{rec})
	if err != nil {
		a.log.ErrorContext(ctx, "record access", "procedure", r.GetProcedure(), "log", logTenant, "err", err)
		return 0, connect.NewError(connect.CodeUnavailable, errors.New("the access log could not be written; the request was not answered"))
	}
	return rs[0].Index, nil
}

// namer names subject and session ids in a tenant by their pseudonyms,
// for access-log targets, never by the ids (docs/ACCESS.md, "Pseudonyms").
// In the target of an allowed call, an id with a pseudonym key is named by
// its pseudonym, and an id with entries and no key yet gets its key (one
// key-database write per id with data); an id without entries is named by
// its stand-in (ledger.StandInPseudonym), which looks like any pseudonym
// and writes nothing. In the target of a refused call every id is named by
// its stand-in: a refused caller makes no key, and its own record does not
// tell it whether the id it named has data, nor give it a pseudonym it
// could find in other records. An id whose name cannot be computed is
// "pseudonym:unavailable".
//
// A hold is named by the subject or session it covers, by the same rules
// (retention.Service.HoldName), looked up only for an id that reads as
// one word in a target (plainWord: at most 160 bytes); one that cannot be
// looked up is named by nothing.
func (a *authInterceptor) namer(ctx context.Context, tenant string, allowed bool) namer {
	ctx = context.WithoutCancel(ctx)
	return namer{
		id: func(field uint8, value string) string {
			name, err := a.pseudonymOf(ctx, tenant, field, value, allowed)
			if err != nil {
				a.log.WarnContext(ctx, "pseudonym", "tenant", tenant, "err", err)
				return "pseudonym:unavailable"
			}
			return "pseudonym:" + name
		},
		hold: func(id string) string {
			if !plainWord(id) {
				return ""
			}
			kind, name, err := a.holds.HoldName(ctx, tenant, id, allowed)
			if err != nil {
				a.log.WarnContext(ctx, "hold pseudonym", "tenant", tenant, "err", err)
				return ""
			}
			if kind == "" {
				return ""
			}
			return " " + kind + "=pseudonym:" + name
		},
	}
}

func (a *authInterceptor) pseudonymOf(ctx context.Context, tenant string, field uint8, value string, allowed bool) (string, error) {
	ref, err := a.l.TermRefOf(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)})
	if err != nil {
		return "", err
	}
	if allowed {
		k, err := a.l.PseudonymKey(ctx, tenant, ref, false)
		if errors.Is(err, ledger.ErrNotFound) {
			ps, _, perr := a.l.Postings(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)}, 0, 1)
			switch {
			case perr != nil:
				return "", perr
			case len(ps) > 0:
				k, err = a.l.PseudonymKey(ctx, tenant, ref, true)
			}
		}
		switch {
		case err == nil:
			return k.Pseudonym(value), nil
		case !errors.Is(err, ledger.ErrNotFound):
			return "", err
		}
	}
	return a.l.StandInPseudonym(ctx, tenant, ref)
}

// errorMessage is what an access record says of a failed call: the
// message the client got, without the code (recorded on its own).
func errorMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}

// accessRetentionClass keeps access records apart from trace data.
const accessRetentionClass = "access"

func (a *authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		c := call{procedure: req.Spec().Procedure, header: req.Header(), peer: req.Peer().Addr, msg: req.Any()}
		ctx, ev, err := a.admit(ctx, c)
		if err != nil {
			return nil, err
		}
		resp, err := next(ctx, req)
		r := rules[c.procedure]
		if !r.record {
			return resp, err // not an access the log records (appends are entries themselves)
		}
		if err != nil {
			ev.outcome = format.AccessFailed
			ev.code = connect.CodeOf(err)
			ev.reason = errorMessage(err)
		}
		_, tenant := principalFrom(ctx)
		if _, rerr := a.record(ctx, ev, a.logTenant(ctx, r.perm, tenant)); rerr != nil {
			return nil, rerr
		}
		return resp, err
	}
}

func (a *authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler admits a stream like a unary call. The first
// request message of a server stream (ExportBundle) is read once the key is
// authenticated and before the decision, within the handler's read limit,
// so that a refusal is recorded with its target; the handler then receives
// that message as if it read it itself. When its rule says so, an allowed
// stream is recorded as soon as the handler has its first request message,
// which is before it can send anything; if the stream then fails, the
// failure is recorded too.
func (a *authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		c := call{procedure: conn.Spec().Procedure, header: conn.RequestHeader(), peer: conn.Peer().Addr}
		sc := &streamConn{StreamingHandlerConn: conn}
		if conn.Spec().StreamType == connect.StreamTypeServer {
			if m := newRequest(conn.Spec()); m != nil {
				c.read = func() any {
					sc.replay, sc.first = true, m
					if sc.firstErr = conn.Receive(m); sc.firstErr != nil {
						return nil
					}
					return m
				}
			}
		}
		ctx, ev, err := a.admit(ctx, c)
		if err != nil {
			return err
		}
		r := rules[c.procedure]
		if !r.record {
			return next(ctx, sc)
		}
		_, tenant := principalFrom(ctx)
		logTenant := a.logTenant(ctx, r.perm, tenant)
		// The allowed record's index, once written: a failure's record names it.
		var allowedAt *uint64
		sc.record = func(msg any) error {
			if r.target != nil && ev.target == "" {
				ev.target = r.target(msg, a.namer(ctx, tenant, true))
			}
			idx, err := a.record(ctx, ev, logTenant)
			if err == nil {
				allowedAt = &idx
			}
			return err
		}
		err = next(ctx, sc)
		if err != nil && sc.recorded {
			// The access was recorded allowed before its first byte; its
			// outcome is recorded too, linked to that record (docs/ACCESS.md).
			failed := *ev
			failed.outcome, failed.code, failed.reason = format.AccessFailed, connect.CodeOf(err), errorMessage(err)
			failed.allowedAt = allowedAt
			if _, rerr := a.record(ctx, &failed, logTenant); rerr != nil {
				return rerr
			}
		}
		return err
	}
}

// newRequest returns an empty request message of a procedure, from its
// schema; nil if the procedure has none.
func newRequest(spec connect.Spec) proto.Message {
	md, ok := spec.Schema.(protoreflect.MethodDescriptor)
	if !ok {
		return nil
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
	if err != nil {
		return nil
	}
	return mt.New().Interface()
}

// streamConn is a stream as its handler sees it: its first Receive returns
// the request message the interceptor read before deciding, if it read one
// (or the error it got), and the access is recorded on the first message
// the handler receives.
type streamConn struct {
	connect.StreamingHandlerConn
	replay   bool // first and firstErr are still to be handed to the handler
	first    proto.Message
	firstErr error
	record   func(msg any) error // nil: the stream is not recorded
	recorded bool
}

func (c *streamConn) Receive(msg any) error {
	if c.replay {
		c.replay = false
		if c.firstErr != nil {
			return c.firstErr
		}
		m, ok := msg.(proto.Message)
		if !ok || m.ProtoReflect().Descriptor() != c.first.ProtoReflect().Descriptor() {
			return fmt.Errorf("receive %T: the request read is a %T", msg, c.first)
		}
		proto.Reset(m)
		proto.Merge(m, c.first)
	} else if err := c.StreamingHandlerConn.Receive(msg); err != nil {
		return err
	}
	if c.record == nil || c.recorded {
		return nil
	}
	c.recorded = true
	return c.record(msg)
}

// accessEvent is an access being recorded.
type accessEvent struct {
	keyID, procedure, tenant, target, peer, reason string
	// keyKnown: the request presented the secret of the stored key keyID
	// (authenticated, or revoked or expired); otherwise keyID is whatever
	// the client sent, if anything.
	keyKnown bool
	// keyBound: the key authenticated and is bound to the tenant of the log
	// its refusal is recorded in (a key bound to every tenant is bound to
	// the system log too).
	keyBound bool
	role     policy.Role
	outcome  format.AccessOutcome
	code     connect.Code
	time     time.Time
	// allowedAt: for the failed record of a stream recorded allowed
	// before its first byte, the index of that record.
	allowedAt *uint64
}

// burstKeyID is the key id refusals are coalesced by: a key has bursts of
// its own only in the logs of the tenants it is bound to. Elsewhere the
// refusals of one peer share a burst whatever key they carried (the
// summaries list the keys), so that neither inventing key ids nor minting
// keys opens new bursts in another tenant's log.
func (e *accessEvent) burstKeyID() string {
	if e.keyBound {
		return e.keyID
	}
	return ""
}

func (e *accessEvent) deny(code connect.Code, reason string) {
	e.outcome, e.code, e.reason = format.AccessDenied, code, reason
}

func (e *accessEvent) proto() *v1.AccessRecord {
	r := &v1.AccessRecord{
		KeyId: logText(e.keyID, maxKeyIDBytes), Role: roleProto(e.role), Procedure: logText(e.procedure, maxProcedureBytes),
		Tenant: logText(e.tenant, maxTenantBytes), Target: targetText(e.target),
		Outcome: v1.AccessOutcome(e.outcome), Reason: logText(e.reason, maxReasonBytes), Peer: logText(e.peer, maxPeerBytes),
		Time: timestamppb.New(e.time), AllowedIndex: e.allowedAt,
	}
	if e.code != 0 {
		r.Code = e.code.String()
	}
	return r
}
