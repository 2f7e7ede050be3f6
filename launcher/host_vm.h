// What this host offers the VM and Intel TDX targets, read from /dev, /sys and /proc under a
// root folder (so tests can point it at fixture trees), and from QEMU itself.
#pragma once

#include <string>
#include <vector>

#include "sandbox/host_probe.h"

namespace corral::launcher {

// KVM, TDX host and guest support under `root` ("/" on a real host; there /dev/kvm is also
// opened and asked for its API version and a VM).
std::vector<sandbox::HostCheck> ProbeVirtualization(const std::string& root = "/");

// QEMU: its version, its accelerators and whether it has the tdx-guest object. `qemu` is the
// program to ask (default: qemu-system-x86_64 found in PATH).
sandbox::HostCheck ProbeQemu(const std::string& qemu = "");

}  // namespace corral::launcher
