// Command veritrace-verify verifies a Veritrace evidence bundle offline:
//
//	veritrace-verify --key log.pub [--pinned-checkpoint FILE] BUNDLE.zip
//
// It needs no server and no data directory, and is built from the bundle
// package alone (no storage engine, no server code), so that an auditor
// can read, build and run it on their own machine. It exits 0 only when
// every check passes.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/veritrace/veritrace/audit/bundle"
)

func main() {
	key := flag.String("key", "", "the log's verifier key file (log.pub), obtained from the operator out of band (required)")
	pinned := flag.String("pinned-checkpoint", "", "a signed checkpoint of the same log you already hold; the bundle must prove the log only grew since")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: veritrace-verify --key log.pub [--pinned-checkpoint FILE] BUNDLE.zip")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *key == "" || flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	rep, err := bundle.VerifyFile(flag.Arg(0), *key, *pinned, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "veritrace-verify:", err)
		os.Exit(2)
	}
	if !rep.OK() {
		os.Exit(1)
	}
}
