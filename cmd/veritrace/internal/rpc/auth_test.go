package rpc

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"github.com/veritrace/veritrace/policy"
)

func TestTokenRoundTrip(t *testing.T) {
	token, rec := NewKey(policy.Auditor, []string{"acme"}, "x", time.Time{}, "", time.Now())
	id, secret, err := parseToken(token)
	if err != nil {
		t.Fatalf("parseToken(NewKey()) = %v", err)
	}
	if id != rec.ID || len(secret) != secretBytes {
		t.Errorf("parseToken() = %x, %d bytes; want %x", id, len(secret), rec.ID)
	}
	if len(token) != len("vtk_")+16+1+43 {
		t.Errorf("token length %d", len(token))
	}
	for _, bad := range []string{"", "vtk_", token[:len(token)-1], token + "A", "xtk" + token[3:],
		"vtk_" + "zz" + token[6:], token[:20] + "-" + token[21:]} {
		if _, _, err := parseToken(bad); err == nil {
			t.Errorf("parseToken(%q) = nil error", bad)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	token, _ := NewKey(policy.Ingester, []string{"a"}, "", time.Time{}, "", time.Now())
	f.Add(token)
	f.Add("vtk_0000000000000000_")
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := parseToken(s)
		if err != nil {
			return
		}
		// What parses is exactly one token.
		if len(secret) != secretBytes || s[4:20] != hex.EncodeToString(id[:]) || !bytes.Equal(secret, secret[:secretBytes]) {
			t.Fatalf("parseToken(%q) = %x, %x", s, id, secret)
		}
	})
}
