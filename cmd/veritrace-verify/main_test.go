package main

import (
	"strings"
	"testing"
)

// TestArgumentOrder: the bundle may come before or after the flags, as
// with "veritrace verify".
func TestArgumentOrder(t *testing.T) {
	const zip, pub = "../../audit/bundle/testdata/golden.zip", "../../audit/bundle/testdata/golden.pub"
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{zip, "--key", pub}, 0, "VERIFIED"},
		{[]string{"--key", pub, zip}, 0, "VERIFIED"},
		{[]string{"--key=" + pub, zip, "--pinned-checkpoint", ""}, 0, "VERIFIED"},
		{[]string{zip}, 2, "usage: veritrace-verify BUNDLE.zip --key log.pub"},
		{[]string{zip, zip, "--key", pub}, 2, "usage"},
		{[]string{"--key", pub, "no-such.zip"}, 2, "no-such.zip"},
		{[]string{"-h"}, 0, "usage"},
	} {
		var out strings.Builder
		if code := run(tc.args, &out, &out); code != tc.code || !strings.Contains(out.String(), tc.out) {
			t.Errorf("veritrace-verify %s = %d:\n%s\nwant %d and %q", strings.Join(tc.args, " "), code, out.String(), tc.code, tc.out)
		}
	}
}

// TestReceipt: "veritrace-verify receipt" checks an erasure receipt from
// files alone, with its exit codes.
func TestReceipt(t *testing.T) {
	const dir = "../../audit/bundle/testdata/"
	const receipt, pub, zip = dir + "golden-receipt.txt", dir + "golden-receipt.pub", dir + "golden-receipt.zip"
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"receipt", receipt, "--key", pub}, 0, "SIGNED: the log key signed this receipt"},
		{[]string{"receipt", "--key", pub, receipt, "--bundle", zip}, 0, "VERIFIED: every check passed"},
		{[]string{"receipt", receipt, "--key", pub, "--bundle", dir + "golden.zip"}, 1, "NOT VERIFIED: tombstone parts failed; counts not checked (not every tombstone part holds)"},
		{[]string{"receipt", receipt, "--key", dir + "golden.pub"}, 1, "FAIL  receipt signature"},
		{[]string{"receipt", receipt}, 2, "usage: veritrace-verify receipt RECEIPT --key log.pub"},
		{[]string{"receipt", "--key", pub, "no-such.txt"}, 2, "no-such.txt"},
		{[]string{"receipt", receipt, "--key", pub, "--bundle", "no-such.zip"}, 2, "no-such.zip"},
		{[]string{"receipt", "-h"}, 0, "usage"},
	} {
		var out strings.Builder
		if code := run(tc.args, &out, &out); code != tc.code || !strings.Contains(out.String(), tc.out) {
			t.Errorf("veritrace-verify %s = %d:\n%s\nwant %d and %q", strings.Join(tc.args, " "), code, out.String(), tc.code, tc.out)
		}
	}
}
