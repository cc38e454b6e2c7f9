// Command veritrace-verify verifies a Veritrace evidence bundle offline:
//
//	veritrace-verify BUNDLE.zip --key log.pub [--pinned-checkpoint FILE]
//
// Flags may come before or after the bundle, as with "veritrace verify".
// It needs no server and no data directory, and is built from the bundle
// package alone (no storage engine, no server code), so that an auditor
// can read, build and run it on their own machine. It exits 0 only when
// every check passes, 1 when a check fails, and 2 when it cannot run.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/veritrace/veritrace/audit/bundle"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("veritrace-verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	key := fs.String("key", "", "the log's verifier key file (log.pub), obtained from the operator out of band (required)")
	pinned := fs.String("pinned-checkpoint", "", "a signed checkpoint of the same log you already hold; the bundle must prove the log only grew since")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: veritrace-verify BUNDLE.zip --key log.pub [--pinned-checkpoint FILE]")
		fs.PrintDefaults()
	}
	// Flags before or after the bundle: parse, take the next argument,
	// parse the rest.
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if *key == "" || len(rest) != 1 {
		fs.Usage()
		return 2
	}
	rep, err := bundle.VerifyFile(rest[0], *key, *pinned, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "veritrace-verify:", err)
		return 2
	}
	if !rep.OK() {
		return 1
	}
	return 0
}
