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
# (crates/rvs/tests/netns_bench.rs, a smoke test). tshark: Wireshark's IPVS
# sync dissector, the independent decoder of crates/rvs-wire/tests/
# tshark_sync.rs (its debconf question, whether non-root users may capture,
# is answered no, the default, so the install asks nothing).
echo "wireshark-common wireshark-common/install-setuid boolean false" |
    debconf-set-selections 2>/dev/null || true
ensure_packages clang libbpf-dev iproute2 socat curl apache2-utils python3 \
    nftables openssl haproxy nginx-light libnginx-mod-stream wrk util-linux tshark \
    prometheus tmux perl libsocket6-perl libio-socket-inet6-perl libwww-perl \
    libmailtools-perl iptables bird2 dnsmasq-base
# As root the packages above are installed, so the tshark and Prometheus
# tests (crates/rvsd/tests/netns_metrics.rs: a real Prometheus scrapes
# rvsd --metrics; promtool checks the text) must not skip. tmux: the
# terminal of crates/rvs/tests/netns_top.rs (rvs top). libsocket6-perl,
# libio-socket-inet6-perl, libwww-perl (LWP::UserAgent, Net::HTTP, URI),
# libmailtools-perl (Mail::Send): the modules ldirectord loads when it
# starts (below); a machine that had them from other packages hid the
# last two.
# bird2: the BGP speaker of crates/rvs/tests/netns_ecmp.rs (rvs lab ecmp).
# dnsmasq-base: the real DNS servers of DNS_CHECK's test
# (crates/rvs/tests/netns_health.rs; RVS_REQUIRE_KEEPALIVED makes it run).
# keepalived (VRRP only) moves the VIP in crates/rvsd/tests/netns_sync.rs
# (wrk, above, is the HTTP load across the move);
# not its Recommends: the kernel's ipvsadm.
ensure_packages --no-recommends keepalived
# frr: the directors' other BGP speaker in crates/rvs/tests/netns_ecmp.rs
# (rvs lab ecmp --speaker frr runs zebra, staticd, bgpd and bfdd per
# namespace from /usr/lib/frr with dist/bgp/frr-director.conf). Not its
# Recommends (frr-pythontools); its service is not started (ensure_packages'
# policy-rc.d; /etc/frr/daemons ships with every daemon off).
ensure_packages --no-recommends frr
if [ "$(id -u)" = 0 ]; then
    export RVS_REQUIRE_TSHARK=1 RVS_REQUIRE_PROMETHEUS=1 RVS_REQUIRE_KEEPALIVED=1 \
        RVS_REQUIRE_BIRD=1 RVS_REQUIRE_FRR=1
fi
# ldirectord (crates/rvs/tests/netns_ldirectord.rs): Debian's script,
# extracted from its package rather than installed (the package depends on
# the kernel's ipvsadm, which would take /usr/sbin/ipvsadm); its perl
# modules come from the packages above.
ld_root=${TMPDIR:-/tmp}/rvs-test-ldirectord
if [ "$(id -u)" = 0 ] && [ ! -f "$ld_root/usr/sbin/ldirectord" ]; then
    ld_tmp=$(mktemp -d)
    if (cd "$ld_tmp" && { apt-get download ldirectord >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get download ldirectord >/dev/null; }; }); then
        dpkg-deb -x "$ld_tmp"/ldirectord_*.deb "$ld_root"
    fi
    rm -rf "$ld_tmp"
fi
if [ -f "$ld_root/usr/sbin/ldirectord" ]; then
    export RVS_LDIRECTORD=$ld_root/usr/sbin/ldirectord
fi
if [ "$(id -u)" = 0 ]; then export RVS_REQUIRE_LDIRECTORD=1; fi
# The control-plane security tests run clients as nobody, who cannot use a
# python under /root (pyenv): Debian's own /usr/bin/python3.
[ -x /usr/bin/python3 ] || ensure_packages python3-minimal

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
# The end-to-end suites of the data plane and sessions run twice: with
# rvsd's default XDP fast path (RVSD_FAST_PATH unset), then with it the
# other way (RVSD_FAST_PATH=off: every packet through the engine). The
# suites pass RVSD_FAST_PATH on to every rvsd they start, and with it
# on/all they fail unless the fast path really sends somewhere (their veth
# peers are in NAPI mode; netns_ipvs_selftest's reproduction of the
# kernel's ipvs.sh keeps the script's pure defaults, where it may send
# nowhere, and says so). rvsd's own fast-path tests
# (crates/rvsd/tests/netns_fastpath.rs) set --fast-path themselves.
fast_path_suites=(-p rvs --test netns_lab --test netns_sessions
    -p rvsd --test netns_dataplane --test netns_dataplane_extra
    --test netns_packet --test netns_ipvs_selftest)
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --profile ci
    echo "== data-plane and session tests with the fast path off"
    RVSD_FAST_PATH=off cargo nextest run --locked --profile ci "${fast_path_suites[@]}"
else
    cargo test --workspace --locked
    echo "== data-plane and session tests with the fast path off"
    RVSD_FAST_PATH=off cargo test --locked "${fast_path_suites[@]}"
fi
echo "== doc tests"
cargo test --workspace --doc --locked
echo "== Debian package"
# Builds the package of the test build above, lints it, and installs, uses
# and purges it in throwaway roots (scripts/test-package.sh; about a minute).
./scripts/test-package.sh
echo "== benches compile"
cargo bench --workspace --no-run --locked
