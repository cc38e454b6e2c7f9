// Package policy decides who may do what in Veritrace. It is pure: no I/O,
// no clock, no storage. The RPC layer asks it about every request and does
// what it says.
//
// A principal is an API key with one role and a set of tenants. A role
// grants permissions; a permission is scoped either to a tenant (the key
// must be bound to it) or to the whole server.
//
// Admins are confined to their tenants: an admin bound to "*" manages every
// key and tenant; an admin bound to named tenants manages only keys bound
// to some of those tenants (Principal.Covers), and cannot create tenants.
// The reserved system tenant holds the server's own access log: requests
// may read it (keys bound to "*") but never write to it or change its
// rules (ErrSystemTenant).
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
	ManageKeys       Permission = "manage_keys"       // server: keys the admin Covers
	ListTenants      Permission = "list_tenants"      // server: the tenants the admin is bound to
	ManageTenants    Permission = "manage_tenants"    // server: admins bound to "*" only
	ReadOwnKey       Permission = "read_own_key"      // server: describe the caller's own key (WhoAmI)
)

// Global reports whether a permission concerns the whole server rather
// than one tenant.
func (p Permission) Global() bool {
	return p == ManageKeys || p == ListTenants || p == ManageTenants || p == ReadOwnKey
}

// SystemTenant is the reserved tenant of the server's own access log.
const SystemTenant = "system"

// systemRefused are the permissions no request may use on the system
// tenant: it is written only by the server.
var systemRefused = []Permission{AppendSpans, RegisterVersions, EraseData, ManageHolds, ManageRetention}

var grants = map[Role][]Permission{
	Ingester: {AppendSpans, RegisterVersions, ReadVersions, ReadProofs, ReadOwnKey},
	Auditor:  {ReadVersions, ReadProofs, ReadEntries, ReadAccessLog, ExportEvidence, ReadOwnKey},
	ComplianceOfficer: {ReadVersions, ReadProofs, ReadEntries, ReadAccessLog, ExportEvidence,
		EraseData, ManageHolds, ManageRetention, ReadOwnKey},
	Admin: {ManageKeys, ListTenants, ManageTenants, ReadAccessLog, ReadProofs, ReadOwnKey},
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
	return p.ServerWide() || slices.Contains(p.Tenants, tenant)
}

// ServerWide reports whether the principal is bound to every tenant.
func (p *Principal) ServerWide() bool { return slices.Contains(p.Tenants, AllTenants) }

// Covers reports whether the principal's reach includes a key bound to
// tenants: a server-wide principal covers every key, any other only keys
// bound to some of its own tenants (never to AllTenants). Admins create,
// list and revoke only the keys they cover.
func (p *Principal) Covers(tenants []string) bool {
	if p.ServerWide() {
		return true
	}
	if len(tenants) == 0 {
		return false
	}
	for _, t := range tenants {
		if t == AllTenants || !slices.Contains(p.Tenants, t) {
			return false
		}
	}
	return true
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
	// ErrTenantDenied: the key is not bound to this tenant. The message must
	// not say whether the tenant exists.
	ErrTenantDenied = errors.New("key is not bound to this tenant")
	// ErrNotServerWide: the permission needs a key bound to every tenant.
	ErrNotServerWide = errors.New(`only keys bound to every tenant ("*") may do this`)
	// ErrSystemTenant: the request would write to the system tenant.
	ErrSystemTenant = errors.New("the system tenant holds the server's access log; it accepts no appends, versions, holds, retention changes or erasures")
)

// Decide says whether the principal may use the permission on the tenant
// (ignored for global permissions): nil, ErrRoleDenied, ErrTenantDenied,
// ErrNotServerWide or ErrSystemTenant. The role is checked first and the
// binding next, so a denial never depends on which tenants exist.
func Decide(p *Principal, perm Permission, tenant string) error {
	if !p.Role.Can(perm) {
		return fmt.Errorf("%w: %s may not %s", ErrRoleDenied, p.Role, perm)
	}
	switch {
	case perm == ManageTenants && !p.ServerWide():
		return ErrNotServerWide
	case perm.Global():
		return nil
	case !p.BoundTo(tenant):
		return ErrTenantDenied
	case tenant == SystemTenant && slices.Contains(systemRefused, perm):
		return ErrSystemTenant
	}
	return nil
}

// MaxBinding is the most tenants a key may be bound to by name.
const MaxBinding = 100

// ValidateBinding checks the tenants a new key is bound to: one to
// MaxBinding, no duplicates, AllTenants only alone, and never the system
// tenant (keys bound to AllTenants read it). Errors name the tenant's
// position, e.g. "tenants[1]: ...".
func ValidateBinding(tenants []string) error {
	if len(tenants) == 0 {
		return errors.New("tenants: a key must be bound to at least one tenant (or \"*\" for all)")
	}
	if len(tenants) > MaxBinding {
		return fmt.Errorf("tenants: at most %d, got %d", MaxBinding, len(tenants))
	}
	for i, t := range tenants {
		switch {
		case t == AllTenants && len(tenants) > 1:
			return fmt.Errorf(`tenants[%d]: "*" binds a key to every tenant and cannot be combined with names`, i)
		case t == SystemTenant:
			return fmt.Errorf(`tenants[%d]: %q is reserved for the server's access log; keys bound to "*" read it`, i, t)
		case slices.Contains(tenants[:i], t):
			return fmt.Errorf("tenants[%d]: %q listed twice", i, t)
		}
	}
	return nil
}
