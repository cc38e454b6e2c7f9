package retention

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// ErasureRequest asks to erase a data subject's, a session's or some
// traces' payloads.
type ErasureRequest struct {
	// ID makes the request idempotent: a request with the ID of an earlier
	// one returns that one's outcome.
	ID       string
	Subject  string
	Session  string
	TraceIDs [][16]byte
	// LegalBasis, e.g. "GDPR Art. 17(1)(a)"; Ticket, an external reference;
	// Reason, free text. LegalBasis and Reason are required.
	LegalBasis, Ticket, Reason string
	RequestedBy                string
	DryRun                     bool
}

// Erasure is an erasure request's, or a sweep's, plan and outcome. Both
// are persisted before any key is destroyed and finished by Resume after a
// crash, so that no payload is ever gone without its tombstone.
type Erasure struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind,omitempty"` // "" (erasure) or "expiry"
	Tenant      string    `json:"tenant"`
	State       string    `json:"state"`    // "dry-run", "executing", "done"
	Selector    string    `json:"selector"` // "subject", "session" or "traces"; never the id itself
	LegalBasis  string    `json:"legal_basis"`
	Ticket      string    `json:"ticket,omitempty"`
	Reason      string    `json:"reason"`
	RequestedBy string    `json:"requested_by,omitempty"`
	RequestedAt time.Time `json:"requested_at"`
	CompletedAt time.Time `json:"completed_at,omitzero"`
	// Erase lists the entries erased (or, in a dry run, to be erased).
	Erase []uint64 `json:"erase"`
	// Held lists the entries selected but kept by a hold.
	Held []format.HeldEntry `json:"held,omitempty"`
	Keys []string           `json:"keys"` // data key ids (hex) to destroy
	// KeyRefs are the same keys with their scopes (ledger.KeyRef's text
	// form), kept while the plan executes so that an interrupted plan can
	// finish destroying them after their index records are gone; cleared
	// once done, since they hold the subject's pseudonym.
	KeyRefs []*ledger.KeyRef `json:"key_refs,omitempty"`
	// Buckets are the expiry buckets a sweep destroys whole, as "day/class"
	// (day: days since 1970-01-01 UTC).
	Buckets []string `json:"buckets,omitempty"`
	// Tombstone is the first tombstone written, Tombstones all of them
	// (format.MaxTombstoneNames entries each at most).
	Tombstone  *uint64  `json:"tombstone,omitempty"`
	Tombstones []uint64 `json:"tombstones,omitempty"`
	// Receipt and ReceiptSig are set once done.
	Receipt    json.RawMessage `json:"receipt,omitempty"`
	ReceiptSig string          `json:"receipt_sig,omitempty"`
	// RequestMAC is a keyed digest of what the request asked (requestMAC)
	// under RequestKey, random per plan, in which the subject or session id
	// is present only as its pseudonym: a request id reused for a
	// different request is refused, and once the erasure has destroyed the
	// pseudonym key nothing can confirm a guessed id against it. Empty for
	// sweeps.
	RequestMAC string `json:"request_mac,omitempty"`
	RequestKey string `json:"request_key,omitempty"`
	// RequestDigest and DigestKey are what plans of an earlier build kept
	// instead (requestDigestV1, over the id itself); never written now.
	RequestDigest string `json:"request_digest,omitempty"`
	DigestKey     string `json:"digest_key,omitempty"`
	// SelectorRef is the index term (ledger.TermRef text) of the subject or
	// session erased; Pseudonyms the pseudonym keys to destroy (that of
	// the selector unless a hold kept some of its entries, and for a
	// subject those of the sessions of its erased entries). Both are kept
	// while the plan executes and cleared once done.
	SelectorRef string   `json:"selector_ref,omitempty"`
	Pseudonyms  []string `json:"pseudonyms,omitempty"`
	// Expired are the expiry buckets a sweep retired, as "day/class": its
	// plan is made again from them if a hold is placed before it commits.
	Expired []string `json:"expired,omitempty"`
	// HoldsAt is the size of the log read before the plan read the holds:
	// the plan commits only if no hold entry is at that index or later.
	HoldsAt *uint64 `json:"holds_at,omitempty"`
	// Lists: the plan's lists (Erase, Held, Keys, KeyRefs, Pseudonyms,
	// Buckets, Expired) are stored in chunks beside its header, which
	// holds none of them (plan.go). Absent in plans of earlier builds,
	// which hold their lists.
	Lists *PlanLists `json:"lists,omitempty"`
	// traceOf is the trace of each span the plan selected, as the
	// process that made (or last re-selected) it read them; never stored
	// (closeTraces).
	traceOf map[uint64][16]byte
	// kept counts the OTLP entries a sweep's plan, as last made, keeps
	// with their traces or spans (keptByOthers); never stored.
	kept int
}

// ReceiptFormat is the format of the receipts this build signs.
const ReceiptFormat = "veritrace-erasure-receipt/v2"

// Receipt is what an erasure receipt says; the log key signs its JSON
// (format.ReceiptSignatureBody). It names the tombstone parts of the
// request by index and leaf hash: they, in the log, name every erased
// entry (with its leaf hash) and every held one (with its hold and case
// reference), so the receipt grows by one part per
// format.MaxTombstoneNames entries, not with every entry
// (docs/RETENTION.md). Receipts of earlier builds
// ("veritrace-erasure-receipt/v1") listed the entries themselves; they
// are kept as they were signed.
type Receipt struct {
	Format      string    `json:"format"` // ReceiptFormat
	RequestID   string    `json:"request_id"`
	Origin      string    `json:"origin"`
	Tenant      string    `json:"tenant"`
	Selector    string    `json:"selector"`
	LegalBasis  string    `json:"legal_basis"`
	Ticket      string    `json:"ticket,omitempty"`
	RequestedBy string    `json:"requested_by,omitempty"`
	RequestedAt time.Time `json:"requested_at"`
	CompletedAt time.Time `json:"completed_at"`
	// ErasedCount and HeldCount are the numbers of entries the tombstone
	// parts name as erased and as held.
	ErasedCount uint64 `json:"erased_count"`
	HeldCount   uint64 `json:"held_count"`
	// Tombstones are the request's tombstone parts, part 1 first.
	Tombstones []ReceiptTombstone `json:"tombstones"`
	// Checkpoint is the signed checkpoint after the tombstones were
	// appended.
	Checkpoint string `json:"checkpoint"`
}

// ReceiptTombstone names one tombstone part in a receipt.
type ReceiptTombstone struct {
	Index    uint64 `json:"index"`
	LeafHash string `json:"leaf_hash"` // hex
}

// ErrRequestIDReused: the request id names an earlier, different request.
var ErrRequestIDReused = errors.New("request_id already names a different erasure request")

// requestMAC is HMAC-SHA256, under key, of everything an erasure request
// asks, with the subject or session id replaced by its pseudonym: the
// selector, the pseudonym, the trace ids as a set, the legal basis, the
// ticket and the reason; not who asks, nor whether it is a dry run.
func requestMAC(key []byte, req ErasureRequest, pseudonym string) []byte {
	m := hmac.New(sha256.New, key)
	field := func(b []byte) {
		m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		m.Write(b)
	}
	field([]byte("veritrace erasure request v2"))
	field([]byte(selectorOf(req)))
	field([]byte(pseudonym))
	writeTraces(m, req.TraceIDs)
	field([]byte(req.LegalBasis))
	field([]byte(req.Ticket))
	field([]byte(req.Reason))
	return m.Sum(nil)
}

// requestDigestV1 is the digest plans of an earlier build kept, over the
// subject or session id itself; only compared, never made.
func requestDigestV1(key []byte, req ErasureRequest) []byte {
	m := hmac.New(sha256.New, key)
	field := func(b []byte) {
		m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(b))))
		m.Write(b)
	}
	field([]byte("veritrace erasure request v1"))
	field([]byte(req.Subject))
	field([]byte(req.Session))
	writeTraces(m, req.TraceIDs)
	field([]byte(req.LegalBasis))
	field([]byte(req.Ticket))
	field([]byte(req.Reason))
	return m.Sum(nil)
}

func writeTraces(m hash.Hash, ids [][16]byte) {
	traces := slices.Clone(ids)
	slices.SortFunc(traces, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	traces = slices.Compact(traces)
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(len(traces))))
	for _, t := range traces {
		m.Write(t[:])
	}
}

func selectorOf(req ErasureRequest) string {
	switch {
	case req.Subject != "":
		return "subject"
	case req.Session != "":
		return "session"
	}
	return "traces"
}

// sameRequest reports whether req is the request the plan was made for.
// pseudonym is the pseudonym of req's subject or session id under its key
// as it is now ("" if it has none: never made, or destroyed by this
// erasure). A sweep's plan never matches an erasure request. Once an
// erasure has destroyed its subject's pseudonym key (done, or interrupted
// after its keys were destroyed), a request whose id has no key matches
// on everything but the id, which nothing kept can be compared with (that
// is what erasure is); one whose id has a key (another subject with data,
// or the same one with data again since) does not match.
func (er *Erasure) sameRequest(req ErasureRequest, pseudonym string) bool {
	switch {
	case er.Kind != "":
		return false
	case er.RequestMAC != "":
		key, err1 := hex.DecodeString(er.RequestKey)
		want, err2 := hex.DecodeString(er.RequestMAC)
		if err1 != nil || err2 != nil {
			return false
		}
		if hmac.Equal(requestMAC(key, req, pseudonym), want) {
			return true
		}
		return pseudonym == "" && selectorOf(req) != "traces" && er.Selector == selectorOf(req) &&
			er.LegalBasis == req.LegalBasis && er.Ticket == req.Ticket && er.Reason == req.Reason
	case er.RequestDigest != "":
		key, err1 := hex.DecodeString(er.DigestKey)
		want, err2 := hex.DecodeString(er.RequestDigest)
		return err1 == nil && err2 == nil && hmac.Equal(requestDigestV1(key, req), want)
	}
	return true // stored before digests were kept
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Erase carries out (or, with DryRun, plans) an erasure request. Entries
// covered by a legal hold are not erased; the outcome lists them with the
// hold. A request with the ID of an earlier one returns its outcome if it
// asks the same (sameRequest), else ErrRequestIDReused; one interrupted
// by a crash is finished by Resume or by asking again. It first finishes
// the tenant's running plans whose lease ended (takeOverTenant). It never
// reports done beside another plan that claimed some of the selected
// entries and has not destroyed their keys (another node's, or one whose
// finishing failed): it returns a *BusyError (ErrBusy) then, having
// erased nothing (no key destroyed, no tombstone; see BusyError for what
// may be stored), and asking again with the same ID once that plan is
// done carries it out.
func (s *Service) Erase(ctx context.Context, tenant string, req ErasureRequest) (_ *Erasure, err error) {
	if !validRequestID(req.ID) {
		return nil, fmt.Errorf("%w: request id must be %s", ErrInvalid, RequestIDSyntax)
	}
	n := 0
	for _, set := range []bool{req.Subject != "", req.Session != "", len(req.TraceIDs) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("%w: name exactly one of a subject, a session or trace ids", ErrInvalid)
	}
	if req.LegalBasis == "" || req.Reason == "" {
		return nil, fmt.Errorf("%w: an erasure needs a legal basis and a reason", ErrNoReason)
	}
	// The tenant's plans whose process failed are finished first, so that
	// none holds entries of this request out of its plan, still readable.
	if err := s.takeOverTenant(ctx, tenant); err != nil {
		return nil, err
	}
	s.work.Lock()
	defer s.work.Unlock()
	// The request id's lease, before it is looked up: of two requests with
	// one id, on any nodes, one plans and the other waits for its outcome.
	if err := s.acquire(ctx, tenant, req.ID); err != nil {
		return nil, err
	}
	defer s.release(context.WithoutCancel(ctx), tenant, req.ID)
	// Renewed while it plans (selecting and planning many entries may
	// outlast the lease) and while complete carries the plan out: lease
	// ends only if the lease is lost. The planning also stops if the
	// caller gives up; complete does not.
	lease, stop := s.keepLease(ctx, tenant, req.ID)
	defer func() {
		err = leaseLost(req.ID, err, stop())
	}()
	ctx, cancel := untilCancelled(lease, ctx)
	defer cancel()
	value, field := req.Subject, ledger.SubjectField
	if req.Session != "" {
		value, field = req.Session, s.SessionField
	}
	if er, err := s.getErasure(ctx, tenant, req.ID, false); err == nil {
		pseudonym := ""
		if value != "" {
			// Pseudonym keys are made when first needed: an id with data
			// and no key yet gets one here, so that it is told apart from
			// the erased one (whose key is gone, with all its entries).
			ref, err := s.L.TermRefOf(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)})
			if err != nil {
				return nil, err
			}
			idxs, err := s.L.EntriesWith(ctx, tenant, ref)
			if err != nil {
				return nil, err
			}
			k, err := s.L.PseudonymKey(ctx, tenant, ref, len(idxs) > 0)
			if err == nil {
				pseudonym = k.Pseudonym(value)
			} else if !errors.Is(err, ledger.ErrNotFound) {
				return nil, err
			}
		}
		if !er.sameRequest(req, pseudonym) {
			return nil, fmt.Errorf("%w: %q was used for an erasure or sweep requested at %s; use a new request id", ErrRequestIDReused, req.ID, er.RequestedAt.Format(time.RFC3339))
		}
		if er.State == "executing" {
			return er, s.complete(lease, er)
		}
		return er, nil
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return nil, err
	}

	er := &Erasure{ID: req.ID, Tenant: tenant, Selector: selectorOf(req), LegalBasis: req.LegalBasis, Ticket: req.Ticket, Reason: req.Reason,
		RequestedBy: req.RequestedBy, RequestedAt: s.now(), State: "executing"}
	var ref ledger.TermRef
	if value != "" {
		if ref, err = s.L.TermRefOf(ctx, tenant, ledger.Term{Field: field, Value: []byte(value)}); err != nil {
			return nil, err
		}
		er.SelectorRef = ref.String()
	}
	// The subject's (session's) whole traces: complete closes them once
	// the plan is stored, then selects again (closure.go).
	targets, traceOf, err := s.selectEntries(ctx, tenant, req)
	if err != nil {
		return nil, err
	}
	_, live, err := s.L.KeysOf(ctx, tenant, targets)
	if err != nil {
		return nil, err
	}
	if len(live) == 0 {
		return nil, fmt.Errorf("%s: %w", er.Selector, ErrNothingToErase)
	}
	er.traceOf = traceOf
	pseudonym := ""
	if value != "" {
		// The id's pseudonym key names it in the request's digest; the
		// erasure destroys it unless a hold keeps some of its entries.
		// Made only for an id with something to erase.
		k, err := s.L.PseudonymKey(ctx, tenant, ref, true)
		if err != nil {
			return nil, err
		}
		pseudonym = k.Pseudonym(value)
	}
	requestKey := make([]byte, 32)
	rand.Read(requestKey)
	er.RequestKey, er.RequestMAC = hex.EncodeToString(requestKey), hex.EncodeToString(requestMAC(requestKey, req, pseudonym))
	er.Erase = live
	if _, err := s.planErasure(ctx, er); err != nil {
		return nil, err
	}
	if req.DryRun {
		er.State = "dry-run"
		return er, nil
	}
	if err := s.putErasure(ctx, er); err != nil {
		return nil, err
	}
	if err := s.complete(lease, er); err != nil {
		var busy *BusyError
		if errors.As(err, &busy) {
			// Planned again before its commit, beside another plan that
			// committed meanwhile: stored, uncommitted, nothing erased
			// (its traces closed: closeTraces ran before the refused
			// commit). Asking again, or the next takeover once the other
			// plan is done, carries it out; it is not a failure to list.
			return nil, err
		}
		// Stored and unfinished (its traces may be closed already): the
		// health check lists it until asking again, or Resume, finishes it.
		s.markUnfinished(tenant, er.ID)
		return er, err
	}
	return er, nil
}

// planErasure decides, for the entries an erasure selected (those of its
// plan, erased or held), which a hold in force keeps and which are erased,
// the data keys to destroy and the pseudonym keys. It returns the size of
// the log read before the holds (held).
func (s *Service) planErasure(ctx context.Context, er *Erasure) (uint64, error) {
	held, size, err := s.held(ctx, er.Tenant, selected(er))
	if err != nil {
		return 0, err
	}
	er.HoldsAt = &size
	// Read after the log's size: entries another plan has committed to
	// erase (its tombstone precedes size) or erased are not this plan's.
	claimed, err := s.claimed(ctx, er)
	if err != nil {
		return 0, err
	}
	_, cands, err := s.L.KeysOf(ctx, er.Tenant, selected(er))
	if err != nil {
		return 0, err
	}
	// An entry another plan claimed and whose key it has not destroyed
	// yet is still readable: this erasure would report done beside it.
	// That plan is being carried out by another node, or its finishing
	// failed (Erase took it over first): this one waits for it.
	if err := busyBeside(claimed, cands); err != nil {
		return 0, err
	}
	er.Erase, er.Held = nil, nil
	for _, i := range cands {
		if h := held[i]; h != nil {
			er.Held = append(er.Held, format.HeldEntry{Index: i, HoldID: h.ID, CaseRef: h.CaseRef})
			continue
		}
		er.Erase = append(er.Erase, i)
	}
	er.Keys, er.KeyRefs, er.Pseudonyms = nil, nil, nil
	if er.SelectorRef != "" && len(er.Held) == 0 {
		r, err := ledger.ParseTermRef(er.SelectorRef)
		if err != nil {
			return 0, err
		}
		if k, err := s.L.PseudonymKey(ctx, er.Tenant, r, false); err == nil {
			er.Pseudonyms = append(er.Pseudonyms, pseudonymEntry(ledger.PseudonymRef{Ref: k.Ref, Stamp: k.Stamp}))
		} else if !errors.Is(err, ledger.ErrNotFound) {
			return 0, err
		}
	}
	if len(er.Erase) > 0 {
		keys, ids, err := s.L.KeysAndTermsOf(ctx, er.Tenant, er.Erase, ledger.SubjectField, s.SessionField)
		if err != nil {
			return 0, err
		}
		for id, k := range keys {
			er.Keys = append(er.Keys, hex.EncodeToString(id[:]))
			er.KeyRefs = append(er.KeyRefs, k)
		}
		// The other subjects and sessions of the erased entries (a
		// subject's sessions, a session's or a trace's subjects) lose
		// their pseudonym keys with their last live entry.
		ids = slices.DeleteFunc(ids, func(r ledger.TermRef) bool { return r.String() == er.SelectorRef })
		gone, err := s.lastOf(ctx, er, ids, claimed)
		if err != nil {
			return 0, err
		}
		er.Pseudonyms = append(er.Pseudonyms, gone...)
	}
	sort.Strings(er.Keys)
	sort.Slice(er.KeyRefs, func(i, j int) bool { return bytes.Compare(er.KeyRefs[i].ID[:], er.KeyRefs[j].ID[:]) < 0 })
	return size, nil
}

// BusyError: entries an erasure selected are claimed by another plan (its
// first tombstone, naming them, is in the log) that has not destroyed
// their keys yet: one another node is carrying out, or one whose
// finishing failed. They are still readable, so the erasure does not go
// ahead beside it: nothing of it is erased, no key destroyed and no
// tombstone appended. Either Erase wrote no plan (it may have made the
// subject's pseudonym key, as any erasure with something to erase does),
// or, when the other plan committed between this one's planning and its
// commit, this plan stays stored and uncommitted, its traces already
// closed (commitPlan closes them before each attempt to commit), until
// asking again or the periodic takeover carries it out. Asking again
// with the same request id once the other plan is done is safe.
// errors.Is(err, ErrBusy) holds. It names the other plan by its id (an
// erasure's request id, or a sweep's id), never a subject.
type BusyError struct {
	Plan    string // id of the plan that claims the entries
	Entries int    // how many of the selected entries it claims
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("erasure or sweep %s has committed to erase %d of the selected entries and has not destroyed their keys yet; this request has erased nothing yet: ask again with the same request id once it is done (GetErasure %s)", e.Plan, e.Entries, e.Plan)
}

// Is makes a BusyError an ErrBusy.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// busyBeside returns a *BusyError if other plans claimed any of live (the
// selected entries that still have their keys), naming the plan that
// claims the most (the first in id order of those that claim as many).
func busyBeside(claimed map[uint64]string, live []uint64) error {
	by := map[string]int{}
	for _, i := range live {
		if id := claimed[i]; id != "" {
			by[id]++
		}
	}
	if len(by) == 0 {
		return nil
	}
	ids := slices.Sorted(maps.Keys(by))
	top := ids[0]
	for _, id := range ids[1:] {
		if by[id] > by[top] {
			top = id
		}
	}
	return &BusyError{Plan: top, Entries: by[top]}
}

// selected returns the entries a plan selected, erased or held, in order.
func selected(er *Erasure) []uint64 {
	out := slices.Clone(er.Erase)
	for _, h := range er.Held {
		out = append(out, h.Index)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Test hooks, set by tests: testHookBeforeCommit runs after a plan is made
// and persisted, before its first tombstone is appended (attempt counts
// from 0); testHookAfterTombstone after the tombstones are appended, before
// any key is destroyed; testHookAfterShred after the keys are destroyed,
// before the plan is marked done; testHookAfterTombstonePart after each
// part of a tombstone is appended; testHookPlanChunks after each step of
// storing a plan's chunks.
var (
	testHookPlanChunks         func(er *Erasure) error
	testHookBeforeCommit       func(er *Erasure, attempt int) error
	testHookAfterTombstone     func() error
	testHookAfterShred         func() error
	testHookAfterTombstonePart func(part int) error
)

// errNothingLeft: a sweep planned again has nothing left to do.
var errNothingLeft = errors.New("nothing left to expire")

// maxReplans bounds how often a plan is made again because a hold was
// placed between its planning and its commit.
const maxReplans = 8

// runPlan carries out plan er (complete) under its lease, which the
// caller holds (acquire) and renews no other way: it keeps the lease while
// complete runs and, if the lease was lost meanwhile, reports the loss
// rather than what stopping made fail.
func (s *Service) runPlan(ctx context.Context, er *Erasure) error {
	lease, stop := s.keepLease(ctx, er.Tenant, er.ID)
	err := s.complete(lease, er)
	return leaseLost(er.ID, err, stop())
}

// leaseLost is err, the outcome of work on plan id, naming the plan (its
// request id, never its subject) when the plan's lease was lost: lost,
// what keepLease's stop returned, or errLeaseLost found by a write's
// check where it commits. Losing the lease is reported rather than what
// stopping made fail.
func leaseLost(id string, err, lost error) error {
	switch {
	case err == nil:
		return nil
	case lost != nil:
		return fmt.Errorf("erasure %s: %w", id, lost)
	case errors.Is(err, errLeaseLost):
		return fmt.Errorf("erasure %s: %w", id, err)
	}
	return err
}

// ErrHoldsChanging: holds kept being placed or released, or other
// erasures committed, while an erasure or sweep was about to commit; it
// was not carried out (and is finished later, by Resume or by asking
// again).
var ErrHoldsChanging = errors.New("legal holds or other erasures kept changing while the erasure was committing")

// complete carries out a persisted erasure or sweep plan, tombstone first:
//
//  1. commit: the first tombstone part is appended only if no hold entry
//     was appended since the plan read the holds (ledger.AppendUnless);
//     if one was, the plan is made again with the new holds, persisted,
//     and tried again. The tombstones name exactly the entries to erase
//     and those the holds keep; nothing has been destroyed yet.
//  2. the other tombstone parts (if any), each of at most
//     format.MaxTombstoneNames entries;
//  3. Shred: the kept entries under the keys to destroy are re-sealed, the
//     erased ones lose their payloads and index terms, the keys are
//     destroyed; then the pseudonym keys, and what holds kept of them;
//  4. the erased entries are marked with their tombstone part, the
//     receipt signed, the plan marked done (keeping no index term).
//
// Every step is idempotent, so that an interrupted plan is completed by
// running it again (Resume): a plan whose first tombstone exists is past
// step 1 and is never planned again.
//
// The caller holds the plan's lease and keeps it for the whole run: ctx
// MUST be the context keepLease returned for it, which ends only if the
// lease is lost, so that once its tombstone is written the plan runs to
// the end whoever asked for it gives up. complete renews no lease of its
// own; runPlan starts the renewal for callers that have none running.
func (s *Service) complete(ctx context.Context, er *Erasure) error {
	if err := s.acquire(ctx, er.Tenant, er.ID); err != nil {
		return err
	}
	if len(er.Tombstones) == 0 {
		err := s.commitPlan(ctx, er)
		if errors.Is(err, errNothingLeft) {
			// A sweep planned again after a policy change found nothing
			// expired: done, with no tombstone.
			er.State, er.CompletedAt = "done", s.now()
			er.KeyRefs, er.SelectorRef, er.Pseudonyms = nil, "", nil
			if err := s.putErasure(ctx, er); err != nil {
				return err
			}
			s.finished(er)
			return nil
		}
		if err != nil {
			return err
		}
	}
	if testHookAfterTombstone != nil {
		if err := testHookAfterTombstone(); err != nil {
			return err
		}
	}
	// Every key and bucket of the plan goes to Shred, those destroyed
	// before an interruption too: destroying again removes what a crash
	// left of them (index records, or material).
	keys := er.KeyRefs
	if len(keys) == 0 && len(er.Keys) > 0 {
		// A plan of an earlier build names keys by id only: find them by
		// their location records (gone only once fully destroyed).
		for _, h := range er.Keys {
			var id [16]byte
			if _, err := hex.Decode(id[:], []byte(h)); err != nil {
				return fmt.Errorf("erasure %s: key id %q: %w", er.ID, h, err)
			}
			k, err := s.L.KeyLocation(id)
			if errors.Is(err, ledger.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			keys = append(keys, k)
		}
	}
	erase := map[uint64]bool{}
	for _, i := range er.Erase {
		erase[i] = true
	}
	var buckets []ledger.Bucket
	for _, name := range er.Buckets {
		day, class, ok := parseBucketName(name)
		if !ok {
			return fmt.Errorf("erasure %s: malformed bucket %q", er.ID, name)
		}
		b, err := s.L.ExpiryBucket(ctx, er.Tenant, day, class)
		if err != nil {
			return err
		}
		buckets = append(buckets, b)
	}
	// A hold placed since the plan was made on a subject or session whose
	// key the plan destroys keeps it (the hold names it by it); a hold in
	// force on the erased selector keeps entries, so the plan holds none.
	pseudonyms, err := s.doomedPseudonyms(ctx, er, erase)
	if err != nil {
		return fmt.Errorf("erasure %s: %w", er.ID, err)
	}
	// Fenced: a process that lost the plan's lease destroys nothing (see
	// docs/RETENTION.md for what the check leaves open).
	if err := s.acquire(ctx, er.Tenant, er.ID); err != nil {
		return err
	}
	if _, err := s.L.Shred(ctx, er.Tenant, keys, buckets, erase, pseudonyms...); err != nil {
		return fmt.Errorf("erasure %s: %w", er.ID, err)
	}
	if err := s.scrubHolds(ctx, er); err != nil {
		return fmt.Errorf("erasure %s: %w", er.ID, err)
	}
	if testHookAfterShred != nil {
		if err := testHookAfterShred(); err != nil {
			return err
		}
	}
	if err := s.acquire(ctx, er.Tenant, er.ID); err != nil {
		return err
	}
	parts := splitTombstone(er.tombstone())
	for p, part := range parts {
		marked := make([]uint64, len(part.Erased))
		for j, te := range part.Erased {
			marked[j] = te.Index
		}
		if err := s.L.MarkErased(ctx, er.Tenant, marked, er.Tombstones[p]); err != nil {
			return err
		}
	}
	idx := er.Tombstones[0]
	er.KeyRefs, er.SelectorRef, er.Pseudonyms = nil, "", nil // destroyed: keep no index term
	if er.Kind == "expiry" {
		er.Tombstone, er.State, er.CompletedAt = &idx, "done", s.now()
		s.log().InfoContext(ctx, "sweep", "tenant", er.Tenant, "expired", len(er.Erase), "held", len(er.Held), "kept", er.kept, "tombstone", idx)
		if err := s.putErasure(ctx, er); err != nil {
			return err
		}
		s.finished(er)
		return nil
	}
	leaves, err := s.L.LeafHashes(ctx, er.Tenant, er.Tombstones)
	if err != nil {
		return err
	}
	named := make([]ReceiptTombstone, len(leaves))
	for j, leaf := range leaves {
		named[j] = ReceiptTombstone{Index: er.Tombstones[j], LeafHash: hex.EncodeToString(leaf[:])}
	}
	cp, err := s.L.Checkpoint(ctx, er.Tenant, true)
	if err != nil {
		return err
	}
	er.Tombstone, er.State, er.CompletedAt = &idx, "done", s.now()
	rc := Receipt{Format: ReceiptFormat, RequestID: er.ID, Origin: cp.Origin, Tenant: er.Tenant, Selector: er.Selector,
		LegalBasis: er.LegalBasis, Ticket: er.Ticket, RequestedBy: er.RequestedBy, RequestedAt: er.RequestedAt,
		CompletedAt: er.CompletedAt, ErasedCount: uint64(len(er.Erase)), HeldCount: uint64(len(er.Held)), Tombstones: named, Checkpoint: string(cp.Note)}
	if er.Receipt, err = json.Marshal(&rc); err != nil {
		return err
	}
	sig, err := s.L.SignReceipt(ctx, er.Tenant, sha256.Sum256(er.Receipt))
	if err != nil {
		return err
	}
	er.ReceiptSig = string(sig)
	if err := s.putErasure(ctx, er); err != nil {
		return err
	}
	s.finished(er)
	s.log().InfoContext(ctx, "erasure done", "tenant", er.Tenant, "request_id", er.ID, "erased", len(er.Erase), "held", len(er.Held), "tombstone", idx)
	s.L.RequestValueLogGC()
	return nil
}

// commitPlan is complete's first two steps: it appends the plan's
// tombstones, the first under the condition that no hold entry came since
// the plan read the holds, planning again (at most maxReplans times)
// while one did. It records the tombstones' indexes in the plan.
func (s *Service) commitPlan(ctx context.Context, er *Erasure) error {
	for attempt := 0; ; attempt++ {
		first := er.partID(1)
		if _, found, err := s.L.IdentityIndex(ctx, er.Tenant, format.KindTombstone, first); err != nil {
			return err
		} else if found {
			// Committed before an interruption, from the plan as persisted:
			// every part is appended again below (appending nothing twice),
			// the first too, so that a plan that is not the one committed (a
			// process that lost the lease appended its own: docs/RETENTION.md,
			// "Several processes over one database") is refused before it
			// destroys anything.
			break
		}
		if er.HoldsAt == nil {
			// A plan of an earlier build, which destroyed keys before
			// writing its tombstone: it is finished as it was made.
			idx, err := s.appendPart(ctx, er, 1, nil)
			if err != nil {
				return err
			}
			er.Tombstones = []uint64{idx}
			break
		}
		if attempt > 0 {
			var err error
			if er.Kind == "expiry" {
				_, err = s.planSweep(ctx, er)
			} else {
				_, err = s.planErasure(ctx, er)
			}
			if err != nil {
				return err
			}
			if er.Kind == "expiry" && len(er.Erase) == 0 && len(er.Buckets) == 0 && len(er.Keys) == 0 && len(er.Pseudonyms) == 0 {
				return errNothingLeft
			}
			if err := s.putErasure(ctx, er); err != nil {
				return err
			}
		}
		if er.Kind == "" {
			// Closed from the stored plan, and stored again if closing
			// found pieces that arrived before it (closure.go).
			changed, err := s.closeTraces(ctx, er)
			if err != nil {
				return err
			}
			if changed {
				if err := s.putErasure(ctx, er); err != nil {
					return err
				}
			}
		}
		if testHookBeforeCommit != nil {
			if err := testHookBeforeCommit(er, attempt); err != nil {
				return err
			}
		}
		// Committed only if no hold entry (placed or released), no other
		// plan's tombstone and, for a sweep, no retention change came since
		// the plan read them: whatever process appended it.
		unless := &ledger.Unless{Kinds: []format.Kind{format.KindHold, format.KindTombstone}, From: *er.HoldsAt}
		if er.Kind == "expiry" {
			unless.Kinds = append(unless.Kinds, format.KindRetention)
		}
		if err := s.acquire(ctx, er.Tenant, er.ID); err != nil {
			return err
		}
		idx, err := s.appendPart(ctx, er, 1, unless)
		if errors.Is(err, ledger.ErrPrecondition) {
			if attempt+1 >= maxReplans {
				return fmt.Errorf("%s %s: %w", er.what(), er.ID, ErrHoldsChanging)
			}
			s.log().InfoContext(ctx, "a hold, another plan's tombstone or a retention change came while committing: planning again", "tenant", er.Tenant, "kind", er.what(), "attempt", attempt+1)
			continue
		}
		if err != nil {
			return err
		}
		er.Tombstones = []uint64{idx}
		break
	}
	if len(er.Tombstones) == 1 && testHookAfterTombstonePart != nil {
		if err := testHookAfterTombstonePart(1); err != nil {
			return err
		}
	}
	// The plan records the parts' indexes once done: until then, a resumed
	// plan appends its parts again, which appends nothing twice.
	parts := splitTombstone(er.tombstone())
	for p := len(er.Tombstones); p < len(parts); p++ {
		idx, err := s.appendPart(ctx, er, p+1, nil)
		if err != nil {
			return err
		}
		er.Tombstones = append(er.Tombstones, idx)
		if testHookAfterTombstonePart != nil {
			if err := testHookAfterTombstonePart(p + 1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (er *Erasure) what() string {
	if er.Kind == "expiry" {
		return "sweep"
	}
	return "erasure"
}

// partID is the identity of a tombstone part: the same every time, so that
// appending it again after an interruption appends nothing twice.
func (er *Erasure) partID(part int) [32]byte {
	reason := "erasure"
	if er.Kind == "expiry" {
		reason = "expiry"
	}
	return recordID(reason, er.Tenant, er.ID, "part", strconv.Itoa(part))
}

// tombstone is the whole tombstone of a plan: every part's lists together.
// Entries are named by index only here; leaf hashes are added per part.
func (er *Erasure) tombstone() *format.Tombstone {
	ts := &format.Tombstone{Reason: "erasure", RequestID: er.ID, LegalBasis: er.LegalBasis, Ticket: er.Ticket,
		Why: er.Reason, RequestedBy: er.RequestedBy, Held: er.Held}
	if er.Kind == "expiry" {
		ts.Reason = "expiry"
	}
	for _, i := range er.Erase {
		ts.Erased = append(ts.Erased, format.TombstoneEntry{Index: i})
	}
	return ts
}

// splitTombstone splits a plan's tombstone into parts of at most
// format.MaxTombstoneNames entries: erased entries first, then held ones,
// in the plan's order; each part numbered, with the plan's other fields.
// The split depends on the lists only, so that it is the same every time.
func splitTombstone(all *format.Tombstone) []*format.Tombstone {
	names := len(all.Erased) + len(all.Held)
	n := max(1, (names+format.MaxTombstoneNames-1)/format.MaxTombstoneNames)
	out := make([]*format.Tombstone, 0, n)
	erased, held := all.Erased, all.Held
	for part := 1; part <= n; part++ {
		ts := *all
		ts.Part, ts.Parts = part, n
		k := min(len(erased), format.MaxTombstoneNames)
		ts.Erased, erased = erased[:k], erased[k:]
		m := min(len(held), format.MaxTombstoneNames-k)
		ts.Held, held = held[:m], held[m:]
		if ts.Erased == nil {
			ts.Erased = []format.TombstoneEntry{}
		}
		if len(ts.Held) == 0 {
			ts.Held = nil
		}
		out = append(out, &ts)
	}
	return out
}

// appendPart appends part (from 1) of a plan's tombstone, with the leaf
// hashes of the entries it names as erased, under the precondition unless
// if not nil. It returns the part's index.
func (s *Service) appendPart(ctx context.Context, er *Erasure, part int, unless *ledger.Unless) (uint64, error) {
	parts := splitTombstone(er.tombstone())
	ts := parts[part-1]
	idxs := make([]uint64, len(ts.Erased))
	for j, te := range ts.Erased {
		idxs[j] = te.Index
	}
	leaves, err := s.L.LeafHashes(ctx, er.Tenant, idxs)
	if err != nil {
		return 0, err
	}
	named := make([]format.TombstoneEntry, len(ts.Erased))
	for j, leaf := range leaves {
		named[j] = format.TombstoneEntry{Index: idxs[j], LeafHash: hex.EncodeToString(leaf[:])}
	}
	ts.Erased = named
	sub := format.TombstoneErasure
	if er.Kind == "expiry" {
		sub = format.TombstoneExpiry
	}
	payload, err := json.Marshal(ts)
	if err != nil {
		return 0, err
	}
	rec := []ledger.Record{{Kind: format.KindTombstone, SubKind: sub, ID: er.partID(part), RetentionClass: RecordsClass, Payload: payload}}
	var rs []ledger.Receipt
	if unless != nil {
		rs, err = s.L.AppendUnless(ctx, er.Tenant, rec, *unless)
	} else {
		rs, err = s.L.Append(ctx, er.Tenant, rec)
	}
	if err != nil {
		return 0, fmt.Errorf("%s %s: tombstone %d of %d: %w", ts.Reason, er.ID, part, len(parts), err)
	}
	return rs[0].Index, nil
}

// scrubHolds removes, from the holds that name them, the index terms of
// the pseudonym keys the plan destroyed (Shred destroys the keys with the
// data keys): released holds, since a hold in force keeps its entries,
// and so its key, from being erased. Released holds an earlier build
// stored, which name their id in the clear, are matched by that id: once
// it has neither entries nor a key, they become erased holds
// (scrubLegacy). Idempotent.
func (s *Service) scrubHolds(ctx context.Context, er *Erasure) error {
	if err := s.scrubLegacy(ctx, er.Tenant); err != nil {
		return err
	}
	if len(er.Pseudonyms) == 0 {
		return nil
	}
	gone := map[string]bool{}
	for _, t := range er.Pseudonyms {
		gone[pseudonymTerm(t)] = true
	}
	hs, err := s.stored(ctx, er.Tenant, true)
	if err != nil {
		return err
	}
	for _, h := range hs {
		// Released holds only: a hold in force keeps its term, whose key
		// complete did not destroy.
		if h.Active() && h.Scope.Term != er.SelectorRef {
			continue
		}
		if h.Scope.Term != "" && gone[h.Scope.Term] {
			h.Scope.Term = ""
			if err := s.putHold(ctx, er.Tenant, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// ErasureStatus returns an erasure request's state and, once done, its
// signed receipt.
func (s *Service) ErasureStatus(ctx context.Context, tenant, id string) (*Erasure, error) {
	return s.getErasure(ctx, tenant, id, false)
}

// Resume finishes every erasure and sweep a crash interrupted. It never
// stops the server from serving: a plan it cannot finish is logged, kept
// "executing" (asking again, or the next start, tries again) and listed by
// Unfinished, which the server's health reports, as are the plans still
// to be resumed. It returns an error only if the plans cannot be read.
func (s *Service) Resume(ctx context.Context) error {
	var todo []*Erasure
	var unreadable []string
	for _, tenant := range s.L.Tenants() {
		_, values, err := s.L.ListState(ctx, tenant, stateErasure)
		if err != nil {
			return err
		}
		for _, v := range values {
			er := &Erasure{}
			if err := json.Unmarshal(v, er); err != nil {
				return fmt.Errorf("erasure plan of %s: %w", tenant, err)
			}
			if er.State != "executing" {
				// The list's summary of a finished request: written after
				// the plan, so a crash between them leaves it missing or
				// stale (list.go).
				if err := s.indexErasure(ctx, er); err != nil {
					return err
				}
				continue
			}
			err := s.loadLists(ctx, er)
			if errors.Is(err, errChunkMissing) {
				// Written meanwhile by the process that holds it (Resume
				// reads without the lease): read it again.
				var cur *Erasure
				cur, err = s.readPlan(ctx, tenant, er.ID, func(o *Erasure) error {
					if o.State != "executing" {
						return nil
					}
					return s.loadLists(ctx, o)
				})
				if errors.Is(err, ledger.ErrNotFound) {
					err = fmt.Errorf("erasure plan %s: its header is gone", er.ID)
				}
				if err == nil {
					if cur.State != "executing" {
						continue // finished meanwhile (its writer indexed it)
					}
					er = cur
				}
			}
			if err != nil {
				s.log().ErrorContext(ctx, "an interrupted erasure or sweep could not be read", "tenant", er.Tenant, "id", er.ID, "err", err)
				unreadable = append(unreadable, er.Tenant+"/"+er.ID)
				continue
			}
			todo = append(todo, er)
		}
		s.work.Lock()
		err = s.dropOrphanChunks(ctx, tenant)
		s.work.Unlock()
		if err != nil {
			return err
		}
	}
	pending := make([]string, len(todo))
	for i, er := range todo {
		pending[i] = er.Tenant + "/" + er.ID
	}
	// Listed and unlisted one by one: an erasure or sweep that fails on
	// this server while Resume runs lists its own plan meanwhile.
	for _, n := range append(slices.Clone(unreadable), pending...) {
		tenant, id, _ := strings.Cut(n, "/")
		s.markUnfinished(tenant, id)
	}
	stuck := unreadable
	for i, er := range todo {
		s.work.Lock()
		err := s.acquire(ctx, er.Tenant, er.ID)
		if errors.Is(err, ErrBusy) {
			// Another node is carrying it out: it is that node's.
			s.work.Unlock()
			s.log().InfoContext(ctx, "an unfinished erasure or sweep is being carried out by another node", "tenant", er.Tenant, "id", er.ID, "kind", er.what())
			s.finished(er)
			continue
		}
		if err == nil {
			s.log().WarnContext(ctx, "resuming an interrupted erasure or sweep", "tenant", er.Tenant, "id", er.ID, "kind", er.what())
			// Read again under the lease: the plan may have changed since.
			var cur *Erasure
			if cur, err = s.getErasure(ctx, er.Tenant, er.ID, false); err == nil && cur.State == "executing" {
				err = s.runPlan(ctx, cur)
			}
			s.release(ctx, er.Tenant, er.ID)
		}
		s.work.Unlock()
		if err != nil {
			s.log().ErrorContext(ctx, "an interrupted erasure or sweep could not be finished", "tenant", er.Tenant, "id", er.ID, "kind", er.what(), "err", err)
			stuck = append(stuck, pending[i])
		} else {
			s.finished(er)
		}
	}
	s.log().InfoContext(ctx, "resumed interrupted erasures and sweeps", "resumed", len(todo), "unfinished", len(stuck))
	return nil
}

// finished drops a plan done from Unfinished.
func (s *Service) finished(er *Erasure) { s.unlist(er.Tenant, er.ID) }

// unlist drops plan id of tenant from Unfinished.
func (s *Service) unlist(tenant, id string) {
	s.mu.Lock()
	s.unfinished = slices.DeleteFunc(s.unfinished, func(n string) bool { return n == tenant+"/"+id })
	s.mu.Unlock()
}

// markUnfinished lists plan id of tenant in Unfinished.
func (s *Service) markUnfinished(tenant, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.unfinished, tenant+"/"+id) {
		s.unfinished = append(s.unfinished, tenant+"/"+id)
	}
}

// Unfinished lists the plans ("tenant/id") that Resume has still to
// finish or could not finish.
func (s *Service) Unfinished() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.unfinished)
}

// claimed returns the entries other plans have committed to erase, each
// with the id of the plan that claims it: those of the stored plans being carried out (each writes its lists before its
// first tombstone and is "executing" until its keys are destroyed) whose
// first tombstone is in the log. A plan reads it after the log's size s
// and before it reads which entries still have their payloads: a plan
// that finishes between the two reads has destroyed its entries' keys,
// and one that commits after s makes this plan's commit fail
// (commitPlan). So no entry is named erased by two tombstones, whichever
// processes plan them.
// It reads the headers of the running plans only (runningPlans), not
// those of every plan the tenant ever stored.
func (s *Service) claimed(ctx context.Context, er *Erasure) (map[uint64]string, error) {
	ids, err := s.runningPlans(ctx, er.Tenant)
	if err != nil {
		return nil, err
	}
	out := map[uint64]string{}
	var stale []string
	for _, id := range ids {
		if id == er.ID {
			continue
		}
		// Read without its lease: its holder may finish it, or write it
		// again, meanwhile (readPlan reads it again).
		var erase []uint64
		o, err := s.readPlan(ctx, er.Tenant, id, func(o *Erasure) error {
			erase = nil
			if o.State != "executing" {
				return nil
			}
			if _, found, err := s.L.IdentityIndex(ctx, o.Tenant, format.KindTombstone, o.partID(1)); err != nil || !found {
				return err // not committed: if it commits after s, this plan plans again
			}
			erase = o.Erase
			if o.Lists != nil {
				var err error
				erase, err = readList[uint64](ctx, s, o, listErase, 0, o.Lists.Erase)
				return err
			}
			return nil
		})
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("erasure plan of %s: %w", er.Tenant, err)
		}
		if o.State != "executing" {
			// Indexed by runningPlans's first pass while it finished, or
			// finished while read: a finished plan never runs again, and
			// its write deleted its index record (this is a no-op then).
			stale = append(stale, stateRunning+id)
			continue
		}
		for _, i := range erase {
			out[i] = id
		}
	}
	if len(stale) > 0 {
		if err := s.L.DeleteStates(ctx, er.Tenant, stale); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// claimedSet returns the entries of claimed as a set.
func claimedSet(claimed map[uint64]string) map[uint64]bool {
	out := make(map[uint64]bool, len(claimed))
	for i := range claimed {
		out[i] = true
	}
	return out
}

// Index of running plans: the state record "erasure-running/<id>" (empty)
// exists while plan id is "executing". It is written and deleted in the
// same atomic write as the plan's header (putErasure), so claimed reads
// the headers of the running plans only. A tenant's index is built from
// every header by the first reader of a build that keeps it, once
// ("erasure-running-indexed" records that it was): plans stored by an
// earlier build are in it from then on.
const (
	stateRunning        = "erasure-running/"
	stateRunningIndexed = "erasure-running-indexed"
)

// runningPlans returns the ids of a tenant's running plans, in id order,
// from the index (building it first if the tenant has none). It may list
// a plan that finished while the index was built; its header says so.
func (s *Service) runningPlans(ctx context.Context, tenant string) ([]string, error) {
	if _, err := s.L.GetState(ctx, tenant, stateRunningIndexed); errors.Is(err, ledger.ErrNotFound) {
		_, values, err := s.L.ListState(ctx, tenant, stateErasure)
		if err != nil {
			return nil, err
		}
		var names []string
		var empty [][]byte
		for _, v := range values {
			o := &Erasure{}
			if err := json.Unmarshal(v, o); err != nil {
				return nil, fmt.Errorf("erasure plan of %s: %w", tenant, err)
			}
			if o.State == "executing" {
				names, empty = append(names, stateRunning+o.ID), append(empty, []byte{})
			}
		}
		// The mark last: a crash before it leaves the index to build again.
		names, empty = append(names, stateRunningIndexed), append(empty, []byte{})
		if err := s.L.PutStates(ctx, tenant, names, empty); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	names, err := s.L.StateNames(ctx, tenant, stateRunning)
	for i, n := range names {
		names[i] = strings.TrimPrefix(n, stateRunning)
	}
	return names, err
}

// lastOf returns, of the subjects and sessions (index terms) of the
// entries a plan erases, those whose pseudonym key exists and that are
// left with no live entry and no hold in force naming them once the plan
// is carried out: their pseudonym keys are destroyed with the plan's data
// keys (docs/RETENTION.md, "Pseudonym keys"). A subject or session seen
// again later gets a new key, so a new pseudonym. ids may repeat. Which
// have a key is read with one pass over the key database in key order
// (HavePseudonymKeys); only those are looked up in the index. Entries
// that other plans have committed to erase (claimed) are not live either:
// of two erasures sharing a session, the second to plan destroys its key.
// Each is listed with its key's stamp (pseudonymEntry).
func (s *Service) lastOf(ctx context.Context, er *Erasure, ids []ledger.TermRef, claimed map[uint64]string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	have, err := s.L.HavePseudonymKeys(ctx, er.Tenant, ids)
	if err != nil || len(have) == 0 {
		return nil, err
	}
	named, err := s.namedByHolds(ctx, er.Tenant)
	if err != nil {
		return nil, err
	}
	gone := claimedSet(claimed)
	for _, i := range er.Erase {
		gone[i] = true
	}
	var out []string
	for _, k := range have {
		if named[k.Ref.String()] {
			continue
		}
		idxs, err := s.L.EntriesWith(ctx, er.Tenant, k.Ref)
		if err != nil {
			return nil, err
		}
		live, err := s.liveOutside(ctx, er.Tenant, idxs, gone)
		if err != nil {
			return nil, err
		}
		if !live {
			out = append(out, pseudonymEntry(k))
		}
	}
	return out, nil
}

// A plan lists each pseudonym key it destroys as its ref's text form, "/"
// and the key's stamp (ledger.PseudonymKey.Stamp): only that key is
// destroyed, never one made for the same id after the plan read it. Plans
// of an earlier build list the ref alone.
func pseudonymEntry(k ledger.PseudonymRef) string { return k.Ref.String() + "/" + k.Stamp }

// pseudonymTerm is the ref's text form of a pseudonymEntry.
func pseudonymTerm(entry string) string {
	t, _, _ := strings.Cut(entry, "/")
	return t
}

// doomedPseudonyms returns the pseudonym keys complete destroys of those
// the plan lists, read right before Shred: not those of subjects and
// sessions that a hold placed since the plan was made names (a hold in
// force on the erased selector keeps entries, so the plan lists none),
// nor, but for an erasure's selector listed with its stamp, those that
// have a live entry outside the plan and the entries other plans
// committed to erase (data appended since the plan was made, or since a
// crash interrupted it). A
// new entry appended between this check and the key's destruction is the
// window docs/RETENTION.md ("Several processes over one database") names.
func (s *Service) doomedPseudonyms(ctx context.Context, er *Erasure, erase map[uint64]bool) ([]ledger.PseudonymRef, error) {
	if len(er.Pseudonyms) == 0 {
		return nil, nil
	}
	heldTerms, err := s.namedByHolds(ctx, er.Tenant)
	if err != nil {
		return nil, err
	}
	var gone map[uint64]bool
	out := make([]ledger.PseudonymRef, 0, len(er.Pseudonyms))
	for _, entry := range er.Pseudonyms {
		t, stamp, _ := strings.Cut(entry, "/")
		// The selector's key is destroyed whatever the id's live entries:
		// its stamp keeps a key made since (the id seen again) alive. A
		// plan of an earlier build has no stamps: its selector's key is
		// checked like the others, kept if the id has a live entry.
		selector := t == er.SelectorRef && er.Kind == "" && stamp != ""
		if heldTerms[t] && !selector {
			continue
		}
		r, err := ledger.ParseTermRef(t)
		if err != nil {
			return nil, err
		}
		if !selector {
			if gone == nil {
				claimed, err := s.claimed(ctx, er)
				if err != nil {
					return nil, err
				}
				gone = claimedSet(claimed)
				maps.Copy(gone, erase)
			}
			idxs, err := s.L.EntriesWith(ctx, er.Tenant, r)
			if err != nil {
				return nil, err
			}
			if live, err := s.liveOutside(ctx, er.Tenant, idxs, gone); err != nil {
				return nil, err
			} else if live {
				continue
			}
		}
		out = append(out, ledger.PseudonymRef{Ref: r, Stamp: stamp})
	}
	return out, nil
}

// namedByHolds returns the index terms that holds in force name. Not
// those of pending records (Hold.Pending): a claim that a crash left
// pending must not keep the key of a subject whose data is gone; a plan
// that reads the holds before the claimed hold is in force is bound by it
// once its entry is appended, as by any hold placed meanwhile.
func (s *Service) namedByHolds(ctx context.Context, tenant string) (map[string]bool, error) {
	hs, err := s.stored(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, h := range hs {
		if h.Scope.Term != "" {
			out[h.Scope.Term] = true
		}
	}
	return out, nil
}
