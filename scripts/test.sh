#!/usr/bin/env bash
# The whole test suite: installs what the tests need (idempotent), then runs every test of the
# workspace. This is what .ci/run calls.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
cargo build --workspace --bins
cargo test --workspace
# vmmon's integration tests run against QEMU above; run them against our own vmm too.
VMMON_TEST_SERVER=vmm cargo test -p vmmon --tests
