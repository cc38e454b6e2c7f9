package ledger

import (
	"bytes"
	"fmt"
)

// The key database layout (docs/FORMAT.md §6), byte for byte.
func Example_keyLayout() {
	s := keyScope{tenant: 1, day: 20000, class: "default"}
	copy(s.pseudonym[:], bytes.Repeat([]byte{0xaa}, 16))
	id := [16]byte{}
	copy(id[:], bytes.Repeat([]byte{0x01}, 16))
	fmt.Printf("material %x\n", keyMaterialKey(s, id))
	fmt.Printf("scope    %x\n", keyScopeKey(s))
	fmt.Printf("location %x\n", keyLocationKey(id))
	fmt.Printf("bucket   %x\n", bucketPrefix(nsKeyMaterial, s.bucket()))
	fmt.Printf("retired  %x\n", retiredKeyKey(id))
	fmt.Printf("retired  %x\n", retiredBucketKey(s.bucket()))
	fmt.Printf("closed   %x\n", closedTraceKey(1, [16]byte{0x0f: 0x0e}))
	// Output:
	// material 220000000100004e200764656661756c74aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa01010101010101010101010101010101
	// scope    240000000100004e200764656661756c74aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
	// location 2301010101010101010101010101010101
	// bucket   220000000100004e200764656661756c74
	// retired  1b0101010101010101010101010101010101
	// retired  1b020000000100004e200764656661756c74
	// closed   1e000000010000000000000000000000000000000e
}
