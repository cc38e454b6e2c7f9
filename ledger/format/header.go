package format

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// FormatVersion is the version of the header encoding and of the on-disk
// layout. Open refuses data of any other version.
const FormatVersion = 1

// Kind is the kind of a ledger entry.
type Kind uint8

const (
	KindSpan      Kind = 1 // a span of an LLM request
	KindVersion   Kind = 2 // a registered prompt, policy or pipeline version
	KindAccess    Kind = 3 // a record of an access to the ledger (access log)
	KindTombstone Kind = 4 // a record of payloads erased or expired
	KindRetention Kind = 5 // a change of a tenant's retention rules
	KindHold      Kind = 6 // a legal hold placed or released
)

func (k Kind) String() string {
	switch k {
	case KindSpan:
		return "span"
	case KindVersion:
		return "version"
	case KindAccess:
		return "access"
	case KindTombstone:
		return "tombstone"
	case KindRetention:
		return "retention"
	case KindHold:
		return "hold"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k Kind) valid() bool { return k >= KindSpan && k <= KindHold }

// Sub-kinds of tombstone, retention and hold entries.
const (
	TombstoneErasure uint8 = 1 // payloads erased on request
	TombstoneExpiry  uint8 = 2 // payloads whose retention period ended
	RetentionRules   uint8 = 1 // a tenant's rules as set
	HoldPlaced       uint8 = 1
	HoldReleased     uint8 = 2
)

// AccessOutcome is the sub-kind of an access entry.
type AccessOutcome uint8

const (
	// AccessAllowed: the request was authorised and succeeded.
	AccessAllowed AccessOutcome = 1
	// AccessDenied: the request was refused: no valid key, or a role or
	// tenant that may not.
	AccessDenied AccessOutcome = 2
	// AccessFailed: the request was authorised but failed.
	AccessFailed AccessOutcome = 3
)

func (o AccessOutcome) String() string {
	switch o {
	case AccessAllowed:
		return "allowed"
	case AccessDenied:
		return "denied"
	case AccessFailed:
		return "failed"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// ValidSubKind reports whether sub is a valid sub-kind of entry kind k.
func ValidSubKind(k Kind, sub uint8) bool {
	switch k {
	case KindSpan:
		return sub >= 1 && sub <= maxSpanKind
	case KindVersion:
		return VersionKind(sub).valid()
	case KindAccess:
		return sub >= uint8(AccessAllowed) && sub <= uint8(AccessFailed)
	case KindTombstone:
		return sub == TombstoneErasure || sub == TombstoneExpiry
	case KindRetention:
		return sub == RetentionRules
	case KindHold:
		return sub == HoldPlaced || sub == HoldReleased
	}
	return false
}

// VersionKind is what a version entry describes. Its numeric values are
// those of veritrace.v1.VersionKind.
type VersionKind uint8

const (
	VersionPrompt   VersionKind = 1
	VersionPolicy   VersionKind = 2
	VersionPipeline VersionKind = 3
)

func (k VersionKind) String() string {
	switch k {
	case VersionPrompt:
		return "prompt"
	case VersionPolicy:
		return "policy"
	case VersionPipeline:
		return "pipeline"
	}
	return fmt.Sprintf("version-kind(%d)", uint8(k))
}

func (k VersionKind) valid() bool { return k >= VersionPrompt && k <= VersionPipeline }

// maxSpanKind is the largest span kind value (veritrace.v1.SpanKind).
const maxSpanKind = 8

// Refs are the ids of the prompt, policy and pipeline versions an entry
// references, indexed by VersionKind-1. A zero id means no reference.
type Refs [3][32]byte

// Ref returns the reference of kind k.
func (r *Refs) Ref(k VersionKind) [32]byte { return r[k-1] }

// Limits of header fields.
const (
	MaxTenantLen         = 63
	MaxRetentionClassLen = 32
)

// Header is the hashed part of an entry. It holds no personal data.
type Header struct {
	Kind Kind
	// SubKind is the span kind of a span entry and the version kind of a
	// version entry.
	SubKind        uint8
	Tenant         string
	Index          uint64
	AppendedAt     time.Time // UTC, nanosecond precision
	TraceID        [16]byte
	SpanID         [8]byte
	ParentSpanID   [8]byte
	Refs           Refs
	RetentionClass string
	PrevLeafHash   tlog.Hash
	Commitment     tlog.Hash
}

// fixed part of the encoding, without the tenant and retention class bytes.
const headerFixedLen = 4 + 8 + 8 + 16 + 8 + 8 + 3*32 + 1 + 32 + 32

// HeaderSize is the length of the canonical encoding of a header whose
// tenant and retention class have the given lengths.
func HeaderSize(tenantLen, classLen int) int { return headerFixedLen + tenantLen + classLen }

// Marshal returns the canonical encoding of h (docs/FORMAT.md). It does not
// validate h; Append only marshals headers it built itself.
func (h *Header) Marshal() []byte {
	return h.AppendMarshal(make([]byte, 0, HeaderSize(len(h.Tenant), len(h.RetentionClass))))
}

// AppendMarshal appends the canonical encoding of h to b (as Marshal).
func (h *Header) AppendMarshal(b []byte) []byte {
	b = append(b, FormatVersion, byte(h.Kind), h.SubKind, byte(len(h.Tenant)))
	b = append(b, h.Tenant...)
	b = binary.BigEndian.AppendUint64(b, h.Index)
	b = binary.BigEndian.AppendUint64(b, uint64(h.AppendedAt.UnixNano()))
	b = append(b, h.TraceID[:]...)
	b = append(b, h.SpanID[:]...)
	b = append(b, h.ParentSpanID[:]...)
	for i := range h.Refs {
		b = append(b, h.Refs[i][:]...)
	}
	b = append(b, byte(len(h.RetentionClass)))
	b = append(b, h.RetentionClass...)
	b = append(b, h.PrevLeafHash[:]...)
	b = append(b, h.Commitment[:]...)
	return b
}

// ErrMalformedHeader is returned (wrapped) by ParseHeader.
var ErrMalformedHeader = errors.New("malformed header")

// ParseHeader decodes a canonical header. It accepts exactly the bytes that
// Marshal produces for a valid header and nothing else, so that a header
// has one encoding.
func ParseHeader(b []byte) (*Header, error) {
	bad := func(format string, args ...any) (*Header, error) {
		return nil, fmt.Errorf("%w: %s", ErrMalformedHeader, fmt.Sprintf(format, args...))
	}
	if len(b) < 4 {
		return bad("%d bytes, too short", len(b))
	}
	if b[0] != FormatVersion {
		return bad("format version %d, want %d", b[0], FormatVersion)
	}
	h := &Header{Kind: Kind(b[1]), SubKind: b[2]}
	if !h.Kind.valid() {
		return bad("unknown entry kind %d", b[1])
	}
	if !ValidSubKind(h.Kind, h.SubKind) {
		return bad("unknown sub-kind %d of a %s entry", h.SubKind, h.Kind)
	}
	tl := int(b[3])
	if len(b) < headerFixedLen+tl {
		return bad("%d bytes, too short", len(b))
	}
	p := b[4:]
	h.Tenant = string(p[:tl])
	if err := ValidateTenant(h.Tenant); err != nil {
		return bad("%v", err)
	}
	p = p[tl:]
	h.Index = binary.BigEndian.Uint64(p)
	h.AppendedAt = time.Unix(0, int64(binary.BigEndian.Uint64(p[8:]))).UTC()
	p = p[16:]
	p = p[copy(h.TraceID[:], p):]
	p = p[copy(h.SpanID[:], p):]
	p = p[copy(h.ParentSpanID[:], p):]
	for i := range h.Refs {
		p = p[copy(h.Refs[i][:], p):]
	}
	rl := int(p[0])
	p = p[1:]
	if len(p) != rl+64 {
		return bad("retention class of %d bytes and %d bytes left, want %d", rl, len(p), rl+64)
	}
	h.RetentionClass = string(p[:rl])
	if err := ValidateRetentionClass(h.RetentionClass); err != nil {
		return bad("%v", err)
	}
	p = p[rl:]
	p = p[copy(h.PrevLeafHash[:], p):]
	copy(h.Commitment[:], p)
	return h, nil
}

// LeafHash is the RFC 6962 leaf hash of a canonical header:
// SHA-256(0x00 || header).
func LeafHash(header []byte) tlog.Hash { return tlog.RecordHash(header) }

const (
	commitmentDomain = "veritrace/payload/v1\x00"
	versionIDDomain  = "veritrace/version/v1\x00"
)

// SaltSize is the size of a payload commitment salt.
const SaltSize = 32

// Commitment is the salted commitment a header holds to its payload:
// SHA-256("veritrace/payload/v1" || 0x00 || salt || payload).
func Commitment(salt, payload []byte) tlog.Hash {
	h := sha256.New()
	h.Write([]byte(commitmentDomain))
	h.Write(salt)
	h.Write(payload)
	var out tlog.Hash
	h.Sum(out[:0])
	return out
}

// VersionID is the id of a registered version: SHA-256 over
// "veritrace/version/v1" || 0x00 || kind (u8) || u32 len || name ||
// u32 len || label || u32 len || media type || u64 len || content.
func VersionID(kind VersionKind, name, label, mediaType string, content []byte) [32]byte {
	h := sha256.New()
	var buf []byte
	buf = append(buf, versionIDDomain...)
	buf = append(buf, byte(kind))
	for _, s := range []string{name, label, mediaType} {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
		buf = append(buf, s...)
	}
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(content)))
	h.Write(buf)
	h.Write(content)
	var id [32]byte
	h.Sum(id[:0])
	return id
}

// ValidateTenant reports whether name is a valid tenant name: 1 to 63
// characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit.
func ValidateTenant(name string) error {
	return validateName("tenant", name, MaxTenantLen)
}

// ValidateRetentionClass reports whether c is a valid retention class name
// (same alphabet as tenants, at most 32 characters).
func ValidateRetentionClass(c string) error {
	return validateName("retention class", c, MaxRetentionClassLen)
}

func validateName(what, s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%s must be 1 to %d characters", what, max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return fmt.Errorf("%s %q: only a-z, 0-9, '.', '_', '-' allowed, starting with a letter or digit", what, s)
		}
	}
	return nil
}
