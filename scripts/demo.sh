#!/usr/bin/env bash
# The main job: set everything up, build, and boot the demo machine with the HMP monitor on stdio
# (sharing the console with the guest's serial port: Ctrl-a c switches, Ctrl-a x quits) and QMP on
# a unix socket (default /tmp/vmm-demo.qmp; try `target/release/vmmon /tmp/vmm-demo.qmp`).
#
# On a host with hardware virtualisation it boots the Debian cloud kernel with a busybox initramfs
# (fetched and built once, cached). Where /dev/kvm is kvm_pvm (nested, emulated), where Linux does
# not boot in useful time, it boots the demo test guest, which prints a banner and waits for the
# power button (`system_powerdown` in the monitor). DEMO_GUEST=linux|test forces the choice.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
qmp=${DEMO_QMP:-/tmp/vmm-demo.qmp}
scripts/setup.sh
cargo build --release -q -p vmm -p vmmon
make -s -C guests
guest=${DEMO_GUEST:-}
if [ -z "$guest" ]; then
  if [ -e /sys/module/kvm_pvm ]; then guest=test; else guest=linux; fi
fi
common=(-m 512 -nographic -serial mon:stdio -qmp "unix:$qmp,server=on,wait=off")
if [ "$guest" = linux ]; then
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/vmm-guest
  rel=$(scripts/guest/get-kernel.sh "$cache")
  [ -f "$cache/initramfs.cpio.gz" ] || KVER=$rel KROOT=$cache scripts/guest/mkinitramfs.sh "$cache/initramfs.cpio.gz"
  echo "demo: Debian kernel $rel; QMP on $qmp; Ctrl-a c for the monitor, Ctrl-a x to quit" >&2
  exec target/release/vmm "${common[@]}" -smp 2 -kernel "$cache/boot/vmlinuz-$rel" \
    -initrd "$cache/initramfs.cpio.gz" -append "console=ttyS0 rdmode=wait"
else
  echo "demo: test guest (this host's KVM is emulated); QMP on $qmp; Ctrl-a c for the monitor, Ctrl-a x to quit" >&2
  exec target/release/vmm "${common[@]}" -kernel guests/out/testguest-pvh.elf -append action=demo
fi
