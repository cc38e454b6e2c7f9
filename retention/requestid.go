package retention

// RequestIDSyntax is what a request id (an erasure's, a sweep's, a hold's) is made
// of, as ValidRequestID checks it.
const RequestIDSyntax = "1 to 64 of A-Z a-z 0-9 - _ ."

// ValidRequestID reports whether id is a request id (RequestIDSyntax): a
// client can refuse any other before it sends a request.
func ValidRequestID(id string) bool { return validRequestID(id) }
