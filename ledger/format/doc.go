// Package format holds Veritrace's hashed formats: the canonical entry
// header, the payload commitment, version ids, leaf hashes and the signed
// checkpoint text. It has no storage and no server dependency, so that an
// offline verifier can use it alone. docs/FORMAT.md specifies every byte.
package format
