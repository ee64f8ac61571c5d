#!/usr/bin/env bash
# Install what flowclass needs to build and test on Debian: libpcap (the
# `pcap` crate links it) and tshark (the oracle of the parity test).
# Idempotent: skips apt when both are already installed.
set -euo pipefail
if dpkg -s libpcap-dev tshark >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y libpcap-dev tshark
