package main

import (
	"os"
	"syscall"
)

// ensureLegacyTracefs makes tracefs reachable at /sys/kernel/debug/tracing, the only place
// cilium/ebpf releases before v0.10 (Debian 12 packages v0.9) look for tracepoint IDs.
// Newer releases also look at /sys/kernel/tracing and do not need it. Mounting debugfs
// makes the kernel mount tracefs at its tracing/ directory; the mount outlives the
// program, as mounts made by `mount -t debugfs` do. Failure is left to link.Tracepoint
// to report.
func ensureLegacyTracefs() {
	if _, err := os.Stat("/sys/kernel/debug/tracing/events"); err == nil {
		return
	}
	_ = syscall.Mount("debugfs", "/sys/kernel/debug", "debugfs", 0, "")
}
