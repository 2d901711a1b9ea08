#!/usr/bin/env bash
# The main job until the data-plane lab exists: build rvs and play simulated
# DR, NAT and TUN conversations through the engine. Extra arguments go to
# `rvs demo` (e.g. ./scripts/demo.sh nat --scheduler rr --requests 10).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/target-dir.sh
cargo build --release --locked -q -p rvs
release=$(target_dir)/release
exec "$release/rvs" demo "$@"
