package retention

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCheckLimits(t *testing.T) {
	base := DefaultPolicy()
	rule := func(class string, days int) Rule { return Rule{Class: class, Days: days, Mode: Governance} }
	with := func(rules ...Rule) Policy {
		return Policy{FloorDays: 1, Default: rule(DefaultClass, 200), Rules: rules}
	}
	many := make([]Rule, MaxRules+1)
	for i := range many {
		many[i] = rule(fmt.Sprintf("c%d", i), 400)
	}
	attrs := func(n, nameLen, valueLen int) Match {
		m := Match{Attributes: map[string]string{}}
		for i := 0; i < n; i++ {
			m.Attributes[fmt.Sprintf("%0*d", nameLen, i)] = strings.Repeat("v", valueLen)
		}
		return m
	}
	for _, tt := range []struct {
		name  string
		next  Policy
		want  error
		field string
	}{
		{"negative days", with(rule("a", -1)), ErrBadPolicy, "policy.rules[0].days"},
		{"zero default days", Policy{FloorDays: 1, Default: rule(DefaultClass, 0)}, ErrBadPolicy, "policy.default_rule.days"},
		{"too long", with(rule("a", MaxDays+1)), ErrBadPolicy, "policy.rules[0].days"},
		{"floor too high", Policy{FloorDays: MaxDays + 1, Default: rule(DefaultClass, 200)}, ErrBadPolicy, "policy.floor_days"},
		{"below floor", Policy{FloorDays: 300, Default: rule(DefaultClass, 200)}, ErrBelowFloor, "policy.default_rule"},
		{"too many rules", with(many...), ErrBadPolicy, "policy.rules"},
		{"most rules", with(many[:MaxRules]...), nil, ""},
		{"too many attributes", with(Rule{Class: "a", Days: 400, Mode: Governance, Match: attrs(MaxMatchAttributes+1, 2, 1)}), ErrBadPolicy, "policy.rules[0].match.attributes"},
		{"longest attributes", with(Rule{Class: "a", Days: 400, Mode: Governance, Match: attrs(MaxMatchAttributes, MaxAttributeNameBytes, MaxAttributeValueBytes)}), nil, ""},
		{"long attribute name", with(Rule{Class: "a", Days: 400, Mode: Governance, Match: attrs(1, MaxAttributeNameBytes+1, 1)}), ErrBadPolicy, "policy.rules[0].match.attributes"},
		{"long attribute value", with(Rule{Class: "a", Days: 400, Mode: Governance, Match: attrs(1, 1, MaxAttributeValueBytes+1)}), ErrBadPolicy, "policy.rules[0].match.attributes"},
		{"repeated kind", with(Rule{Class: "a", Days: 400, Mode: Governance, Match: Match{Kinds: []uint8{1, 1}}}), ErrBadPolicy, "policy.rules[0].match.kinds[1]"},
	} {
		err := Check(&base, &tt.next, "x")
		if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) || (err != nil && !strings.Contains(err.Error(), tt.field)) {
			t.Errorf("Check(%s) = %v, want %v naming %q", tt.name, err, tt.want, tt.field)
		}
	}
}
