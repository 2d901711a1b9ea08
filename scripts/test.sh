#!/usr/bin/env bash
# Run every rvs test: formatting, lints, unit/property tests, doc tests.
# Installs what it needs (idempotently) so it works on a fresh Debian 12 machine.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/packages.sh
# apache2-utils: ab, the lab's load tests (crates/rvs/tests/netns_lab.rs).
# python3: the lab's HTTP servers. nftables: rvsd --io packet's drop table
# and the data-plane tests' counters. openssl: the TLS servers of the HTTPS
# (fwmark) session test. haproxy, nginx-light, libnginx-mod-stream, wrk,
# util-linux (chrt): the contenders and load of `rvs bench --quick`
# (crates/rvs/tests/netns_bench.rs, a smoke test).
ensure_packages clang libbpf-dev iproute2 socat curl apache2-utils python3 \
    nftables openssl haproxy nginx-light libnginx-mod-stream wrk util-linux

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
# rvsd's XDP fast path is off by default (experimental); its own tests
# (crates/rvsd/tests/netns_fastpath.rs) turn it on. Running the lab and
# session suites with RVSD_FAST_PATH=on is not part of CI yet: it showed
# 95 of 100 connections counted in netns_lab_tun_100_requests_stats.
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --profile ci
else
    cargo test --workspace --locked
fi
echo "== doc tests"
cargo test --workspace --doc --locked
echo "== benches compile"
cargo bench --workspace --no-run --locked
