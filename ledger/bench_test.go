package ledger

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/veritrace/veritrace/ledger/format"
)

// Benchmarks of the durable append path. Run them together so that the
// baselines are measured in the same run:
//
//	go test -run '^$' -bench 'Append|Badger' -benchtime 100000x ./ledger/
var benchEntries = flag.Int("bench.entries", 100_000, "ledger size for the proof and open benchmarks")

const (
	benchWriters   = 64
	benchValueSize = 2048
)

func benchPayload() []byte {
	p := make([]byte, benchValueSize)
	rand.Read(p)
	return p
}

// runWriters runs b.N operations spread over benchWriters goroutines and
// reports entries/s and the process's CPU time (user and system, every
// goroutine including Badger's) per entry, which varies less than
// throughput on a shared machine.
func runWriters(b *testing.B, op func(n uint64) error) { runBatches(b, 1, op) }

// runBatches is runWriters for operations that append batch entries each:
// op(n) appends entries (n-1)·batch+1 to n·batch, and b.N entries in all
// (rounded up to whole batches) are reported.
func runBatches(b *testing.B, batch int, op func(n uint64) error) {
	ops := uint64((b.N + batch - 1) / batch)
	var next atomic.Uint64
	var wg sync.WaitGroup
	errs := make(chan error, benchWriters)
	b.SetBytes(benchValueSize)
	b.ResetTimer()
	cpu0 := processCPU()
	start := time.Now()
	for w := 0; w < benchWriters; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > ops {
					return
				}
				if err := op(n); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	entries := float64(ops) * float64(batch)
	b.ReportMetric(entries/time.Since(start).Seconds(), "entries/s")
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/1e3/entries, "cpu-µs/entry")
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

// BenchmarkAppend: 64 concurrent appenders of one 2 KiB span each, with
// envelope encryption, Badger encryption at rest and fsync; with only the
// subject index term the ledger always writes, with the four a typical
// span carries, and with no subject at all (traces of 8 spans, as
// `veritrace bench` sends them: an app that names no end user).
// "subject-only-unless" appends as "subject-only" with the precondition
// the server's span appends carry (no retention entry since the policy
// was read: retention.Service.AppendSpans), checked in every request.
func BenchmarkAppend(b *testing.B) {
	for _, name := range []string{"subject-only", "subject-only-unless", "four-terms", "no-subject"} {
		withTerms := name == "four-terms"
		b.Run(name, func(b *testing.B) {
			l := openTest(b, b.TempDir())
			defer l.Close()
			var groups atomic.Int64
			l.hooks.beforeGroup = func() { groups.Add(1) }
			payload := benchPayload()
			ctx := context.Background()
			defer reportGroups(b, &groups)
			runWriters(b, func(n uint64) error {
				r := Record{Kind: format.KindSpan, SubKind: 1, Subject: fmt.Sprint("user-", n%1000), Payload: payload}
				binary.BigEndian.PutUint64(r.TraceID[:], n)
				if name == "no-subject" {
					r.Subject = ""
					binary.BigEndian.PutUint64(r.TraceID[:], n/8+1)
				}
				binary.BigEndian.PutUint64(r.SpanID[:], n)
				if withTerms {
					r.Terms = benchTerms(r.Subject)
				}
				if name == "subject-only-unless" {
					_, err := l.AppendUnless(ctx, "default", []Record{r}, benchUnless)
					return err
				}
				_, err := l.Append(ctx, "default", []Record{r})
				return err
			})
		})
	}
}

// BenchmarkAppendTraces: 64 concurrent appenders of batches of 20 2 KiB
// spans, each batch one trace of one subject and session with the four
// terms of BenchmarkAppend/four-terms (what an app's exporter sends: the
// spans of a trace together). Compare with BenchmarkBadgerBaseline/grouped
// per entry.
func BenchmarkAppendTraces(b *testing.B) {
	for _, name := range []string{"plain", "unless"} {
		b.Run(name, func(b *testing.B) { benchAppendTraces(b, name == "unless") })
	}
}

// benchAppendTraces is BenchmarkAppendTraces, each batch appended with the
// precondition of the server's span appends (retention.Service.AppendSpans)
// if unless.
func benchAppendTraces(b *testing.B, unless bool) {
	const batch = 20
	l := openTest(b, b.TempDir())
	defer l.Close()
	var groups atomic.Int64
	l.hooks.beforeGroup = func() { groups.Add(1) }
	payload := benchPayload()
	ctx := context.Background()
	runBatches(b, batch, func(n uint64) error {
		subject := fmt.Sprint("user-", n%1000)
		recs := make([]Record, batch)
		for i := range recs {
			r := &recs[i]
			*r = Record{Kind: format.KindSpan, SubKind: 1, Subject: subject, Payload: payload, Terms: benchTerms(subject)}
			binary.BigEndian.PutUint64(r.TraceID[:], n)
			binary.BigEndian.PutUint64(r.SpanID[:], uint64(i+1))
		}
		if unless {
			_, err := l.AppendUnless(ctx, "default", recs, benchUnless)
			return err
		}
		_, err := l.Append(ctx, "default", recs)
		return err
	})
	reportGroups(b, &groups)
}

// benchUnless is the precondition of the server's span appends
// (retention.Service.AppendSpans): the next policy revision's retention
// entry is not in the log.
var benchUnless = Unless{Absent: []Identity{{Kind: format.KindRetention, ID: [32]byte{1}}}}

// benchTerms are the index terms a typical span carries besides its
// subject, which the ledger indexes itself (session, model, prompt
// version: audit.SpanTerms).
func benchTerms(subject string) []Term {
	return []Term{{2, []byte("session-" + subject)}, {5, []byte("gpt-4o")}, {4, make([]byte, 32)}}
}

// reportGroups reports the mean number of entries per group commit (one
// fsync each): fewer entries per group cost more fsyncs per entry.
func reportGroups(b *testing.B, groups *atomic.Int64) {
	if n := groups.Load(); n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "entries/group")
	}
}

func openBaselineDB(b *testing.B) *badger.DB {
	master := make([]byte, 32)
	rand.Read(master)
	db, err := badger.Open(badgerOptions(filepath.Join(b.TempDir(), "raw"), master, slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	return db
}

// BenchmarkBadgerBaseline writes the same 2 KiB values with the same Badger
// options (encryption, value threshold, fsync) and no ledger work.
//   - txn-per-entry: each of the 64 writers commits its own transaction.
//   - grouped: the 64 writers hand values to one committer that puts all
//     waiting values in one transaction, as the ledger's writer does.
func BenchmarkBadgerBaseline(b *testing.B) {
	payload := benchPayload()
	b.Run("txn-per-entry", func(b *testing.B) {
		db := openBaselineDB(b)
		defer db.Close()
		runWriters(b, func(n uint64) error {
			return db.Update(func(txn *badger.Txn) error {
				return txn.Set(binary.BigEndian.AppendUint64([]byte{1}, n), payload)
			})
		})
	})
	b.Run("grouped", func(b *testing.B) {
		groupedBaseline(b, func(txn *badger.Txn, n uint64) error {
			return txn.Set(binary.BigEndian.AppendUint64([]byte{1}, n), payload)
		}, nil)
	})
	// ledger-keys: the grouped baseline writing the keys the ledger writes
	// for BenchmarkAppend/four-terms, with their sizes and no ledger work:
	// per entry its entry record (header and one tree hash), envelope,
	// identity, and the subject's and session's posting blocks (distinct
	// per entry in that benchmark); per group the model's and prompt
	// version's blocks and the tree size. What Badger alone costs for
	// the ledger's layout: the ceiling of Append/four-terms.
	b.Run("ledger-keys", func(b *testing.B) {
		record := make([]byte, format.HeaderSize(len("default"), len("default"))+2*32)
		rand.Read(record)
		envelope := make([]byte, benchValueSize+90)
		rand.Read(envelope)
		term := func(field byte, n uint64) []byte {
			k := make([]byte, 0, termKeySize)
			k = append(k, nsTerm, 0, 0, 0, 1, field)
			mac := make([]byte, termMACSize)
			binary.BigEndian.PutUint64(mac, n%1000)
			k = append(k, mac...)
			return binary.BigEndian.AppendUint64(k, n)
		}
		groupedBaseline(b, func(txn *badger.Txn, n uint64) error {
			var id [32]byte
			binary.BigEndian.PutUint64(id[:], n)
			binary.BigEndian.PutUint64(id[16:], n)
			for _, kv := range [][2][]byte{
				{entryKey(1, n), record},
				{payloadKey(1, n), envelope},
				{identityKey(1, format.KindSpan, id), identityValue(n, 1)},
				{term(SubjectField, n), nil},
				{term(2, n), nil},
			} {
				if err := txn.Set(kv[0], kv[1]); err != nil {
					return err
				}
			}
			return nil
		}, func(txn *badger.Txn, last uint64) error {
			for _, k := range [][]byte{term(4, last), term(5, last)} {
				if err := txn.Set(k, make([]byte, 40)); err != nil {
					return err
				}
			}
			return txn.Set(treeSizeKey(1), binary.BigEndian.AppendUint64(nil, last))
		})
	})
}

// groupedBaseline runs 64 writers that hand entries to one committer,
// which puts all waiting entries in one transaction (entry(n) for each,
// then group(largest n), if not nil), as the ledger's writer does.
func groupedBaseline(b *testing.B, entry func(txn *badger.Txn, n uint64) error, group func(txn *badger.Txn, last uint64) error) {
	db := openBaselineDB(b)
	defer db.Close()
	type req struct {
		n    uint64
		done chan error
	}
	reqs := make(chan req, 1024)
	var groups atomic.Int64
	defer reportGroups(b, &groups)
	go func() {
		for r := range reqs {
			groups.Add(1)
			batch := []req{r}
		gather:
			for len(batch) < 4096 {
				select {
				case r, ok := <-reqs:
					if !ok {
						break gather
					}
					batch = append(batch, r)
				default:
					break gather
				}
			}
			txn := db.NewTransaction(true)
			var err error
			var last uint64
			for _, r := range batch {
				if err = entry(txn, r.n); err != nil {
					break
				}
				last = max(last, r.n)
			}
			if err == nil && group != nil {
				err = group(txn, last)
			}
			if err == nil {
				err = txn.Commit()
			}
			txn.Discard()
			for _, r := range batch {
				r.done <- err
			}
		}
	}()
	runWriters(b, func(n uint64) error {
		done := make(chan error, 1)
		reqs <- req{n, done}
		return <-done
	})
	close(reqs)
}

// fillLedger appends n 2 KiB spans in batches of 1000.
func fillLedger(b *testing.B, l *Ledger, n int) {
	payload := benchPayload()
	ctx := context.Background()
	for i := 0; i < n; i += MaxBatch {
		recs := make([]Record, min(MaxBatch, n-i))
		for j := range recs {
			r := &recs[j]
			*r = Record{Kind: format.KindSpan, SubKind: 1, Subject: fmt.Sprint("user-", (i+j)%1000), Payload: payload}
			binary.BigEndian.PutUint64(r.TraceID[:], uint64(i+j+1))
			binary.BigEndian.PutUint64(r.SpanID[:], uint64(i+j+1))
		}
		if _, err := l.Append(ctx, "default", recs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProofs measures inclusion and consistency proofs on a ledger of
// -bench.entries entries and reports the p99 latency.
func BenchmarkProofs(b *testing.B) {
	l := openTest(b, b.TempDir())
	defer l.Close()
	n := *benchEntries
	fillLedger(b, l, n)
	ctx := context.Background()
	b.Run(fmt.Sprintf("inclusion/entries=%d", n), func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for i := 0; i < b.N; i++ {
			idx := uint64(i*7919) % uint64(n)
			t0 := time.Now()
			if _, _, _, err := l.InclusionProof(ctx, "default", idx, uint64(n)); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		reportP99(b, lat)
	})
	b.Run(fmt.Sprintf("consistency/entries=%d", n), func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		for i := 0; i < b.N; i++ {
			old := 1 + uint64(i*7919)%uint64(n-1)
			t0 := time.Now()
			if _, _, err := l.ConsistencyProof(ctx, "default", old, uint64(n)); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		reportP99(b, lat)
	})
}

// BenchmarkOpen measures opening a ledger of -bench.entries entries.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	l := openTest(b, dir)
	fillLedger(b, l, *benchEntries)
	l.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l := openTest(b, dir)
		b.StopTimer()
		l.Close()
		b.StartTimer()
	}
}

func reportP99(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sortDurations(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func sortDurations(d []time.Duration) { slices.Sort(d) }
