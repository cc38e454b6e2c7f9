package rpc

// ValidToken reports whether token has the form of an API key token
// ("vtk_" + 16 hex digits + "_" + 43 base64url characters), without
// checking it against any stored key: a client refuses a key file that
// holds anything else before it sends a request.
func ValidToken(token string) bool {
	_, _, err := parseToken(token)
	return err == nil
}
