// Command veritrace is the Veritrace server and its command-line client.
//
//	veritrace serve                 start the server (data in ./veritrace-data, 127.0.0.1:7070)
//	veritrace append FILE           append spans (an AppendSpansRequest in proto JSON)
//	veritrace version register ...  register a prompt, policy or pipeline version
//	veritrace version get ID        show a registered version
//	veritrace version list          list registered versions
//	veritrace checkpoint            print the latest signed checkpoint
//	veritrace prove INDEX           fetch and check an inclusion proof
//	veritrace get INDEX             print an entry with its payload
//	veritrace trace ID              show a trace's decision path
//	veritrace query [flags]         find traces
//	veritrace export [flags] -o F   export a signed evidence bundle
//	veritrace verify F --key log.pub  verify a bundle offline
//	veritrace verify-receipt R --key log.pub [--bundle F | --addr URL]  check an erasure receipt
//	veritrace erase --subject ID --legal-basis B --reason R [--dry-run]
//	veritrace erasure REQUEST_ID    an erasure request's state and receipt
//	veritrace erasures [--all]      list erasure requests and sweeps
//	veritrace hold place|release|list   legal holds
//	veritrace retention show|set     retention policy
//	veritrace sweep                 expire payloads past retention now
//	veritrace keys create|list|revoke  manage API keys (admin)
//	veritrace tenants create|list   manage tenants (admin)
//	veritrace access-log            list a tenant's access log
//	veritrace verify-log --data DIR verify a data directory offline
//	veritrace health                the health check of the server and each service
//	veritrace bench                 drive a server with load and report throughput
//
// Run "veritrace COMMAND -h" for a command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name, usage string
	run         func(ctx context.Context, args []string, stdout io.Writer) error
}

var commands = []command{
	{"serve", "start the server", runServe},
	{"append", "append spans from a proto JSON file", runAppend},
	{"version", "register, get or list prompt, policy and pipeline versions", runVersion},
	{"checkpoint", "print the latest signed checkpoint", runCheckpoint},
	{"prove", "fetch an inclusion proof and check it against a signed checkpoint", runProve},
	{"get", "print an entry with its decrypted payload", runGet},
	{"trace", "show a trace's decision path (auditor)", runTrace},
	{"query", "find traces by session, subject, time, version, kind, model or error (auditor)", runQuery},
	{"export", "export a signed evidence bundle (auditor)", runExport},
	{"verify", "verify an evidence bundle offline with the log's public key", runVerify},
	{"verify-receipt", "check an erasure receipt: offline, or its tombstone parts in a bundle or on the server", runVerifyReceipt},
	{"erase", "erase a subject's, session's or traces' payloads (compliance officer)", runErase},
	{"erasure", "show an erasure request's state and receipt", runErasure},
	{"erasures", "list the tenant's erasure requests and sweeps, newest first (compliance officer)", runErasures},
	{"hold", "place, release or list legal holds (compliance officer)", runHold},
	{"retention", "show or set the retention policy (compliance officer)", runRetention},
	{"sweep", "expire payloads past their retention now (compliance officer)", runSweep},
	{"keys", "create, list or revoke API keys (admin)", runKeys},
	{"tenants", "create or list tenants (admin)", runTenants},
	{"access-log", "list a tenant's access log (auditor, compliance officer, admin)", runAccessLog},
	{"verify-log", "verify a data directory offline and name the first bad entry", runVerifyLog},
	{"health", "ask the server's health check about the server and each service (no API key needed)", runHealth},
	{"bench", "load generator: drive a server over loopback and report spans/s and latency", runBench},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		// Help was asked for and printed.
	case err != nil:
		fmt.Fprintln(os.Stderr, "veritrace:", err)
		code := 1
		if ee := (*exitError)(nil); errors.As(err, &ee) {
			code = ee.code
		}
		os.Exit(code)
	}
}

// exitError is a failure with an exit status of its own (other than 1),
// which its command documents, so that scripts can tell it apart.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(os.Stderr)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	for _, c := range commands {
		if c.name == args[0] {
			return explain(c.run(ctx, args[1:], stdout))
		}
	}
	usage(os.Stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: veritrace COMMAND [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.usage)
	}
}

// explain says plainly what a client command's failure to reach a server
// means: "no Veritrace server at 127.0.0.1:7070 (connection refused)",
// the dial error still wrapped.
func explain(err error) error {
	var op *net.OpError
	if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &op) || op.Addr == nil {
		return err
	}
	return &noServerError{addr: op.Addr.String(), err: err}
}

// noServerError: nothing listens at addr.
type noServerError struct {
	addr string
	err  error
}

func (e *noServerError) Error() string {
	return fmt.Sprintf("no Veritrace server at %s (connection refused): start one (veritrace serve), or point --addr or $VERITRACE_ADDR at it", e.addr)
}

func (e *noServerError) Unwrap() error { return e.err }

// envOr returns the environment variable's value, or def.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
