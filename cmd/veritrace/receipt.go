package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"connectrpc.com/connect"
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
	if !online {
		rep, err := bundle.VerifyReceiptFile(rest[0], *key, *bundlePath, stdout)
		return receiptResult(rep, err)
	}
	verifier, err := bundle.ReadVerifierKey(*key)
	if err != nil {
		return err
	}
	file, err := bundle.ReadReceiptFile(rest[0])
	if err != nil {
		return err
	}
	rep := bundle.CheckReceipt(file, verifier, serverParts(ctx, &cf))
	rep.Write(stdout)
	return receiptResult(rep, nil)
}

// receiptResult is the command's error for a receipt check's report: nil
// when every check asked for passed (VERIFIED, or SIGNED offline), else
// what failed and what was not checked (exit status 1).
func receiptResult(rep *bundle.ReceiptReport, err error) error {
	if err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("receipt NOT verified: %s", rep.Summary())
	}
	return nil
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
