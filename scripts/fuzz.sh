#!/usr/bin/env bash
# Fuzz the pure middle (fuzz/fuzz_targets/decode_mask.rs: transform::process_with on arbitrary
# bodies; nothing panics, nothing raw leaves) for a given time. scripts/test.sh runs it for
# LOGIN_ETL_FUZZ_SECONDS (30 by default) on every full run.
# Usage: scripts/fuzz.sh [SECONDS]   (default 600)
# cargo-fuzz (installed here if missing) with --sanitizer none works on the stable toolchain: the
# target is safe Rust, and its assertions are the oracle. Its own target dir (fuzz/target: other
# RUSTFLAGS than the main build) and the corpus it grows (fuzz/corpus) are kept between runs; the
# seeds (fuzz/seeds, made by fuzz/make_seeds.py) are in the repository. A failing input is saved
# under fuzz/artifacts/decode_mask/ and the run exits non-zero.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
seconds=${1:-600}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
mkdir -p fuzz/corpus/decode_mask
say "fuzzing decode_mask for ${seconds}s"
# Built outside the checkout, so a fresh clone (CI) reuses the last build instead of spending
# many minutes on the fuzz build's own dependencies (other RUSTFLAGS than the main build).
fuzz_target=${LOGIN_ETL_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/login-etl/fuzz-target}
mkdir -p "$fuzz_target"
cargo fuzz run --sanitizer none --target-dir "$fuzz_target" decode_mask \
  fuzz/corpus/decode_mask fuzz/seeds -- \
  -max_total_time="$seconds" -max_len=300000 -timeout=10 -print_final_stats=1
