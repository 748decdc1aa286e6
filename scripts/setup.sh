#!/usr/bin/env bash
# Installs everything the build, the demo and the tests need. Idempotent: a second run changes
# nothing. Needs root (or sudo) only when a Debian package is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# Debian packages: test oracles (qemu-img/qemu-io, qemu-system-x86_64 for side-by-side runs,
# iasl for ACPI tables), socket tools the tests drive, toolchain bits for the test guests and for
# libslirp-sys.
pkgs=(qemu-system-x86 qemu-utils socat telnet netcat-openbsd expect tmux acpica-tools
      libslirp-dev libglib2.0-dev pkg-config gcc make binutils busybox-static cpio util-linux bc)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# Python clients used by the conformance tests (QEMU's qemu.qmp, which also brings qmp-shell).
if [ ! -x "$root/.venv/bin/python" ]; then
  python3 -m venv "$root/.venv"
fi
if ! "$root/.venv/bin/python" -c 'import qemu.qmp' 2>/dev/null; then
  "$root/.venv/bin/pip" install -q 'qemu.qmp==0.0.6'
fi
