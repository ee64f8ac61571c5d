#!/usr/bin/env bash
# Set up, build, and label the bundled accept-queue-overflow sample.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release --locked
./target/release/flowclass "${@:-samples/accept-overflow-drop-shaped.pcap}"
