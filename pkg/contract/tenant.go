package contract

// MaxTenantLen bounds tenant ids, as Mimir does.
const MaxTenantLen = 150

// ValidTenant reports whether s can be a tenant id: non-empty, bounded,
// printable ASCII without the separators that would confuse a path, a
// header or a series selector (/ | \\), and not "." or "..", since the
// ruler and the reporter name directories after tenants.
func ValidTenant(s string) bool {
	if s == "" || len(s) > MaxTenantLen || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r > 0x7e || r == '/' || r == '|' || r == '\\' {
			return false
		}
	}
	return true
}
