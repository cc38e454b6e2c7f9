// Command veritrace-verify verifies Veritrace evidence offline:
//
//	veritrace-verify BUNDLE.zip --key log.pub [--pinned-checkpoint FILE]
//	veritrace-verify receipt RECEIPT --key log.pub [--bundle BUNDLE.zip]
//
// The first form verifies an evidence bundle (docs/BUNDLE.md); the second
// an erasure receipt (docs/RETENTION.md, "The receipt"): its signature and
// checkpoint, and, given an evidence bundle exported with --known-size set
// to the receipt's tree size, each tombstone part it names and its counts.
// Flags may come before or after the file, as with "veritrace verify".
// It needs no server and no data directory, and is built from the bundle
// package alone (no storage engine, no server code), so that an auditor
// can read, build and run it on their own machine. It exits 0 only when
// every check it was asked for passes (a receipt without --bundle: its
// signature and checkpoint, the verdict SIGNED), 1 when a check fails or
// could not run, and 2 when it cannot run at all.
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
	if len(args) > 0 && args[0] == "receipt" {
		return command{
			name:  "veritrace-verify receipt",
			usage: []string{"usage: veritrace-verify receipt RECEIPT --key log.pub [--bundle BUNDLE.zip]"},
			flag:  "bundle", flagHelp: "check the tombstone parts in this evidence bundle (exported with --known-size set to the receipt's tree size)",
			check: func(file, key, bundlePath string, w io.Writer) (bool, error) {
				rep, err := bundle.VerifyReceiptFile(file, key, bundlePath, w)
				return err == nil && rep.OK(), err
			},
		}.run(args[1:], stdout, stderr)
	}
	return command{
		name: "veritrace-verify",
		usage: []string{"usage: veritrace-verify BUNDLE.zip --key log.pub [--pinned-checkpoint FILE]",
			"       veritrace-verify receipt RECEIPT --key log.pub [--bundle BUNDLE.zip]"},
		flag: "pinned-checkpoint", flagHelp: "a signed checkpoint of the same log you already hold; the bundle must prove the log only grew since",
		check: func(file, key, pinned string, w io.Writer) (bool, error) {
			rep, err := bundle.VerifyFile(file, key, pinned, w)
			return err == nil && rep.OK(), err
		},
	}.run(args, stdout, stderr)
}

// command is one form of the verifier: a file, --key and one optional
// flag; check writes its report and says whether every check passed.
type command struct {
	name           string
	usage          []string
	flag, flagHelp string
	check          func(file, key, flag string, w io.Writer) (bool, error)
}

// run parses the arguments and checks the file: exit 0 when every check
// passes, 1 when one fails, 2 when it cannot run.
func (c command) run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	key := fs.String("key", "", "the log's verifier key file (log.pub), obtained from the operator out of band (required)")
	extra := fs.String(c.flag, "", c.flagHelp)
	fs.Usage = func() {
		for _, l := range c.usage {
			fmt.Fprintln(fs.Output(), l)
		}
		fs.PrintDefaults()
	}
	rest, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if *key == "" || len(rest) != 1 {
		fs.Usage()
		return 2
	}
	passed, err := c.check(rest[0], *key, *extra, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.name, err)
		return 2
	}
	if !passed {
		return 1
	}
	return 0
}

// parse parses flags given before or after the positional arguments: it
// parses, takes the next argument, and parses the rest. When it returns
// ok false, the command exits with code (0 for -h).
func parse(fs *flag.FlagSet, args []string) (rest []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, 0, false
			}
			return nil, 2, false
		}
		if fs.NArg() == 0 {
			return rest, 0, true
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
