package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"connectrpc.com/connect"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/audit/bundle"
	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

// runVerifyReceipt checks an erasure receipt (docs/RETENTION.md, "The
// receipt"): its signature and checkpoint offline, and, given an evidence
// bundle or the server, each tombstone part it names and the counts.
func runVerifyReceipt(ctx context.Context, args []string, stdout io.Writer) error {
	var cf clientFlags
	fs := flag.NewFlagSet("verify-receipt", flag.ContinueOnError)
	cf.register(fs)
	key := fs.String("key", "", "the log's verifier key file (log.pub), obtained out of band (required)")
	bundlePath := fs.String("bundle", "", "check the tombstone parts in this evidence bundle (exported with --known-size set to the receipt's tree size)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: veritrace verify-receipt RECEIPT --key log.pub [--bundle evidence.zip | --addr URL]")
		fs.PrintDefaults()
	}
	// Not parseFlags: an offline check needs no API key.
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		fs.Usage()
		return fmt.Errorf("verify-receipt: want 1 argument RECEIPT, got %d", len(rest))
	}
	online := false
	fs.Visit(func(f *flag.Flag) { online = online || f.Name == "addr" })
	if online {
		if err := cf.loadKey(); err != nil {
			return err
		}
	}
	if *key == "" {
		return errors.New("verify-receipt: --key is required: the log's verifier key (log.pub), obtained out of band")
	}
	if online && *bundlePath != "" {
		return errors.New("verify-receipt: give --bundle or --addr, not both")
	}
	kb, err := os.ReadFile(*key)
	if err != nil {
		return fmt.Errorf("verifier key: %w", err)
	}
	verifier, err := note.NewVerifier(strings.TrimSpace(string(kb)))
	if err != nil {
		return fmt.Errorf("verifier key %s: %w", *key, err)
	}
	file, err := readReceiptFile(rest[0])
	if err != nil {
		return err
	}
	var parts bundle.PartSource
	switch {
	case *bundlePath != "":
		f, err := os.Open(*bundlePath)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if parts, err = bundle.BundleParts(f, fi.Size()); err != nil {
			return fmt.Errorf("bundle %s: %w", *bundlePath, err)
		}
	case online:
		parts = serverParts(ctx, &cf)
	}
	rep := bundle.CheckReceipt(file, verifier, parts)
	rep.Write(stdout)
	if !rep.OK() {
		return fmt.Errorf("receipt NOT verified: %s failed", strings.Join(rep.Failed(), ", "))
	}
	return nil
}

// readReceiptFile reads a receipt file, at most bundle.MaxReceiptBytes.
func readReceiptFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, bundle.MaxReceiptBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > bundle.MaxReceiptBytes {
		return nil, fmt.Errorf("%s: more than %d bytes, more than a receipt file may hold", path, bundle.MaxReceiptBytes)
	}
	return b, nil
}

// serverParts fetches each tombstone part from the server: GetEntry, and
// an inclusion proof into the receipt's own checkpoint (tree size).
func serverParts(ctx context.Context, cf *clientFlags) bundle.PartSource {
	lc := cf.ledger()
	return func(index uint64, rc *format.Checkpoint) (*bundle.ReceiptPart, error) {
		er, err := lc.GetEntry(ctx, connect.NewRequest(&v1.GetEntryRequest{Index: index}))
		if err != nil {
			return nil, fmt.Errorf("GetEntry: %w", err)
		}
		pr, err := lc.GetInclusionProof(ctx, connect.NewRequest(&v1.GetInclusionProofRequest{Index: index, TreeSize: rc.Size}))
		if err != nil {
			return nil, fmt.Errorf("GetInclusionProof into tree size %d: %w", rc.Size, err)
		}
		if got := pr.Msg.GetProof().GetTreeSize(); got != rc.Size {
			return nil, fmt.Errorf("the server proved into tree size %d, not %d", got, rc.Size)
		}
		e := er.Msg.GetEntry()
		p := &bundle.ReceiptPart{Header: e.GetHeaderBytes(), Payload: e.GetPayload(), Salt: e.GetSalt()}
		for _, h := range pr.Msg.GetProof().GetHashes() {
			if len(h) != tlog.HashSize {
				return nil, fmt.Errorf("the server's inclusion proof holds a hash of %d bytes", len(h))
			}
			p.Proof = append(p.Proof, tlog.Hash(h))
		}
		return p, nil
	}
}
