package retention

import (
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/veritrace/veritrace/ledger/format"
)

// Mode says who may change a rule, in the spirit of S3 Object Lock.
type Mode string

const (
	// Governance: a compliance officer may shorten the period, with a reason.
	Governance Mode = "governance"
	// Compliance: the period may only be extended; the rule cannot be removed
	// or turned into a governance rule.
	Compliance Mode = "compliance"
)

// Day is the unit of retention periods.
const Day = 24 * time.Hour

// HighRiskFloorDays is the least retention of a tenant marked as a
// high-risk AI system: six months (EU AI Act Art. 19(1) and 26(6)).
const HighRiskFloorDays = 183

// DefaultClass is the class of spans no rule matches.
const DefaultClass = "default"

// Built-in classes, never expired by rules: registered versions, the
// record of rule changes, holds and tombstones. Access records keep at
// least AccessDays (HIPAA 164.316: six years).
const (
	VersionsClass = "versions"
	RecordsClass  = "records"
	AccessClass   = "access"
	AccessDays    = 6 * 366
)

var reservedClasses = []string{DefaultClass, VersionsClass, RecordsClass, AccessClass}

// Match selects spans. Empty fields match anything; all set fields must match.
type Match struct {
	// Kinds are span kinds (veritrace.v1.SpanKind numbers).
	Kinds []uint8 `json:"kinds,omitempty"`
	// Errors: true matches only spans whose status is an error, false only
	// spans whose status is not; unset matches both.
	Errors *bool `json:"errors,omitempty"`
	// Attributes must be present with these string values.
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Rule gives the spans it matches a retention class and period.
type Rule struct {
	// Class is the retention class recorded in the headers of the spans the
	// rule matches; it names the rule.
	Class string `json:"class"`
	Days  int    `json:"days"`
	Mode  Mode   `json:"mode"`
	Match Match  `json:"match"`
}

// Policy is a tenant's retention policy.
type Policy struct {
	// HighRisk marks a high-risk AI system: the floor is at least
	// HighRiskFloorDays.
	HighRisk bool `json:"high_risk"`
	// FloorDays is the least period any rule may have.
	FloorDays int `json:"floor_days"`
	// Default is the rule of spans no other rule matches; its class is
	// always DefaultClass and its Match is ignored.
	Default Rule `json:"default"`
	// Rules are tried in order; the first that matches gives the class.
	Rules []Rule `json:"rules"`
	// Revision counts changes; UpdatedBy, UpdatedAt and Reason describe
	// the last one.
	Revision  int       `json:"revision"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	Reason    string    `json:"reason,omitempty"`
}

// DefaultPolicy is the policy of a tenant that never set one: every span
// kept 183 days, in governance mode.
func DefaultPolicy() Policy {
	return Policy{FloorDays: 1, Default: Rule{Class: DefaultClass, Days: HighRiskFloorDays, Mode: Governance}}
}

// SpanFacts are what rules match on.
type SpanFacts struct {
	Kind       uint8
	Error      bool
	Attributes map[string]string // string-valued attributes
}

// Classify returns the retention class of a span: the class of the first
// rule that matches it, else DefaultClass.
func (p *Policy) Classify(s SpanFacts) string {
	for _, r := range p.Rules {
		if r.Match.matches(s) {
			return r.Class
		}
	}
	return DefaultClass
}

func (m *Match) matches(s SpanFacts) bool {
	if len(m.Kinds) > 0 && !slices.Contains(m.Kinds, s.Kind) {
		return false
	}
	if m.Errors != nil && *m.Errors != s.Error {
		return false
	}
	for k, v := range m.Attributes {
		if s.Attributes[k] != v {
			return false
		}
	}
	return true
}

// Days returns the retention period of a class in days, and false for
// classes that never expire.
func (p *Policy) Days(class string) (int, bool) {
	switch class {
	case VersionsClass, RecordsClass:
		return 0, false
	case AccessClass:
		return max(AccessDays, p.floor()), true
	case DefaultClass:
		return p.Default.Days, true
	}
	for _, r := range p.Rules {
		if r.Class == class {
			return r.Days, true
		}
	}
	// A class whose rule was removed keeps the default period (removing a
	// rule is allowed only where that does not shorten it, see Check).
	return p.Default.Days, true
}

func (p *Policy) floor() int {
	if p.HighRisk {
		return max(p.FloorDays, HighRiskFloorDays)
	}
	return p.FloorDays
}

// Limits of a retention policy (docs/RETENTION.md): every rule and every
// string in a policy is bounded, so that a policy, stored in the tenant's
// state and appended to its log on every change, stays small.
const (
	MaxRules               = 100 // rules besides the default rule
	MaxMatchAttributes     = 8   // attributes a rule matches on
	MaxAttributeNameBytes  = 128
	MaxAttributeValueBytes = 256
	MaxDays                = 100 * 366 // longest period, and highest floor
	MaxReasonBytes         = 1024
)

// Errors of Check. Callers map ErrBelowFloor and ErrLocked to a refused
// precondition and the others to a bad argument.
var (
	ErrBadPolicy  = errors.New("invalid retention policy")
	ErrBelowFloor = errors.New("retention below the tenant's floor")
	ErrLocked     = errors.New("compliance-mode retention cannot be shortened or removed")
	ErrNoReason   = errors.New("a reason is required")
)

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadPolicy, fmt.Sprintf(format, args...))
}

// ValidateRule checks a rule on its own: its class (unless it is the
// default rule), its period (1 to MaxDays), its mode, and its match (span
// kinds 1 to 8, each once; at most MaxMatchAttributes attributes with
// non-empty UTF-8 names of at most MaxAttributeNameBytes and values of at
// most MaxAttributeValueBytes). field names the rule in errors, as in the
// API ("policy.rules[2]"). The floor is Check's.
func ValidateRule(field string, r Rule, isDefault bool) error {
	if !isDefault {
		if err := format.ValidateRetentionClass(r.Class); err != nil {
			return bad("%s.class: %v", field, err)
		}
		if slices.Contains(reservedClasses, r.Class) {
			return bad("%s.class: %q is reserved", field, r.Class)
		}
	} else if r.Class != DefaultClass {
		return bad("%s.class must be %q", field, DefaultClass)
	}
	if r.Mode != Governance && r.Mode != Compliance {
		return bad("%s.mode must be governance or compliance", field)
	}
	if r.Days < 1 || r.Days > MaxDays {
		return bad("%s.days: must be 1 to %d, got %d", field, MaxDays, r.Days)
	}
	for i, k := range r.Match.Kinds {
		if k < 1 || k > 8 {
			return bad("%s.match.kinds[%d]: unknown span kind %d", field, i, k)
		}
		if slices.Contains(r.Match.Kinds[:i], k) {
			return bad("%s.match.kinds[%d]: span kind %d listed twice", field, i, k)
		}
	}
	if n := len(r.Match.Attributes); n > MaxMatchAttributes {
		return bad("%s.match.attributes: %d attributes, at most %d", field, n, MaxMatchAttributes)
	}
	for k, v := range r.Match.Attributes {
		switch {
		case k == "" || len(k) > MaxAttributeNameBytes || !utf8.ValidString(k):
			return bad("%s.match.attributes: names must be UTF-8 of 1 to %d bytes", field, MaxAttributeNameBytes)
		case len(v) > MaxAttributeValueBytes || !utf8.ValidString(v):
			return bad("%s.match.attributes[%q]: values must be UTF-8 of at most %d bytes", field, k, MaxAttributeValueBytes)
		}
	}
	return nil
}

// Check validates a new policy against the current one: each rule
// (ValidateRule), at most MaxRules rules with distinct classes, a floor of
// 1 to MaxDays that every rule keeps. Shortening a governance rule (or the
// floor) needs a reason; a compliance rule can only be extended and never
// removed or turned into a governance rule. Errors name fields as the API
// does ("policy.rules[2].days").
func Check(old, next *Policy, reason string) error {
	if next.FloorDays < 1 || next.FloorDays > MaxDays {
		return bad("policy.floor_days: must be 1 to %d, got %d", MaxDays, next.FloorDays)
	}
	if len(next.Rules) > MaxRules {
		return bad("policy.rules: %d rules, at most %d", len(next.Rules), MaxRules)
	}
	if len(reason) > MaxReasonBytes || !utf8.ValidString(reason) {
		return bad("reason: must be UTF-8 of at most %d bytes", MaxReasonBytes)
	}
	floor := next.floor()
	all := append([]Rule{next.Default}, next.Rules...)
	seen := map[string]bool{}
	for i, r := range all {
		field := fmt.Sprintf("policy.rules[%d]", i-1)
		if i == 0 {
			field = "policy.default_rule"
		}
		if err := ValidateRule(field, r, i == 0); err != nil {
			return err
		}
		if seen[r.Class] {
			return bad("%s.class: %q appears twice", field, r.Class)
		}
		seen[r.Class] = true
		if r.Days < floor {
			return fmt.Errorf("%w: %s keeps %d days, the floor is %d", ErrBelowFloor, field, r.Days, floor)
		}
	}
	shortened := next.FloorDays < old.FloorDays
	for _, o := range append([]Rule{old.Default}, old.Rules...) {
		n, ok := next.rule(o.Class)
		switch {
		case !ok && o.Mode == Compliance:
			return fmt.Errorf("%w: rule %q cannot be removed", ErrLocked, o.Class)
		case !ok:
			shortened = shortened || next.Default.Days < o.Days
		case o.Mode == Compliance && n.Mode != Compliance:
			return fmt.Errorf("%w: rule %q cannot leave compliance mode", ErrLocked, o.Class)
		case o.Mode == Compliance && n.Days < o.Days:
			return fmt.Errorf("%w: rule %q keeps %d days and may only be extended (asked for %d)", ErrLocked, o.Class, o.Days, n.Days)
		case n.Days < o.Days:
			shortened = true
		}
	}
	if shortened && reason == "" {
		return fmt.Errorf("%w: this change shortens retention", ErrNoReason)
	}
	return nil
}

func (p *Policy) rule(class string) (Rule, bool) {
	if class == DefaultClass {
		return p.Default, true
	}
	for _, r := range p.Rules {
		if r.Class == class {
			return r, true
		}
	}
	return Rule{}, false
}
