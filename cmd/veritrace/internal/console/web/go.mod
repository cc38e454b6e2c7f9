// This directory is the console's npm project, not Go. This file makes it
// a module of its own so that `go build ./...`, `go vet ./...` and
// `go test ./...` of the main module never descend into node_modules
// (npm packages sometimes ship .go files).
module github.com/veritrace/veritrace/cmd/veritrace/internal/console/web

go 1.26.8
