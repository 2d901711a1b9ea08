#!/usr/bin/env bash
# Benchmarks: rvs against the kernel's forwarding, nftables DNAT, HAProxy and
# nginx stream, side by side in private network namespaces (needs root).
# Installs what it needs (idempotently), builds in release mode and runs
# `rvs bench` with the given arguments, e.g.
#   ./scripts/bench.sh              # everything, full mode (under 20 min)
#   ./scripts/bench.sh --quick      # everything, under 2 min
#   ./scripts/bench.sh packet http  # some families
#   RVS_LIVE_FRAMES=off ./scripts/bench.sh packet   # the AF_PACKET generator, as on
#                                   # hosts that refuse live-frames test runs
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "rvs bench needs root (network namespaces, XDP): run it as root" >&2
    exit 2
fi
. scripts/lib/packages.sh
. scripts/lib/target-dir.sh
ensure_packages clang libbpf-dev iproute2 curl apache2-utils python3 nftables \
    haproxy nginx-light libnginx-mod-stream wrk util-linux
cargo build --release --locked -q -p rvs -p rvs-bench -p rvsd -p rvsadm
release=$(target_dir)/release
exec "$release/rvs" bench "$@"
