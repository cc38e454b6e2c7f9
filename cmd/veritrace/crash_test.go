package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

var crashCycles = flag.Int("crash.cycles", 3, "kill -9 cycles in TestCrashRecovery")

// TestMain lets the test binary run as the server for the crash test.
func TestMain(m *testing.M) {
	if args := os.Getenv("VERITRACE_TEST_CHILD"); args != "" {
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
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VERITRACE_TEST_CHILD="+strings.Join(append([]string{"serve --data", dir, "--listen 127.0.0.1:0 --checkpoint-interval 20ms"}, flags...), " "))
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
			go func() {
				for sc.Scan() {
					log.add(sc.Text())
				}
			}()
			return &child{cmd: cmd, addr: m[1], log: log}
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("server child exited before serving: %v", sc.Err())
	return nil
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
			appToken, auditorToken = crashTestKeys(t, c.addr, dir)
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
						batch[i] = benchSpan(uint64(n*8+i), "crash test payload", 1000)
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
		c.cmd.Wait()
		close(stop)
		wg.Wait()
		t.Logf("cycle %d: %d spans acknowledged so far", cycle, len(acked))
	}
	if len(acked) == 0 {
		t.Fatal("no append was acknowledged")
	}

	// A last clean start and stop, then the offline verifier.
	c := startChild(t, dir)
	c.cmd.Process.Signal(syscall.SIGTERM)
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	var out strings.Builder
	if err := run(ctx, []string{"verify-log", "--data", dir}, &out); err != nil {
		t.Fatalf("verify-log after crashes: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "ok    tenant default") {
		t.Errorf("verify-log output: %s", out.String())
	}
}

// crashTestKeys creates an ingester and an auditor key with the bootstrap
// admin key the first start wrote.
func crashTestKeys(t *testing.T, addr, dir string) (app, auditor string) {
	t.Helper()
	admin, err := os.ReadFile(filepath.Join(dir, AdminKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ac := (&clientFlags{addr: addr, token: strings.TrimSpace(string(admin))}).admin()
	tokens := map[v1.Role]string{}
	for _, role := range []v1.Role{v1.Role_ROLE_INGESTER, v1.Role_ROLE_AUDITOR} {
		resp, err := ac.CreateKey(context.Background(), connect.NewRequest(&v1.CreateKeyRequest{Role: role, Tenants: []string{"default"}}))
		if err != nil {
			t.Fatal(err)
		}
		tokens[role] = resp.Msg.GetToken()
	}
	return tokens[v1.Role_ROLE_INGESTER], tokens[v1.Role_ROLE_AUDITOR]
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
		for b := 0; b < 6; b++ {
			batch := make([]*v1.Span, 500)
			for i := range batch {
				batch[i] = benchSpan(uint64(cycle*100000+b*1000+i+1), "crash erasure payload", 1000)
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
				if batch[i].SubjectId == "victim" {
					victim = append(victim, r.GetIndex())
				} else {
					bystander = append(bystander, r.GetIndex())
				}
			}
		}
		co := (&clientFlags{addr: c.addr, token: tokens[v1.Role_ROLE_COMPLIANCE_OFFICER]}).retention()
		go co.Erase(ctx, connect.NewRequest(&v1.EraseRequest{RequestId: "crash-erase", SubjectId: "victim", LegalBasis: "GDPR Art. 17", Reason: "crash test"}))
		time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
		c.cmd.Process.Signal(syscall.SIGKILL)
		c.cmd.Wait()

		c = startChild(t, dir) // finishes an interrupted erasure before serving
		resumedLog := c.log
		co = (&clientFlags{addr: c.addr, token: tokens[v1.Role_ROLE_COMPLIANCE_OFFICER]}).retention()
		aud := (&clientFlags{addr: c.addr, token: tokens[v1.Role_ROLE_AUDITOR]}).ledger()
		st, err := co.GetErasure(ctx, connect.NewRequest(&v1.GetErasureRequest{RequestId: "crash-erase"}))
		done := err == nil
		switch {
		case err != nil && connect.CodeOf(err) != connect.CodeNotFound:
			t.Fatal(err)
		case done && (st.Msg.GetErasure().GetState() != "done" || st.Msg.GetErasure().GetTombstoneIndex() == 0):
			t.Fatalf("cycle %d: erasure after restart: %v", cycle, st.Msg.GetErasure())
		}
		erasedCount := 0
		for _, i := range victim {
			e, err := aud.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: i}))
			if err != nil {
				t.Fatal(err)
			}
			if e.Msg.GetEntry().GetErased() {
				erasedCount++
			}
		}
		if (done && erasedCount != len(victim)) || (!done && erasedCount != 0) {
			t.Fatalf("cycle %d: erasure done=%v but %d of %d victim entries erased", cycle, done, erasedCount, len(victim))
		}
		for _, i := range bystander {
			e, err := aud.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: i}))
			if err != nil || e.Msg.GetEntry().GetErased() || e.Msg.GetEntry().GetSpan().GetSubjectId() != "bystander" {
				t.Fatalf("cycle %d: bystander entry %d: %v, %v", cycle, i, e, err)
			}
		}
		c.cmd.Process.Signal(syscall.SIGTERM)
		if err := c.cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		if err := run(ctx, []string{"verify-log", "--data", dir}, &out); err != nil {
			t.Fatalf("cycle %d: verify-log: %v\n%s", cycle, err, out.String())
		}
		resumed := strings.Contains(resumedLog.String(), "resuming an interrupted erasure")
		t.Logf("cycle %d: erasure done=%v (%d entries), resumed after the kill: %v", cycle, done, erasedCount, resumed)
	}
}
