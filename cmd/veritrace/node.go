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

// readNodeName returns the name of the node serving dir without changing
// anything on disk: flag if given, else the name in dir/node. A missing
// file is no error (missing is true: storeNodeName makes it); a file that
// holds no valid name is, so that start-up refuses it before it creates
// keys or a ledger.
func readNodeName(flag, dir string) (name string, missing bool, err error) {
	if flag != "" {
		return flag, false, nil
	}
	path := filepath.Join(dir, NodeFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("node name: %w", err)
	}
	name = strings.TrimSpace(string(b))
	if !validNodeName(name) {
		return "", false, fmt.Errorf("%s: %q is not a node name (1 to %d of A-Z a-z 0-9 . _ -): fix or remove it", path, name, maxNodeName)
	}
	return name, false, nil
}

// storeNodeName makes dir/node, missing at start-up, with a new name: the
// host's name and eight random hex digits (unique even for two directories
// on one host). Another process that wrote it meanwhile wins: its name is
// returned.
func storeNodeName(dir string) (string, error) {
	name := newNodeName()
	err := ledger.WriteFileDurably(filepath.Join(dir, NodeFile), []byte(name+"\n"), 0o644, false)
	if errors.Is(err, fs.ErrExist) {
		name, missing, err := readNodeName("", dir)
		if err == nil && missing {
			err = fmt.Errorf("node name: %s was made and removed meanwhile", filepath.Join(dir, NodeFile))
		}
		return name, err
	}
	if err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	return name, nil
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
