package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

// An erasure or sweep plan is stored as a bounded header, the state record
// "erasure/<id>", and its lists (entries erased and held, keys, pseudonym
// keys, buckets) in chunks of at most planChunk items, each a state record
// named
//
//	"erasure-part/" + id + "/" + %08d generation + "/" + list + "/" + %08d chunk
//
// The header names the generation and each list's length (Lists). Every
// write of a plan writes a new generation's chunks first, then the header,
// then deletes the chunks of every other generation: a crash at any point
// leaves the header naming a generation whose chunks are all stored (or no
// header, when the plan was never stored: nothing was done). Chunks no
// header names are deleted by the next write of the plan, or by Resume.
const statePlanPart = "erasure-part/"

// planChunk bounds the items of one chunk of a plan's list: a chunk of
// held entries with the longest case references is a few MiB.
var planChunk = format.MaxTombstoneNames

// planStepBytes bounds the chunks putErasure writes in one transaction.
const planStepBytes = 4 << 20

// PlanLists says where a stored plan's lists are: the generation of their
// chunks, the chunk size they were written with, and each list's length.
type PlanLists struct {
	Gen        uint64 `json:"gen"`
	Chunk      int    `json:"chunk"`
	Erase      int    `json:"erase,omitempty"`
	Held       int    `json:"held,omitempty"`
	Keys       int    `json:"keys,omitempty"`
	KeyRefs    int    `json:"key_refs,omitempty"`
	Pseudonyms int    `json:"pseudonyms,omitempty"`
	Buckets    int    `json:"buckets,omitempty"`
	Expired    int    `json:"expired,omitempty"`
}

// Names of a plan's lists in its chunks' names.
const (
	listErase      = "erase"
	listHeld       = "held"
	listKeys       = "keys"
	listKeyRefs    = "key_refs"
	listPseudonyms = "pseudonyms"
	listBuckets    = "buckets"
	listExpired    = "expired"
)

func planPrefix(id string) string { return statePlanPart + id + "/" }

func genPrefix(id string, gen uint64) string { return fmt.Sprintf("%s%08d/", planPrefix(id), gen) }

func chunkName(id string, gen uint64, list string, chunk int) string {
	return fmt.Sprintf("%s%s/%08d", genPrefix(id, gen), list, chunk)
}

// chunks appends to names and values the chunks of one list.
func chunks[T any](names *[]string, values *[][]byte, id string, gen uint64, list string, items []T) error {
	for c := 0; c*planChunk < len(items); c++ {
		b, err := json.Marshal(items[c*planChunk : min(len(items), (c+1)*planChunk)])
		if err != nil {
			return err
		}
		*names, *values = append(*names, chunkName(id, gen, list, c)), append(*values, b)
	}
	return nil
}

// putErasure stores a plan: its lists' chunks under a new generation, then
// the header naming them, then the list's summary; then it deletes the
// chunks of other generations.
func (s *Service) putErasure(ctx context.Context, er *Erasure) error {
	lists := &PlanLists{Gen: 1, Chunk: planChunk, Erase: len(er.Erase), Held: len(er.Held), Keys: len(er.Keys), KeyRefs: len(er.KeyRefs),
		Pseudonyms: len(er.Pseudonyms), Buckets: len(er.Buckets), Expired: len(er.Expired)}
	if er.Lists != nil {
		lists.Gen = er.Lists.Gen + 1
	}
	var names []string
	var values [][]byte
	for _, err := range []error{
		chunks(&names, &values, er.ID, lists.Gen, listErase, er.Erase),
		chunks(&names, &values, er.ID, lists.Gen, listHeld, er.Held),
		chunks(&names, &values, er.ID, lists.Gen, listKeys, er.Keys),
		chunks(&names, &values, er.ID, lists.Gen, listKeyRefs, er.KeyRefs),
		chunks(&names, &values, er.ID, lists.Gen, listPseudonyms, er.Pseudonyms),
		chunks(&names, &values, er.ID, lists.Gen, listBuckets, er.Buckets),
		chunks(&names, &values, er.ID, lists.Gen, listExpired, er.Expired),
	} {
		if err != nil {
			return err
		}
	}
	// Every chunk, like the header, is written only by the lease's holder
	// (taken or renewed here), checked in the same atomic write: a
	// process that lost the lease never writes over the chunks of the one
	// that took it, though both may write the same generation.
	if err := s.acquire(ctx, er.Tenant, er.ID); err != nil {
		return err
	}
	fence := s.holding(er.Tenant, er.ID)
	for len(names) > 0 {
		// In steps of at most 4 chunks and planStepBytes (a larger chunk
		// alone), each one transaction; tests interrupt the plan between.
		n, size := 0, 0
		for n < min(len(names), 4) && (n == 0 || size+len(values[n]) <= planStepBytes) {
			size += len(values[n])
			n++
		}
		if err := s.L.PutStatesIf(ctx, er.Tenant, names[:n], values[:n], stateLease+er.ID, fence); err != nil {
			return err
		}
		names, values = names[n:], values[n:]
		if testHookPlanChunks != nil {
			if err := testHookPlanChunks(er); err != nil {
				return err
			}
		}
	}
	hdr := *er
	hdr.Lists = lists
	hdr.Erase, hdr.Held, hdr.Keys, hdr.KeyRefs, hdr.Pseudonyms, hdr.Buckets, hdr.Expired = nil, nil, nil, nil, nil, nil, nil
	b, err := json.Marshal(&hdr)
	if err != nil {
		return err
	}
	// The header names the chunks: written only by the lease's holder
	// (renewed here), checked in the same atomic write.
	if err := s.acquire(ctx, er.Tenant, er.ID); err != nil {
		return err
	}
	// The index of running plans changes in the same atomic write.
	var running []byte
	if er.State == "executing" {
		running = []byte{}
	}
	if err := s.L.PutStatesIf(ctx, er.Tenant, []string{stateErasure + er.ID, stateRunning + er.ID}, [][]byte{b, running},
		stateLease+er.ID, s.holding(er.Tenant, er.ID)); err != nil {
		return err
	}
	er.Lists = lists
	if err := s.indexErasure(ctx, er); err != nil { // after the plan; Resume repairs a crash between
		return err
	}
	return s.dropChunks(ctx, er.Tenant, er.ID, lists.Gen)
}

// dropChunks deletes the chunks of a plan's lists but those of generation
// keep (0: all of them).
func (s *Service) dropChunks(ctx context.Context, tenant, id string, keep uint64) error {
	names, err := s.L.StateNames(ctx, tenant, planPrefix(id))
	if err != nil {
		return err
	}
	cur := genPrefix(id, keep)
	stale := names[:0]
	for _, n := range names {
		if keep == 0 || !strings.HasPrefix(n, cur) {
			stale = append(stale, n)
		}
	}
	return s.L.DeleteStates(ctx, tenant, stale)
}

// getErasure reads a plan's header, and its lists unless headerOnly. A
// plan stored by an earlier build has its lists in the header.
func (s *Service) getErasure(ctx context.Context, tenant, id string, headerOnly bool) (*Erasure, error) {
	b, err := s.L.GetState(ctx, tenant, stateErasure+id)
	if err != nil {
		return nil, err
	}
	er := &Erasure{}
	if err := json.Unmarshal(b, er); err != nil {
		return nil, fmt.Errorf("erasure plan %s: %w", id, err)
	}
	if headerOnly {
		return er, nil
	}
	return er, s.loadLists(ctx, er)
}

// loadLists reads a plan's lists from their chunks.
func (s *Service) loadLists(ctx context.Context, er *Erasure) error {
	p := er.Lists
	if p == nil {
		return nil
	}
	var err error
	if er.Erase, err = readList[uint64](ctx, s, er, listErase, 0, p.Erase); err != nil {
		return err
	}
	if er.Held, err = readList[format.HeldEntry](ctx, s, er, listHeld, 0, p.Held); err != nil {
		return err
	}
	if er.Keys, err = readList[string](ctx, s, er, listKeys, 0, p.Keys); err != nil {
		return err
	}
	if er.KeyRefs, err = readList[*ledger.KeyRef](ctx, s, er, listKeyRefs, 0, p.KeyRefs); err != nil {
		return err
	}
	if er.Pseudonyms, err = readList[string](ctx, s, er, listPseudonyms, 0, p.Pseudonyms); err != nil {
		return err
	}
	if er.Buckets, err = readList[string](ctx, s, er, listBuckets, 0, p.Buckets); err != nil {
		return err
	}
	er.Expired, err = readList[string](ctx, s, er, listExpired, 0, p.Expired)
	return err
}

// errChunkMissing: a chunk the header read names is not stored. Read
// without the plan's lease, a plan another process has written since
// (its next generation deletes the chunks of the one read) is read again
// (readPlan).
var errChunkMissing = errors.New("chunk is missing")

// planReadTries bounds how often readPlan reads a plan that changes under
// it.
const planReadTries = 4

// readPlan reads plan id's header, then with read what it needs of the
// plan's lists. Read without the plan's lease, a plan its holder writes
// meanwhile replaces the generation being read: then the header is read
// again and read called again, at most planReadTries times in all; a
// chunk missing from the generation the header still names is an error.
// It returns ledger.ErrNotFound (wrapped) if the plan has no header;
// read sees the plan in whatever state it is, finished too.
func (s *Service) readPlan(ctx context.Context, tenant, id string, read func(*Erasure) error) (*Erasure, error) {
	var gen uint64
	for try := 1; ; try++ {
		o, err := s.getErasure(ctx, tenant, id, true)
		if err != nil {
			return nil, err
		}
		if try > 1 && (o.Lists == nil || o.Lists.Gen == gen) {
			return nil, fmt.Errorf("erasure plan %s: generation %d: %w", id, gen, errChunkMissing)
		}
		if err = read(o); !errors.Is(err, errChunkMissing) || try == planReadTries {
			return o, err
		}
		gen = o.Lists.Gen
	}
}

// readList reads the items [from, to) of one of a stored plan's lists,
// reading only the chunks that hold them.
func readList[T any](ctx context.Context, s *Service, er *Erasure, list string, from, to int) ([]T, error) {
	if from >= to {
		return nil, nil
	}
	size := er.Lists.Chunk
	if size <= 0 {
		return nil, fmt.Errorf("erasure plan %s: chunk size %d", er.ID, size)
	}
	out := make([]T, 0, to-from)
	for c := from / size; c*size < to; c++ {
		b, err := s.L.GetState(ctx, er.Tenant, chunkName(er.ID, er.Lists.Gen, list, c))
		if errors.Is(err, ledger.ErrNotFound) {
			return nil, fmt.Errorf("erasure plan %s: chunk %d of its %s list: %w", er.ID, c, list, errChunkMissing)
		}
		if err != nil {
			return nil, err
		}
		var items []T
		if err := json.Unmarshal(b, &items); err != nil {
			return nil, fmt.Errorf("erasure plan %s: chunk %d of its %s list: %w", er.ID, c, list, err)
		}
		lo, hi := max(from-c*size, 0), min(to-c*size, len(items))
		if lo > hi {
			return nil, fmt.Errorf("erasure plan %s: chunk %d of its %s list holds %d items", er.ID, c, list, len(items))
		}
		out = append(out, items[lo:hi]...)
	}
	if len(out) != to-from {
		return nil, fmt.Errorf("erasure plan %s: its %s list holds fewer items than its header says", er.ID, list)
	}
	return out, nil
}

// erasedCount and heldCount are the lengths of a plan's lists, loaded or
// not.
func (er *Erasure) erasedCount() int {
	if er.Lists != nil {
		return er.Lists.Erase
	}
	return len(er.Erase)
}

func (er *Erasure) heldCount() int {
	if er.Lists != nil {
		return er.Lists.Held
	}
	return len(er.Held)
}

// ErasurePage returns an erasure request's (or sweep's) state and receipt
// with the page [from, from+size) of its lists of erased and held entries
// (in Erase and Held; the other lists are not read), and their lengths.
// It reads the header and the chunks of the page.
func (s *Service) ErasurePage(ctx context.Context, tenant, id string, from uint64, size int) (er *Erasure, erased, held int, err error) {
	if er, err = s.getErasure(ctx, tenant, id, true); err != nil {
		return nil, 0, 0, err
	}
	erased, held = er.erasedCount(), er.heldCount()
	page := func(n int) (int, int) {
		lo := int(min(from, uint64(n)))
		return lo, min(n, lo+size)
	}
	if er.Lists == nil {
		lo, hi := page(erased)
		er.Erase = er.Erase[lo:hi]
		lo, hi = page(held)
		er.Held = er.Held[lo:hi]
		return er, erased, held, nil
	}
	lo, hi := page(erased)
	if er.Erase, err = readList[uint64](ctx, s, er, listErase, lo, hi); err != nil {
		return nil, 0, 0, err
	}
	lo, hi = page(held)
	if er.Held, err = readList[format.HeldEntry](ctx, s, er, listHeld, lo, hi); err != nil {
		return nil, 0, 0, err
	}
	return er, erased, held, nil
}

// dropOrphanChunks deletes the chunks of a tenant's plans that no header
// names: a crash while a plan was first stored (no header), or between a
// header and the deletion of its previous generation. A plan whose chunks
// are all of its header's generation (every plan finished, or stored
// whole) is read and nothing written: the lease is taken only for a plan
// with other chunks, since another process may be storing its next
// generation before its header.
func (s *Service) dropOrphanChunks(ctx context.Context, tenant string) error {
	names, err := s.L.StateNames(ctx, tenant, statePlanPart)
	if err != nil {
		return err
	}
	byPlan := map[string][]string{}
	var ids []string
	for _, n := range names {
		id, _, _ := strings.Cut(strings.TrimPrefix(n, statePlanPart), "/")
		if byPlan[id] == nil {
			ids = append(ids, id)
		}
		byPlan[id] = append(byPlan[id], n)
	}
	// stale returns the chunks of plan id its header (read now) does not
	// name.
	stale := func(id string) ([]string, error) {
		var gen uint64 // 0: no header, or one of an earlier build
		er, err := s.getErasure(ctx, tenant, id, true)
		switch {
		case errors.Is(err, ledger.ErrNotFound):
		case err != nil:
			return nil, err
		case er.Lists != nil:
			gen = er.Lists.Gen
		}
		var out []string
		for _, n := range byPlan[id] {
			if gen == 0 || !strings.HasPrefix(n, genPrefix(id, gen)) {
				out = append(out, n)
			}
		}
		return out, nil
	}
	for _, id := range ids {
		if found, err := stale(id); err != nil || len(found) == 0 {
			if err != nil {
				return err
			}
			continue
		}
		if err := s.acquire(ctx, tenant, id); errors.Is(err, ErrBusy) {
			continue // another process is storing or carrying it out
		} else if err != nil {
			return err
		}
		found, err := stale(id) // again, under the lease
		if err == nil {
			err = s.L.DeleteStates(ctx, tenant, found)
		}
		s.release(ctx, tenant, id)
		if err != nil {
			return err
		}
	}
	return nil
}
