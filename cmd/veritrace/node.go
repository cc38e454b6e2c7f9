package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/veritrace/veritrace/ledger"
)

// NodeFile holds, in the data directory, the name of the node serving it
// when --node is not given: written at the first start that needs it,
// read at every later one.
const NodeFile = "node"

// maxNodeName is the longest node name.
const maxNodeName = 64

// validNodeName reports whether name may name a node: 1 to 64 of A-Z a-z
// 0-9 . _ - (it is stored in plan leases and shown in logs).
func validNodeName(name string) bool {
	if name == "" || len(name) > maxNodeName {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// nodeName returns the name of the node serving dir: flag if given, else
// the name in dir/node, made at the first start as the host's name and
// eight random hex digits (unique even for two directories on one host).
func nodeName(flag, dir string) (name string, created bool, err error) {
	if flag != "" {
		return flag, false, nil
	}
	path := filepath.Join(dir, NodeFile)
	for range 2 {
		b, err := os.ReadFile(path)
		if err == nil {
			name := strings.TrimSpace(string(b))
			if !validNodeName(name) {
				return "", false, fmt.Errorf("%s: %q is not a node name (1 to %d of A-Z a-z 0-9 . _ -): fix or remove it", path, name, maxNodeName)
			}
			return name, false, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", false, fmt.Errorf("node name: %w", err)
		}
		name := newNodeName()
		err = ledger.WriteFileDurably(path, []byte(name+"\n"), 0o644, false)
		if err == nil {
			return name, true, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", false, fmt.Errorf("node name: %w", err)
		}
		// Written meanwhile: read it.
	}
	return "", false, fmt.Errorf("node name: %s could not be read", path)
}

// newNodeName is the host's name (its characters outside a node name's
// replaced by "-", at most 40) and eight random hex digits.
func newNodeName() string {
	host, _ := os.Hostname()
	host = strings.Map(func(r rune) rune {
		if r < 128 && validNodeName(string(r)) {
			return r
		}
		return '-'
	}, host)
	if len(host) > 40 {
		host = host[:40]
	}
	if host == "" {
		host = "node"
	}
	b := make([]byte, 4)
	rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}
