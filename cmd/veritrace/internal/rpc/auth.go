package rpc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/veritrace/veritrace/ledger"
	"github.com/veritrace/veritrace/policy"
)

// API key tokens are "vtk_" + 16 hex digits of key id + "_" + 43 base64url
// characters of a 32-byte random secret. The server stores SHA-256 of the
// secret: a 256-bit random secret needs no slow hash.
const (
	tokenPrefix = "vtk_"
	secretBytes = 32
)

var errBadToken = errors.New("malformed API key: want \"Authorization: Bearer vtk_<id>_<secret>\"")

// NewKey makes an API key: the token to hand out once and the record to
// store.
func NewKey(role policy.Role, tenants []string, label string, expires time.Time, createdBy string, now time.Time) (token string, rec *ledger.APIKey) {
	rec = &ledger.APIKey{Role: string(role), Tenants: tenants, Label: label, CreatedBy: createdBy, CreatedAt: now.UTC()}
	if !expires.IsZero() {
		rec.ExpiresAt = expires.UTC()
	}
	secret := make([]byte, secretBytes)
	rand.Read(rec.ID[:])
	rand.Read(secret)
	rec.SecretHash = sha256.Sum256(secret)
	return tokenPrefix + hex.EncodeToString(rec.ID[:]) + "_" + base64.RawURLEncoding.EncodeToString(secret), rec
}

// parseToken splits a bearer token into key id and secret.
func parseToken(token string) (id [8]byte, secret []byte, err error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok || len(rest) != 16+1+43 || rest[16] != '_' {
		return id, nil, errBadToken
	}
	// One spelling per token: lowercase hex, canonical base64.
	if _, err := hex.Decode(id[:], []byte(rest[:16])); err != nil || hex.EncodeToString(id[:]) != rest[:16] {
		return id, nil, errBadToken
	}
	secret, err = base64.RawURLEncoding.Strict().DecodeString(rest[17:])
	if err != nil || len(secret) != secretBytes {
		return id, nil, errBadToken
	}
	return id, secret, nil
}

// authError is why a request is not authenticated. Its text goes to the
// client and to the access log; it never holds the secret.
type authError struct {
	msg string
	// keyKnown: the token presented the secret of a stored key that was
	// revoked or expired. A wrong secret proves nothing of who sent it.
	keyKnown bool
}

func (e *authError) Error() string { return e.msg }

// authenticate checks a bearer token against the stored keys.
func authenticate(ctx context.Context, l *ledger.Ledger, header string, now time.Time) (*policy.Principal, string, error) {
	token, ok := strings.CutPrefix(header, "Bearer ")
	if header == "" {
		return nil, "", &authError{msg: "missing API key: send \"Authorization: Bearer vtk_...\""}
	}
	if !ok {
		return nil, "", &authError{msg: errBadToken.Error()}
	}
	id, secret, err := parseToken(strings.TrimSpace(token))
	if err != nil {
		return nil, "", &authError{msg: err.Error()}
	}
	keyID := hex.EncodeToString(id[:])
	k, err := l.GetAPIKey(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, keyID, &authError{msg: "invalid API key"}
	}
	if err != nil {
		return nil, keyID, err
	}
	sum := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(sum[:], k.SecretHash[:]) != 1 {
		return nil, keyID, &authError{msg: "invalid API key"}
	}
	if !k.RevokedAt.IsZero() {
		return nil, keyID, &authError{msg: "API key " + keyID + " was revoked", keyKnown: true}
	}
	if !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt) {
		return nil, keyID, &authError{msg: "API key " + keyID + " expired at " + k.ExpiresAt.Format(time.RFC3339), keyKnown: true}
	}
	role, err := policy.ParseRole(k.Role)
	if err != nil {
		return nil, keyID, fmt.Errorf("stored key %s: %w", keyID, err)
	}
	return &policy.Principal{KeyID: keyID, Role: role, Tenants: k.Tenants}, keyID, nil
}

// Bootstrap creates the first admin key when the ledger has none: bound to
// every tenant, its token written to path with mode 0600 and synced before
// the key's record is stored. It returns the key id, or "" when keys exist
// already. A file at path while the ledger holds no key at all was left by
// a first start killed before it stored the key's record: its token was
// never valid, and it is replaced.
func Bootstrap(ctx context.Context, l *ledger.Ledger, path string, now time.Time) (string, error) {
	keys, err := l.ListAPIKeys(ctx)
	if err != nil || len(keys) > 0 {
		return "", err
	}
	token, rec := NewKey(policy.Admin, []string{policy.AllTenants}, "bootstrap admin", time.Time{}, "", now)
	if err := ledger.WriteFileDurably(path, []byte(token+"\n"), 0o600, true); err != nil {
		return "", fmt.Errorf("write bootstrap admin key: %w", err)
	}
	if err := l.PutAPIKey(ctx, rec); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("bootstrap admin key: %w", err)
	}
	return hex.EncodeToString(rec.ID[:]), nil
}
