//go:build tools
// +build tools

// This file is never compiled (the `tools` tag is never set). It makes bpf2go, which
// `go generate` runs, a dependency of the module, so `go mod tidy` records its go.sum
// entries and `go run github.com/cilium/ebpf/cmd/bpf2go` works offline afterwards.
package main

import _ "github.com/cilium/ebpf/cmd/bpf2go"
