#!/usr/bin/env bash
# Fuzz parse -> validate -> mask (fuzz/fuzz_targets/decode_mask.rs) for a given time.
# Usage: scripts/fuzz.sh [SECONDS]   (default 600)
# Needs cargo-fuzz (installed here if missing). On a stable toolchain, RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz use the sanitizer flags it needs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
seconds=${1:-600}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
export RUSTC_BOOTSTRAP=1
mkdir -p fuzz/corpus/decode_mask
cargo fuzz run decode_mask fuzz/corpus/decode_mask fuzz/seeds -- -max_total_time="$seconds" -max_len=300000 -timeout=10
