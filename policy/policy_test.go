package policy

import (
	"errors"
	"fmt"
	"testing"
)

func TestDecide(t *testing.T) {
	tests := []struct {
		role   Role
		perm   Permission
		tenant string
		want   error
	}{
		{Ingester, AppendSpans, "acme", nil},
		{Ingester, ReadEntries, "acme", ErrRoleDenied},
		{Ingester, AppendSpans, "other", ErrTenantDenied},
		{Auditor, ReadEntries, "acme", nil},
		{Auditor, AppendSpans, "acme", ErrRoleDenied},
		{Auditor, EraseData, "acme", ErrRoleDenied},
		{ComplianceOfficer, EraseData, "acme", nil},
		{ComplianceOfficer, ReadEntries, "other", ErrTenantDenied},
		{Admin, ManageKeys, "", nil},
		{Admin, ReadEntries, "acme", ErrRoleDenied},
		{Auditor, ManageKeys, "", ErrRoleDenied},
		// Every role may describe its own key, whatever tenant it names.
		{Ingester, ReadOwnKey, "other", nil},
		{Admin, ReadOwnKey, "", nil},
		// The role is judged first: an unbound tenant is not revealed to a
		// role that could not use it anyway.
		{Ingester, ReadEntries, "other", ErrRoleDenied},
		// Admins bound to tenants manage keys (scoped by Covers), list
		// tenants, and never create them.
		{Admin, ListTenants, "", nil},
		{Admin, ManageTenants, "", ErrNotServerWide},
		{Admin, ReadAccessLog, SystemTenant, ErrTenantDenied},
	}
	for _, tt := range tests {
		p := &Principal{KeyID: "k", Role: tt.role, Tenants: []string{"acme"}}
		if got := Decide(p, tt.perm, tt.tenant); !errors.Is(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("Decide(%s, %s, %q) = %v, want %v", tt.role, tt.perm, tt.tenant, got, tt.want)
		}
	}
	all := &Principal{Role: Auditor, Tenants: []string{AllTenants}}
	if err := Decide(all, ReadEntries, "anything"); err != nil {
		t.Errorf("Decide(auditor bound to *) = %v", err)
	}
	// The system tenant is read, never written, even by keys bound to "*".
	for _, tt := range []struct {
		role Role
		perm Permission
		want error
	}{
		{Auditor, ReadAccessLog, nil},
		{Auditor, ReadEntries, nil},
		{Admin, ReadAccessLog, nil},
		{Ingester, ReadProofs, nil},
		{Ingester, AppendSpans, ErrSystemTenant},
		{Ingester, RegisterVersions, ErrSystemTenant},
		{ComplianceOfficer, EraseData, ErrSystemTenant},
		{ComplianceOfficer, ManageHolds, ErrSystemTenant},
		{ComplianceOfficer, ManageRetention, ErrSystemTenant},
		{Admin, ManageTenants, nil},
	} {
		p := &Principal{Role: tt.role, Tenants: []string{AllTenants}}
		if got := Decide(p, tt.perm, SystemTenant); !errors.Is(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("Decide(%s bound to *, %s, system) = %v, want %v", tt.role, tt.perm, got, tt.want)
		}
	}
}

func TestCovers(t *testing.T) {
	acme := &Principal{Role: Admin, Tenants: []string{"acme", "initech"}}
	all := &Principal{Role: Admin, Tenants: []string{AllTenants}}
	for _, tt := range []struct {
		tenants   []string
		acme, all bool
	}{
		{[]string{"acme"}, true, true},
		{[]string{"acme", "initech"}, true, true},
		{[]string{"globex"}, false, true},
		{[]string{"acme", "globex"}, false, true},
		{[]string{AllTenants}, false, true},
		{nil, false, true},
	} {
		if got := acme.Covers(tt.tenants); got != tt.acme {
			t.Errorf("admin of acme, initech: Covers(%v) = %v, want %v", tt.tenants, got, tt.acme)
		}
		if got := all.Covers(tt.tenants); got != tt.all {
			t.Errorf("admin of *: Covers(%v) = %v, want %v", tt.tenants, got, tt.all)
		}
	}
}

func TestEveryRoleIsDefined(t *testing.T) {
	for _, r := range Roles {
		if len(r.Permissions()) == 0 {
			t.Errorf("role %s grants nothing", r)
		}
		if got, err := ParseRole(string(r)); err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v", r, got, err)
		}
	}
	if _, err := ParseRole("root"); err == nil {
		t.Error(`ParseRole("root") = nil error`)
	}
	// Admins never read payloads; auditors never write.
	for _, p := range []Permission{ReadEntries, ExportEvidence} {
		if Admin.Can(p) {
			t.Errorf("admin can %s", p)
		}
	}
	for _, p := range []Permission{AppendSpans, RegisterVersions, EraseData, ManageKeys} {
		if Auditor.Can(p) {
			t.Errorf("auditor can %s", p)
		}
	}
}

func TestValidateBinding(t *testing.T) {
	for _, tt := range []struct {
		tenants []string
		ok      bool
	}{
		{[]string{"a"}, true}, {[]string{"a", "b"}, true}, {[]string{"*"}, true},
		{nil, false}, {[]string{"a", "a"}, false}, {[]string{"*", "a"}, false},
		{[]string{"a", SystemTenant}, false}, {make([]string, MaxBinding+1), false},
	} {
		if err := ValidateBinding(tt.tenants); (err == nil) != tt.ok {
			t.Errorf("ValidateBinding(%v) = %v", tt.tenants, err)
		}
	}
}

func ExampleDecide() {
	app := &Principal{KeyID: "3f2a9c1d5e6b7a80", Role: Ingester, Tenants: []string{"acme"}}
	fmt.Println(Decide(app, AppendSpans, "acme"))
	fmt.Println(Decide(app, ReadEntries, "acme"))
	fmt.Println(Decide(app, AppendSpans, "globex"))
	// Output:
	// <nil>
	// role does not grant this: ingester may not read_entries
	// key is not bound to this tenant
}
