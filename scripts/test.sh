#!/usr/bin/env bash
# The project's test command (README "Tests"): set up, check formatting,
# lints and API docs, run every test. Tests that need ../shared/corpus or tshark fail
# under CI=true when those are missing and skip with a reason otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked
cargo test --release --locked -- --nocapture
