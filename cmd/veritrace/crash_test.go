package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/gen/veritrace/v1/veritracev1connect"
	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/ledger/format"
)

var crashCycles = flag.Int("crash.cycles", 3, "kill -9 cycles in TestCrashRecovery, TestCrashDuringErasure and TestCrashDuringSweep")

// TestMain lets the test binary run as the server for the crash test.
// VERITRACE_TEST_CLOCK_OFFSET (a duration) moves the child server's clock.
func TestMain(m *testing.M) {
	if args := os.Getenv("VERITRACE_TEST_CHILD"); args != "" {
		if off := os.Getenv("VERITRACE_TEST_CLOCK_OFFSET"); off != "" {
			d, err := time.ParseDuration(off)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			clock = func() time.Time { return time.Now().Add(d) }
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		if err := run(ctx, strings.Split(args, " "), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var servingRE = regexp.MustCompile(`msg=serving addr=(\S+)`)

type child struct {
	cmd  *exec.Cmd
	addr string
	log  *syncLog // everything the child logged
	// drained is closed once the child's stderr has been read to its end.
	drained chan struct{}
}

// wait waits for the child to exit, after its last log line has been read:
// Wait closes the stderr pipe, so calling it first could lose the lines the
// child wrote last (os/exec: Wait must follow every read from a pipe).
func (c *child) wait() error {
	<-c.drained
	return c.cmd.Wait()
}

// syncLog collects a child's log lines.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) add(line string) {
	l.mu.Lock()
	l.b.WriteString(line + "\n")
	l.mu.Unlock()
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startChild runs `veritrace serve` in a child process and waits until it
// listens.
func startChild(t *testing.T, dir string, flags ...string) *child {
	t.Helper()
	return startChildAt(t, dir, 0, flags...)
}

// waitResumed waits until the child has resumed the erasures and sweeps
// a kill interrupted (it does so while it serves).
func (c *child) waitResumed(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(c.log.String(), "resumed interrupted erasures and sweeps") {
		if time.Now().After(deadline) {
			t.Fatalf("the child did not resume its interrupted erasures and sweeps:\n%s", c.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startChildAt starts the child server with its clock moved by offset.
func startChildAt(t *testing.T, dir string, offset time.Duration, flags ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VERITRACE_TEST_CHILD="+strings.Join(append([]string{"serve --data", dir, "--listen 127.0.0.1:0 --checkpoint-interval 20ms --sweep-interval 0"}, flags...), " "),
		"VERITRACE_TEST_CLOCK_OFFSET="+offset.String())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	log := &syncLog{}
	for sc.Scan() {
		log.add(sc.Text())
		if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
			drained := make(chan struct{})
			go func() {
				defer close(drained)
				for sc.Scan() {
					log.add(sc.Text())
				}
			}()
			return &child{cmd: cmd, addr: m[1], log: log, drained: drained}
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("server child exited before serving: %v\n%s", sc.Err(), log.String())
	return nil
}

// stop stops the child server gracefully and waits for it.
func (c *child) stop(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	if err := c.wait(); err != nil {
		t.Fatalf("graceful shutdown: %v\n%s", err, c.log.String())
	}
}

// verifyLog runs verify-log on a stopped server's data directory and
// returns its output.
func verifyLog(t *testing.T, dir, what string) string {
	t.Helper()
	var out strings.Builder
	if err := run(context.Background(), []string{"verify-log", "--data", dir}, &out); err != nil {
		t.Fatalf("%s: verify-log: %v\n%s", what, err, out.String())
	}
	return out.String()
}

type ack struct {
	index        uint64
	trace, spanB []byte
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs server processes")
	}
	dir := t.TempDir()
	ctx := context.Background()
	var acked []ack
	var seq int
	var lastCP *format.Checkpoint
	var appToken, auditorToken string
	for cycle := 0; cycle < *crashCycles; cycle++ {
		c := startChild(t, dir)
		if cycle == 0 {
			tokens := crashRoles(t, c.addr, dir, v1.Role_ROLE_INGESTER, v1.Role_ROLE_AUDITOR)
			appToken, auditorToken = tokens[v1.Role_ROLE_INGESTER], tokens[v1.Role_ROLE_AUDITOR]
		}
		ingest := (&clientFlags{addr: c.addr, token: appToken}).ingest()
		lc := (&clientFlags{addr: c.addr, token: auditorToken}).ledger()
		vkey, err := os.ReadFile(filepath.Join(dir, "log.pub"))
		if err != nil {
			t.Fatal(err)
		}
		verifier, err := note.NewVerifier(strings.TrimSpace(string(vkey)))
		if err != nil {
			t.Fatal(err)
		}

		// Everything acknowledged before earlier crashes is there.
		for _, a := range acked {
			e, err := lc.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: a.index}))
			if err != nil {
				t.Fatalf("cycle %d: acknowledged entry %d: %v", cycle, a.index, err)
			}
			h := e.Msg.GetEntry().GetHeader()
			if string(h.GetTraceId()) != string(a.trace) || string(h.GetSpanId()) != string(a.spanB) {
				t.Fatalf("cycle %d: entry %d holds another span", cycle, a.index)
			}
		}
		// The log never signs a checkpoint inconsistent with an earlier one.
		cpResp, err := lc.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{Fresh: true}))
		if err != nil {
			t.Fatal(err)
		}
		cp, err := format.OpenCheckpoint([]byte(cpResp.Msg.GetCheckpoint().GetNote()), verifier)
		if err != nil {
			t.Fatal(err)
		}
		if lastCP != nil {
			if cp.Size < lastCP.Size {
				t.Fatalf("cycle %d: checkpoint size went back from %d to %d", cycle, lastCP.Size, cp.Size)
			}
			cons, err := lc.GetConsistencyProof(ctx, connect.NewRequest(&v1.GetConsistencyProofRequest{OldSize: lastCP.Size, NewSize: cp.Size}))
			if err != nil {
				t.Fatal(err)
			}
			proof := make(tlog.TreeProof, len(cons.Msg.GetHashes()))
			for i, h := range cons.Msg.GetHashes() {
				copy(proof[i][:], h)
			}
			if lastCP.Size > 0 {
				if err := tlog.CheckTree(proof, int64(cp.Size), cp.Root, int64(lastCP.Size), lastCP.Root); err != nil {
					t.Fatalf("cycle %d: checkpoints of size %d and %d inconsistent: %v", cycle, lastCP.Size, cp.Size, err)
				}
			}
		}

		// Append from several goroutines and kill -9 at a random moment.
		var mu sync.Mutex
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := 0; w < 6; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					mu.Lock()
					seq++
					n := seq
					mu.Unlock()
					batch := make([]*v1.Span, 1+n%5)
					for i := range batch {
						batch[i] = benchSpan(uint64(n*8+i), "crash test payload")
					}
					resp, err := ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: batch}))
					if err != nil {
						return // the server died
					}
					mu.Lock()
					for i, r := range resp.Msg.GetReceipts() {
						acked = append(acked, ack{r.GetIndex(), batch[i].GetTraceId(), batch[i].GetSpanId()})
					}
					mu.Unlock()
				}
			}(w)
		}
		time.Sleep(time.Duration(50+rand.IntN(250)) * time.Millisecond)
		if cycle == 0 {
			// A checkpoint signed while appends run must stay consistent too.
			if r, err := lc.GetCheckpoint(ctx, connect.NewRequest(&v1.GetCheckpointRequest{Fresh: true})); err == nil {
				cp, err = format.OpenCheckpoint([]byte(r.Msg.GetCheckpoint().GetNote()), verifier)
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		lastCP = cp
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.wait()
		close(stop)
		wg.Wait()
		t.Logf("cycle %d: %d spans acknowledged so far", cycle, len(acked))
	}
	if len(acked) == 0 {
		t.Fatal("no append was acknowledged")
	}

	// A last clean start and stop, then the offline verifier.
	c := startChild(t, dir)
	c.stop(t)
	if out := verifyLog(t, dir, "after the crashes"); !strings.Contains(out, "ok    tenant default") {
		t.Errorf("verify-log output: %s", out)
	}
}

// TestCrashDuringErasure kills the server at random moments of an erasure
// and restarts it: the erasure is then either done, with every planned
// entry erased and a tombstone, or was never planned and erased nothing;
// other subjects' data is untouched and the log verifies.
func TestCrashDuringErasure(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs server processes")
	}
	ctx := context.Background()
	for cycle := 0; cycle < *crashCycles; cycle++ {
		dir := t.TempDir()
		c := startChild(t, dir)
		admin, err := os.ReadFile(filepath.Join(dir, AdminKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		ac := (&clientFlags{addr: c.addr, token: strings.TrimSpace(string(admin))}).admin()
		tokens := map[v1.Role]string{}
		for _, role := range []v1.Role{v1.Role_ROLE_INGESTER, v1.Role_ROLE_AUDITOR, v1.Role_ROLE_COMPLIANCE_OFFICER} {
			r, err := ac.CreateKey(ctx, connect.NewRequest(&v1.CreateKeyRequest{Role: role, Tenants: []string{"default"}}))
			if err != nil {
				t.Fatal(err)
			}
			tokens[role] = r.Msg.GetToken()
		}
		ingest := (&clientFlags{addr: c.addr, token: tokens[v1.Role_ROLE_INGESTER]}).ingest()
		var victim, bystander []uint64
		var pre []ack
		for b := 0; b < 6; b++ {
			batch := make([]*v1.Span, 500)
			for i := range batch {
				batch[i] = benchSpan(uint64(cycle*100000+b*1000+i+1), "crash erasure payload")
				batch[i].SubjectId = "victim"
				if i%10 == 0 {
					batch[i].SubjectId = "bystander"
				}
			}
			resp, err := ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: batch}))
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range resp.Msg.GetReceipts() {
				pre = append(pre, ack{r.GetIndex(), batch[i].GetTraceId(), batch[i].GetSpanId()})
				if batch[i].SubjectId == "victim" {
					victim = append(victim, r.GetIndex())
				} else {
					bystander = append(bystander, r.GetIndex())
				}
			}
		}
		// Clients keep appending, the victim's spans among others'.
		var seq atomic.Uint64
		seq.Store(uint64(cycle*100000 + 10000))
		apps := startAppenders(ingest, 6, &seq, func(k uint64) string {
			if k%3 == 0 {
				return "victim"
			}
			return fmt.Sprint("other-", k%20)
		})
		time.Sleep(20 * time.Millisecond)
		co := (&clientFlags{addr: c.addr, token: tokens[v1.Role_ROLE_COMPLIANCE_OFFICER]}).retention()
		go co.Erase(ctx, connect.NewRequest(&v1.EraseRequest{RequestId: "crash-erase", SubjectId: "victim", LegalBasis: "GDPR Art. 17", Reason: "crash test"}))
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.wait()
		acked := apps.halt()

		c = startChild(t, dir) // finishes an interrupted erasure while it serves
		c.waitResumed(t)
		resumedLog := c.log
		co = (&clientFlags{addr: c.addr, token: tokens[v1.Role_ROLE_COMPLIANCE_OFFICER]}).retention()
		st, err := co.GetErasure(ctx, connect.NewRequest(&v1.GetErasureRequest{RequestId: "crash-erase"}))
		done := err == nil
		switch {
		case err != nil && connect.CodeOf(err) != connect.CodeNotFound:
			t.Fatal(err)
		case done && (st.Msg.GetErasure().GetState() != "done" || st.Msg.GetErasure().GetTombstoneIndex() == 0):
			t.Fatalf("cycle %d: erasure after restart: %v", cycle, st.Msg.GetErasure())
		}
		c.stop(t)
		verifyLog(t, dir, fmt.Sprint("cycle ", cycle))
		erased := checkErasures(t, dir, append(acked, pre...))
		erasedCount := 0
		for _, i := range victim {
			if erased[i] {
				erasedCount++
			}
		}
		if (done && erasedCount != len(victim)) || (!done && erasedCount != 0) {
			t.Fatalf("cycle %d: erasure done=%v but %d of %d victim entries erased", cycle, done, erasedCount, len(victim))
		}
		for _, i := range bystander {
			if erased[i] {
				t.Fatalf("cycle %d: bystander entry %d erased", cycle, i)
			}
		}
		resumed := strings.Contains(resumedLog.String(), "resuming an interrupted erasure")
		t.Logf("cycle %d: erasure done=%v (%d of the %d victim entries appended before it, %d entries in all), resumed after the kill: %v; %d spans appended meanwhile", cycle, done, erasedCount, len(victim), len(erased), resumed, len(acked))
	}
}

// crashRoles creates a key for each role, bound to the default tenant,
// with the bootstrap admin key.
func crashRoles(t *testing.T, addr, dir string, roles ...v1.Role) map[v1.Role]string {
	t.Helper()
	admin, err := os.ReadFile(filepath.Join(dir, AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ac := (&clientFlags{addr: addr, token: strings.TrimSpace(string(admin))}).admin()
	tokens := map[v1.Role]string{}
	for _, role := range roles {
		r, err := ac.CreateKey(context.Background(), connect.NewRequest(&v1.CreateKeyRequest{Role: role, Tenants: []string{"default"}}))
		if err != nil {
			t.Fatal(err)
		}
		tokens[role] = r.Msg.GetToken()
	}
	return tokens
}

// appenders runs clients that append small batches of spans until stopped
// (or until the server dies), and records every acknowledged span.
type appenders struct {
	mu    sync.Mutex
	acked []ack
	stop  chan struct{}
	wg    sync.WaitGroup
}

// startAppenders starts n clients; subject(seq) names each span's subject.
func startAppenders(ingest veritracev1connect.IngestServiceClient, n int, seq *atomic.Uint64, subject func(uint64) string) *appenders {
	a := &appenders{stop: make(chan struct{})}
	for w := 0; w < n; w++ {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for {
				select {
				case <-a.stop:
					return
				default:
				}
				k := seq.Add(1)
				batch := make([]*v1.Span, 1+k%5)
				for i := range batch {
					batch[i] = benchSpan(k*8+uint64(i), "concurrent payload")
					batch[i].SubjectId = subject(k)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				resp, err := ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: batch}))
				cancel()
				if err != nil {
					if connect.CodeOf(err) == connect.CodeUnavailable || connect.CodeOf(err) == connect.CodeUnknown || connect.CodeOf(err) == connect.CodeDeadlineExceeded {
						return // the server died
					}
					continue
				}
				a.mu.Lock()
				for i, r := range resp.Msg.GetReceipts() {
					a.acked = append(a.acked, ack{r.GetIndex(), batch[i].GetTraceId(), batch[i].GetSpanId()})
				}
				a.mu.Unlock()
			}
		}()
	}
	return a
}

// halt stops the clients and returns what was acknowledged.
func (a *appenders) halt() []ack {
	close(a.stop)
	a.wg.Wait()
	return a.acked
}

// checkErasures opens a stopped server's data directory in-process and
// checks the default tenant's log: every acknowledged span is at its
// index with its ids, and its payload reads or it reads as erased and a
// tombstone names it; every entry a tombstone names reads as erased and
// is marked with that tombstone; no entry reads as erased without a
// tombstone naming it. It returns the erased entries.
func checkErasures(t *testing.T, dir string, acked []ack) map[uint64]bool {
	t.Helper()
	ctx := context.Background()
	keys, created, err := ledger.LoadOrCreateKeys(ledger.KeyPaths{Dir: dir})
	if err != nil || created {
		t.Fatalf("keys of %s: created %v, %v", dir, created, err)
	}
	l, err := ledger.Open(ctx, ledger.Options{Dir: dir, Keys: keys, Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	size, err := l.Size(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	named := map[uint64]uint64{} // erased entry -> tombstone
	erased := map[uint64]bool{}
	entries := make([]*ledger.Entry, size)
	for i := uint64(0); i < size; i++ {
		e, err := l.GetEntry(ctx, "default", i)
		if err != nil {
			t.Fatalf("GetEntry(%d) = %v", i, err)
		}
		entries[i] = e
		if e.Erased {
			erased[i] = true
		}
		if e.Header.Kind == format.KindTombstone && !e.Erased {
			var ts format.Tombstone
			if err := json.Unmarshal(e.Payload, &ts); err != nil {
				t.Fatalf("tombstone %d: %v", i, err)
			}
			for _, x := range ts.Erased {
				named[x.Index] = i
			}
		}
	}
	for x, ts := range named {
		e := entries[x]
		if !e.Erased {
			t.Errorf("entry %d is named by tombstone %d and still has its payload", x, ts)
		} else if e.ErasedBy == nil || named[x] != *e.ErasedBy {
			t.Errorf("entry %d is named by tombstone %d but marked with %v", x, ts, e.ErasedBy)
		}
	}
	for x := range erased {
		if _, ok := named[x]; !ok {
			t.Errorf("entry %d reads as erased and no tombstone names it", x)
		}
	}
	for _, a := range acked {
		if a.index >= size {
			t.Fatalf("acknowledged entry %d is beyond the log's size %d", a.index, size)
		}
		h := entries[a.index].Header
		if string(h.TraceID[:]) != string(a.trace) || string(h.SpanID[:]) != string(a.spanB) {
			t.Fatalf("acknowledged entry %d holds another span", a.index)
		}
	}
	return erased
}

// TestCrashDuringSweep kills the server at random moments of a sweep
// that expires a few hundred data keys while clients append, restarts it
// (Resume finishes an interrupted sweep), sweeps again, and checks every
// acknowledged span, every tombstone and every erased entry
// (checkErasures), that the expired entries and only they are erased (a
// held subject's stay), and that the log verifies.
func TestCrashDuringSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs server processes")
	}
	ctx := context.Background()
	const later = 200 * 24 * time.Hour // past the default 183-day retention
	resumed := 0
	for cycle := 0; cycle < *crashCycles; cycle++ {
		dir := t.TempDir()
		c := startChild(t, dir)
		tokens := crashRoles(t, c.addr, dir, v1.Role_ROLE_INGESTER, v1.Role_ROLE_COMPLIANCE_OFFICER)
		ingest := (&clientFlags{addr: c.addr, token: tokens[v1.Role_ROLE_INGESTER]}).ingest()
		var old []ack
		oldSubject := map[uint64]string{}
		for b := 0; b < 4; b++ {
			batch := make([]*v1.Span, 500)
			for i := range batch {
				n := uint64(cycle*1_000_000 + b*1000 + i + 1)
				batch[i] = benchSpan(n, "day-0 payload")
				batch[i].SubjectId = fmt.Sprint("old-", n%400) // 400 subjects: 400 keys
			}
			resp, err := ingest.AppendSpans(ctx, connect.NewRequest(&v1.AppendSpansRequest{Spans: batch}))
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range resp.Msg.GetReceipts() {
				old = append(old, ack{r.GetIndex(), batch[i].GetTraceId(), batch[i].GetSpanId()})
				oldSubject[r.GetIndex()] = batch[i].GetSubjectId()
			}
		}
		co := (&clientFlags{addr: c.addr, token: tokens[v1.Role_ROLE_COMPLIANCE_OFFICER]}).retention()
		if _, err := co.PlaceHold(ctx, connect.NewRequest(&v1.PlaceHoldRequest{Scope: &v1.HoldScope{SubjectId: "old-7"}, CaseRef: "case-1", Reason: "crash test"})); err != nil {
			t.Fatal(err)
		}
		c.stop(t)

		// 200 days later: sweep while clients append, and kill.
		c = startChildAt(t, dir, later)
		ingest = (&clientFlags{addr: c.addr, token: tokens[v1.Role_ROLE_INGESTER]}).ingest()
		var seq atomic.Uint64
		seq.Store(uint64(cycle*1_000_000 + 100_000))
		apps := startAppenders(ingest, 6, &seq, func(k uint64) string { return fmt.Sprint("new-", k%50) })
		co = (&clientFlags{addr: c.addr, token: tokens[v1.Role_ROLE_COMPLIANCE_OFFICER]}).retention()
		swept := make(chan error, 1)
		go func() {
			_, err := co.Sweep(ctx, connect.NewRequest(&v1.SweepRequest{}))
			swept <- err
		}()
		time.Sleep(time.Duration(rand.IntN(500)) * time.Millisecond)
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.wait()
		acked := append(apps.halt(), old...)
		finished := <-swept == nil

		c = startChildAt(t, dir, later) // finishes an interrupted sweep while it serves
		c.waitResumed(t)
		resume := strings.Contains(c.log.String(), "resuming an interrupted erasure or sweep")
		if resume {
			resumed++
		}
		t.Logf("cycle %d: the sweep had finished before the kill: %v; the restart resumed one: %v", cycle, finished, resume)
		c.stop(t)
		checkErasures(t, dir, acked) // as Resume left it

		c = startChildAt(t, dir, later)
		co = (&clientFlags{addr: c.addr, token: tokens[v1.Role_ROLE_COMPLIANCE_OFFICER]}).retention()
		if _, err := co.Sweep(ctx, connect.NewRequest(&v1.SweepRequest{})); err != nil {
			t.Fatalf("cycle %d: sweep after the restart: %v", cycle, err)
		}
		c.stop(t)
		verifyLog(t, dir, fmt.Sprint("cycle ", cycle))
		erased := checkErasures(t, dir, acked)
		for _, a := range old {
			if held := oldSubject[a.index] == "old-7"; erased[a.index] == held {
				t.Errorf("cycle %d: day-0 entry %d of %s: erased %v after the sweep", cycle, a.index, oldSubject[a.index], erased[a.index])
			}
		}
		t.Logf("cycle %d: %d entries erased, %d spans acknowledged", cycle, len(erased), len(acked))
	}
	t.Logf("%d of %d kills interrupted a sweep that the restart resumed", resumed, *crashCycles)
}
