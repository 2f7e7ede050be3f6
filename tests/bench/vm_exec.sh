#!/usr/bin/env bash
# What the vm target costs: `corral exec -- /bin/true` under policies/vm_isolated.toml (a QEMU
# boot, the command, the power-off) against the same under policies/default.toml (the local
# sandbox), and against the floor: QEMU booting the same kernel with no initramfs at all, until
# the kernel panics for want of a root and QEMU exits (no corral, no init, no 9p).
# Usage: tests/bench/vm_exec.sh [CORRAL]   (needs hyperfine; RUNS, default 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
corral=$(realpath "${1:-build/launcher/corral}")
export runs=${RUNS:-10}
work=$(mktemp -d /tmp/corral-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
git init -q "$work/ws"
vmdir=${CORRAL_VM_DIR:-$(dirname "$corral")/../vm}
accel=tcg
"$corral" doctor | grep -q 'target vm): .*, KVM$' && accel=kvm
[ "$accel" = kvm ] && cpu=host || cpu=max

cpus=$(nproc)
[ "$cpus" -gt 8 ] && cpus=8  # as many vCPUs as corral gives the guest
floor="qemu-system-x86_64 -nodefaults -no-user-config -nographic -no-reboot -M q35 -m 608 -smp $cpus"
floor+=" -accel $accel -cpu $cpu -nic none -kernel $vmdir/vmlinuz"
floor+=" -append 'console=ttyS0 quiet loglevel=3 panic=-1' -serial null"
hyperfine -N --warmup 1 --runs "$runs" --export-csv "$work/times.csv" \
  -n vm "$corral exec --policy policies/vm_isolated.toml --cwd $work/ws -- /bin/true" \
  -n local "$corral exec --policy policies/default.toml --cwd $work/ws -- /bin/true" \
  -n floor "$floor" >/dev/null

awk -F, -v user="$(id -un)" -v accel="$accel" '
  NR == 2 { vm = $4 }
  NR == 3 { local_ = $4 }
  NR == 4 { floor = $4 }
  END {
    printf "corral exec of /bin/true, median wall time, as %s, %s (%s runs each)\n", user, accel, ENVIRON["runs"]
    printf "  target vm (QEMU boot, init, 9p, power-off) : %8.0f ms\n", vm * 1000
    printf "  target local (namespaces)                   : %8.1f ms\n", local_ * 1000
    printf "  floor: QEMU booting the kernel to its panic : %8.0f ms\n", floor * 1000
    printf "  vm / floor = %.2fx, vm / local = %.0fx\n", vm / floor, vm / local_
  }' "$work/times.csv"
