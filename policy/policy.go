// Package policy decides who may do what in Veritrace. It is pure: no I/O,
// no clock, no storage. The RPC layer asks it about every request and does
// what it says.
//
// A principal is an API key with one role and a set of tenants. A role
// grants permissions; a permission is scoped either to a tenant (the key
// must be bound to it) or to the whole server.
package policy

import (
	"errors"
	"fmt"
	"slices"
)

// Role is what a principal is for.
type Role string

const (
	// Ingester: apps. Append spans, register and read versions, read
	// checkpoints and proofs.
	Ingester Role = "ingester"
	// Auditor: read entries with their payloads, versions, checkpoints,
	// proofs and the access log; export evidence.
	Auditor Role = "auditor"
	// ComplianceOfficer: everything an auditor may, plus erasure, legal
	// holds and retention rules.
	ComplianceOfficer Role = "compliance_officer"
	// Admin: manage API keys and tenants, read the access log. Admins do not
	// read payloads.
	Admin Role = "admin"
)

// Roles lists every role.
var Roles = []Role{Ingester, Auditor, ComplianceOfficer, Admin}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !slices.Contains(Roles, r) {
		return "", fmt.Errorf("unknown role %q: want one of ingester, auditor, compliance_officer, admin", s)
	}
	return r, nil
}

// Permission is a right a role may have.
type Permission string

const (
	AppendSpans      Permission = "append_spans"      // tenant
	RegisterVersions Permission = "register_versions" // tenant
	ReadVersions     Permission = "read_versions"     // tenant
	ReadProofs       Permission = "read_proofs"       // tenant: checkpoints and proofs
	ReadEntries      Permission = "read_entries"      // tenant: entries with decrypted payloads
	ReadAccessLog    Permission = "read_access_log"   // tenant
	ExportEvidence   Permission = "export_evidence"   // tenant
	EraseData        Permission = "erase_data"        // tenant
	ManageHolds      Permission = "manage_holds"      // tenant
	ManageRetention  Permission = "manage_retention"  // tenant
	ManageKeys       Permission = "manage_keys"       // server
	ManageTenants    Permission = "manage_tenants"    // server
	ReadOwnKey       Permission = "read_own_key"      // server: describe the caller's own key (WhoAmI)
)

// Global reports whether a permission concerns the whole server rather
// than one tenant.
func (p Permission) Global() bool { return p == ManageKeys || p == ManageTenants || p == ReadOwnKey }

var grants = map[Role][]Permission{
	Ingester: {AppendSpans, RegisterVersions, ReadVersions, ReadProofs, ReadOwnKey},
	Auditor:  {ReadVersions, ReadProofs, ReadEntries, ReadAccessLog, ExportEvidence, ReadOwnKey},
	ComplianceOfficer: {ReadVersions, ReadProofs, ReadEntries, ReadAccessLog, ExportEvidence,
		EraseData, ManageHolds, ManageRetention, ReadOwnKey},
	Admin: {ManageKeys, ManageTenants, ReadAccessLog, ReadProofs, ReadOwnKey},
}

// Permissions returns the permissions of a role.
func (r Role) Permissions() []Permission { return slices.Clone(grants[r]) }

// Can reports whether the role grants the permission.
func (r Role) Can(p Permission) bool { return slices.Contains(grants[r], p) }

// AllTenants, in a principal's tenant list, binds it to every tenant.
const AllTenants = "*"

// Principal is an authenticated API key.
type Principal struct {
	KeyID   string
	Role    Role
	Tenants []string // tenant names, or AllTenants
}

// BoundTo reports whether the principal may act on the tenant at all.
func (p *Principal) BoundTo(tenant string) bool {
	return slices.Contains(p.Tenants, AllTenants) || slices.Contains(p.Tenants, tenant)
}

// DefaultTenant is the tenant a request names when it names none: the
// principal's only tenant if it has exactly one, else fallback.
func (p *Principal) DefaultTenant(fallback string) string {
	if len(p.Tenants) == 1 && p.Tenants[0] != AllTenants {
		return p.Tenants[0]
	}
	return fallback
}

// Denial errors, returned by Decide.
var (
	// ErrRoleDenied: the role lacks the permission.
	ErrRoleDenied = errors.New("role does not grant this")
	// ErrTenantDenied: the key is not bound to the tenant. The message must
	// not say whether the tenant exists.
	ErrTenantDenied = errors.New("key is not bound to this tenant")
)

// Decide says whether the principal may use the permission on the tenant
// (ignored for global permissions): nil, ErrRoleDenied or ErrTenantDenied.
// The role is checked first, so a denial never depends on which tenants
// exist.
func Decide(p *Principal, perm Permission, tenant string) error {
	if !p.Role.Can(perm) {
		return fmt.Errorf("%w: %s may not %s", ErrRoleDenied, p.Role, perm)
	}
	if !perm.Global() && !p.BoundTo(tenant) {
		return ErrTenantDenied
	}
	return nil
}

// ValidateBinding checks the tenants a new key is bound to:
// at least one, no duplicates, and AllTenants only alone.
func ValidateBinding(tenants []string) error {
	if len(tenants) == 0 {
		return errors.New("a key must be bound to at least one tenant (or \"*\" for all)")
	}
	for i, t := range tenants {
		if t == AllTenants && len(tenants) > 1 {
			return errors.New(`"*" binds a key to every tenant and cannot be combined with names`)
		}
		if slices.Contains(tenants[:i], t) {
			return fmt.Errorf("tenant %q listed twice", t)
		}
	}
	return nil
}
