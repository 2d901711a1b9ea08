#!/usr/bin/env bash
# The main job: build rvs and run the seed's LVS topologies in network
# namespaces (NAT, DR, TUN) with real HTTP servers, a real client and rvsd
# forwarding with AF_XDP. Needs root. Installs what it needs (idempotently).
# Arguments go to `rvs lab` (default: all three modes, 10 requests each),
# e.g. ./scripts/lab.sh dr --servers 3 --scheduler wrr --requests 20
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "rvs lab needs root (network namespaces, XDP): run it as root" >&2
    exit 2
fi
. scripts/lib/packages.sh
. scripts/lib/target-dir.sh
# nftables: for rvs lab --io packet (the AF_PACKET fallback).
ensure_packages clang libbpf-dev iproute2 nftables python3
cargo build --release --locked -q -p rvs -p rvsd -p rvsadm
release=$(target_dir)/release
if [ $# -eq 0 ]; then
    for mode in nat dr tun; do
        "$release/rvs" lab "$mode"
        echo
    done
else
    exec "$release/rvs" lab "$@"
fi
