#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The Debian package, tested (run by scripts/test.sh; needs root). Arguments
# go to scripts/deb.sh (--no-build: package the binaries as they are).
#  1. builds it (scripts/deb.sh; of the test build by default, which
#     `cargo test` has just made: RVS_DEB_PROFILE=release for the release
#     binaries), checks `dpkg-deb -c`/`-I` (binaries, man pages, units,
#     maintainer scripts, conffiles), that lintian finds no error, and that
#     every option the parsers accept is in the man pages;
#  2. installs it into a throwaway root: an overlay of this machine's root
#     in private mount and network namespaces (what dpkg, update-alternatives
#     and deb-systemd-helper change lands in a temporary directory), and
#     checks there that ipvsadm, ipvsadm-save and ipvsadm-restore resolve to
#     rvsadm through alternatives (also as /sbin/ipvsadm, ldirectord's
#     path), the units are enabled, `man -l` renders every page, bash and
#     zsh find the completions, the seed's
#     save/stop/restore/start sequence gives back the same table, and that
#     purging leaves nothing behind;
#  3. under a real systemd: systemd booted as PID 1 of a PID namespace in
#     another throwaway root (its own mount and network namespaces): the
#     package installed enables rvsd and starts nothing; `systemctl start
#     rvsd` returns once forwarding works (a NAT service to a real server
#     in a network namespace answers the first connection); installing
#     the package again (an upgrade) restarts rvsd and a connection open
#     across it goes on; a stalled worker (RVSD_INJECT_STALL, debug
#     builds) gets rvsd restarted by systemd's watchdog; ldirectord finds
#     the package's ipvsadm name and drives rvsd through it; the seed's
#     sequence with `systemctl stop|start ipvsadm` gives the same table;
#     purging stops rvsd and leaves no XDP program, nftables table or
#     pinned object;
#  4. in a second throwaway root, with Debian's real ipvsadm package
#     installed first (apt-get download; skipped if it cannot be fetched):
#     installing rvs does not replace its files or its service name, and
#     once it is removed `update-alternatives --auto ipvsadm` gives the
#     names to rvs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/packages.sh
. scripts/lib/target-dir.sh

if [ "$(id -u)" != 0 ]; then
    echo "test-package.sh needs root (dpkg in a throwaway root, namespaces)" >&2
    exit 2
fi
# bash-completion, zsh: the completions are tried.
ensure_packages dpkg-dev binutils lintian man-db python3 util-linux bash-completion zsh
start=$SECONDS
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

echo "-- build"
deb=$(./scripts/deb.sh --profile "${RVS_DEB_PROFILE:-debug}" "$@")
echo "$deb"

echo "-- contents"
contents=$(dpkg-deb -c "$deb" | awk '{ print $6 }')
for f in ./usr/sbin/rvsd ./usr/sbin/rvsadm ./usr/sbin/rvs ./usr/sbin/rvsadm-save \
    ./usr/sbin/rvsadm-restore ./usr/lib/rvs/ipvsadm-service \
    ./usr/share/man/man8/rvsd.8.gz ./usr/share/man/man8/rvsadm.8.gz \
    ./usr/share/man/man8/rvs.8.gz ./usr/share/man/man5/rvs-rules.5.gz \
    ./lib/systemd/system/rvsd.service ./lib/systemd/system/rvs-ipvsadm.service \
    ./lib/systemd/system/rvs-health.service ./etc/rvs/rvsd.env ./usr/share/doc/rvs/copyright \
    ./usr/share/doc/rvs/examples/ldirectord.cf ./usr/share/doc/rvs/examples/keepalived.conf \
    ./usr/share/bash-completion/completions/rvsadm ./usr/share/bash-completion/completions/rvs \
    ./usr/share/zsh/vendor-completions/_rvsadm ./usr/share/zsh/vendor-completions/_rvs; do
    grep -qxF "$f" <<<"$contents" || fail "$f is not in the package"
done
# The benchmarks (crates/rvs-bench) are not packaged.
! grep -q rvs-bench <<<"$contents" || fail "rvs-bench is in the package"
info=$(dpkg-deb -I "$deb")
for f in postinst prerm postrm conffiles; do
    grep -q " $f " <<<"$info" || fail "no $f in the package"
done
[ "$(dpkg-deb -f "$deb" Package)" = rvs ] || fail "package name"
grep -qx /etc/rvs/rvsd.env <<<"$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" ||
    fail "/etc/rvs/rvsd.env is not a conffile"
grep -q 'update-alternatives --install /usr/sbin/ipvsadm ipvsadm /usr/sbin/rvsadm' \
    <<<"$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst)" ||
    fail "postinst does not install the ipvsadm alternative"

echo "-- lintian"
lintian --fail-on error "$deb" 2>&1 | grep -v 'running with root privileges' || true
lintian --fail-on error "$deb" >/dev/null 2>&1 || fail "lintian reports errors"

echo "-- man pages cover every option"
work=$(mktemp -d /tmp/rvs-deb-test.XXXXXX)
cleanup() {
    # The overlays live in the namespaces of their unshare; only files here.
    [ -n "${RVS_KEEP_TEST_ROOT:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
dpkg-deb -x "$deb" "$work/x"
mkdir "$work/man"
for p in "$work"/x/usr/share/man/man*/*.gz; do
    [ -L "$p" ] || gunzip -c "$p" >"$work/man/$(basename "$p" .gz)"
done
python3 scripts/manpages.py --check-sources "$work/man"

# Run $2 (a script, on stdin of chroot's bash) in a throwaway root: an
# overlay of / with upper dir $work/$1/upper, in new mount and network
# namespaces (rvsd's default control socket @rvsd.ctl is then private).
in_root() {
    local r=$work/$1
    mkdir -p "$r/upper" "$r/work" "$r/merged"
    timeout 600 unshare --mount --net --fork bash -euo pipefail -c '
        r=$1
        mount --make-rprivate /
        mount -t overlay overlay -o "lowerdir=/,upperdir=$r/upper,workdir=$r/work" "$r/merged"
        mount --rbind /proc "$r/merged/proc"
        mount --rbind /dev "$r/merged/dev"
        mount --rbind /sys "$r/merged/sys"
        mount -t tmpfs tmpfs "$r/merged/run"
        mount -t tmpfs tmpfs "$r/merged/tmp"
        cp "$2" "$r/merged/tmp/rvs.deb"
        [ -z "${3:-}" ] || cp "$3" "$r/merged/tmp/ipvsadm.deb"
        exec chroot "$r/merged" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
            LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive bash -euo pipefail -s
    ' in_root "$r" "$deb" "${2:-}"
}

echo "-- install, use and purge in a throwaway root"
in_root plain <<'EOF'
fail() { echo "FAIL (in the throwaway root): $*" >&2; exit 1; }
dpkg -i /tmp/rvs.deb >/dev/null
grep -q '^Status: install ok installed' <<<"$(dpkg -s rvs)" || fail "rvs is not installed"

# Installed again (an upgrade's path: postinst configure with the old
# version): an operator's change to the conffile stays, the rest is as before.
echo 'RVSD_OPTS=--interface eth0' >>/etc/rvs/rvsd.env
dpkg -i /tmp/rvs.deb >/dev/null
grep -qx 'RVSD_OPTS=--interface eth0' /etc/rvs/rvsd.env || fail "the conffile lost its change"
grep -qx /etc/rvs/rvsd.env <<<"$(dpkg-query -W -f '${Conffiles}' rvs | awk '{ print $1 }')" ||
    fail "/etc/rvs/rvsd.env is not a conffile once installed"

# ipvsadm through alternatives, where ldirectord looks.
for n in ipvsadm ipvsadm-save ipvsadm-restore; do
    [ "$(readlink /etc/alternatives/$n)" = /usr/sbin/rvs${n#ipvs} ] || fail "alternative $n"
    [ "$(readlink -f /usr/sbin/$n)" = /usr/sbin/rvsadm ] || fail "/usr/sbin/$n is not rvsadm"
done
grep -qx 'Value: /usr/sbin/rvsadm' <<<"$(update-alternatives --query ipvsadm)" || fail "ipvsadm alternative"
[ -x /sbin/ipvsadm ] && [ "$(readlink -f /sbin/ipvsadm)" = /usr/sbin/rvsadm ] ||
    fail "ldirectord's /sbin/ipvsadm is not rvsadm"
[ "$(ipvsadm -v)" = "ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)" ] ||
    fail "ipvsadm -v"

# Units enabled (not started: no systemd runs here, and postinst starts nothing).
[ -L /etc/systemd/system/multi-user.target.wants/rvsd.service ] || fail "rvsd.service not enabled"
[ "$(readlink /etc/systemd/system/ipvsadm.service)" = /lib/systemd/system/rvs-ipvsadm.service ] ||
    fail "ipvsadm.service is not the alias of rvs-ipvsadm.service"

# The units as systemd reads them (paths, directives).
[ ! -e /etc/systemd/system/multi-user.target.wants/rvs-health.service ] || fail "rvs-health.service enabled"
out=$(systemd-analyze verify /lib/systemd/system/rvsd.service /lib/systemd/system/rvs-ipvsadm.service \
    /lib/systemd/system/rvs-health.service 2>&1) ||
    fail "systemd-analyze verify: $out"
# The installed unit's confinement (crates/rvsd/tests/unit_hardening.rs
# checks dist/rvsd.service the same way): exposure at most 3.0.
out=$(systemd-analyze security --offline=true --no-pager /lib/systemd/system/rvsd.service 2>&1) ||
    fail "systemd-analyze security: $out"
score=$(sed -n 's/.*Overall exposure level for rvsd.service: \([0-9.]*\).*/\1/p' <<<"$out")
echo "rvsd.service: systemd-analyze security exposure ${score:-?} (at most 3.0)"
awk -v s="${score:-99}" 'BEGIN { exit !(s <= 3.0) }' || fail "rvsd.service exposure ${score:-?} > 3.0: $out"

# Every page renders, without warnings (also ipvsadm(8) through alternatives).
for p in /usr/share/man/man8/rvsd.8.gz /usr/share/man/man8/rvsadm.8.gz \
    /usr/share/man/man8/rvs.8.gz /usr/share/man/man5/rvs-rules.5.gz \
    /usr/share/man/man8/ipvsadm.8.gz /usr/share/man/man8/ipvsadm-save.8.gz; do
    out=$(MANWIDTH=80 man --warnings -l "$p" 2>/tmp/man.err)
    [ ! -s /tmp/man.err ] || { cat /tmp/man.err; fail "man -l $p warns"; }
    [ "$(wc -l <<<"$out")" -gt 20 ] || fail "man -l $p: too short"
done

# Completions, where the shells find them.
got=$(bash -c '
    source /usr/share/bash-completion/bash_completion
    _completion_loader rvsadm; _completion_loader rvs
    COMP_WORDS=(rvsadm -A -t 10.0.0.1:80 -s w); COMP_CWORD=5
    COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
    _rvsadm; echo "${COMPREPLY[*]}"
    COMP_WORDS=(rvs realserver ""); COMP_CWORD=2
    COMP_LINE="rvs realserver "; COMP_POINT=${#COMP_LINE}
    _rvs; echo "${COMPREPLY[*]}"')
[ "$got" = "$(printf 'wrr wlc\nup down')" ] || fail "bash completion: $got"
got=$(zsh -fc 'autoload -U compinit && compinit -u -D && print $_comps[rvsadm] $_comps[rvs] $_comps[rvsadm-save]')
[ "$got" = "_rvsadm _rvs _rvsadm" ] || fail "zsh completion: $got"

# The seed's sequence (/etc/sysconfig layout), with the commands the units
# run for `systemctl stop|start ipvsadm`, against the packaged rvsd.
ip link set lo up
rvsd --io none >/tmp/rvsd.log 2>&1 &
rvsd_pid=$!
# Whatever happens, no rvsd outlives the test (nor holds its output open).
trap 'kill "$rvsd_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do ipvsadm -L -n >/dev/null 2>&1 && break; sleep 0.1; done
unit=/lib/systemd/system/rvs-ipvsadm.service
exec_start=$(sed -n 's/^ExecStart=//p' $unit)
exec_stop=$(sed -n 's/^ExecStop=//p' $unit)
mkdir -p /etc/sysconfig
ipvsadm -A -t 122.161.1.101:10 -s wrr
ipvsadm -a -t 122.161.1.101:10 -r 122.161.10.102:10 -m -w 1
ipvsadm -a -t 122.161.1.101:10 -r 122.161.10.103:10 -m -w 2
ipvsadm -A -u 122.161.1.101:53 -s rr -p 600
ipvsadm -a -u 122.161.1.101:53 -r 122.161.10.104:53 -m
ipvsadm -A -f 10 -s sh
ipvsadm -a -f 10 -r 122.161.10.105:0 -g -w 3
want=$(ipvsadm -S -n)
ipvsadm-save >/etc/sysconfig/ipvsadm
[ "$(cat /etc/sysconfig/ipvsadm)" = "$(ipvsadm -S)" ] || fail "ipvsadm-save is not ipvsadm -S"
$exec_stop                                    # systemctl stop ipvsadm
[ "$(ipvsadm -S -n)" = "" ] || fail "stop did not clear the table"
[ "$(cat /etc/sysconfig/ipvsadm)" = "$want" ] || fail "stop did not save the table (-n)"
ipvsadm-restore </etc/sysconfig/ipvsadm
[ "$(ipvsadm -S -n)" = "$want" ] || fail "ipvsadm-restore did not restore the table"
$exec_start                                   # systemctl start ipvsadm
[ "$(ipvsadm -S -n)" = "$want" ] || fail "start did not give the same table"
echo "seed sequence: the same table ($(wc -l <<<"$want") rules)"

# `rvs bench` without the benchmarks (not packaged): a clear refusal.
if out=$(rvs bench --quick 2>&1); then fail "rvs bench ran without rvs-bench"; fi
grep -q 'rvs-bench is not installed' <<<"$out" || fail "rvs bench: $out"

# A real server set up by rvs (its record in /run/rvs): removal undoes it.
rvs realserver up --vip 10.9.9.9 >/dev/null
grep -q 10.9.9.9 <<<"$(ip -o addr show dev lo)" || fail "realserver up"
kill "$rvsd_pid"
wait "$rvsd_pid" || fail "rvsd did not stop cleanly: $(cat /tmp/rvsd.log)"

dpkg --purge rvs >/dev/null
! grep -q 10.9.9.9 <<<"$(ip -o addr show dev lo)" || fail "the real server's VIP outlived the package"
[ ! -e /run/rvs ] || fail "/run/rvs outlived the package"
! update-alternatives --query ipvsadm >/dev/null 2>&1 || fail "the ipvsadm alternative outlived the package"
[ -e /etc/sysconfig/ipvsadm ] || fail "purge removed the operator's /etc/sysconfig/ipvsadm"
EOF
# What the package did to the root, beyond dpkg's own records and logs:
# nothing may be left (names with rvs or ipvsadm, except the operator's
# /etc/sysconfig/ipvsadm of the sequence above, and man-db's cache of
# formatted pages, /var/cache/man, which man-db expires itself;
# systemd-analyze's check of Documentation=man:... fills it).
left=$(cd "$work/plain/upper" && find . \( -iname '*rvs*' -o -iname '*ipvsadm*' \) ! -type c |
    grep -v -e '^./etc/sysconfig/ipvsadm$' -e '^./var/log/' -e '^./var/cache/man/' || true)
[ -z "$left" ] || fail "left behind after purge: $left"
echo "purge left nothing behind"

echo "-- under systemd: start, upgrade, watchdog and purge"
# A real systemd, as PID 1 of a PID namespace (container mode), in a
# throwaway root like the one above (its own mount and network
# namespaces), booted to a target that pulls in nothing; the steps run in
# its namespaces through nsenter. Killing the unshare ends it all: the PID
# namespace takes every process with it, the network namespace its links.
r=$work/systemd
mkdir -p "$r/upper/etc/systemd/system" "$r/upper/root" "$r/work" "$r/merged"
printf '[Unit]\nDescription=rvs package test\nDefaultDependencies=no\n' \
    >"$r/upper/etc/systemd/system/rvs-test.target"
cp "$deb" "$r/upper/root/rvs.deb"
# ldirectord, as scripts/test.sh extracted it (RVS_LDIRECTORD): it is to
# find the ipvsadm name the package provides, with no link made by hand.
if [ -n "${RVS_LDIRECTORD:-}" ] && [ -f "$RVS_LDIRECTORD" ]; then
    cp "$RVS_LDIRECTORD" "$r/upper/root/ldirectord"
fi
unshare --mount --net --pid --fork --kill-child bash -euo pipefail -c '
    r=$1
    mount --make-rprivate /
    mount -t overlay overlay -o "lowerdir=/,upperdir=$r/upper,workdir=$r/work" "$r/merged"
    mount -t proc proc "$r/merged/proc"
    mount --rbind /dev "$r/merged/dev"
    # sysfs of this network namespace (/sys/class/net is per namespace),
    # with the host'"'"'s cgroup hierarchies for systemd.
    mount -t sysfs sysfs "$r/merged/sys"
    mount --rbind /sys/fs/cgroup "$r/merged/sys/fs/cgroup"
    mount -t tmpfs tmpfs "$r/merged/run"
    mount -t tmpfs tmpfs "$r/merged/tmp"
    exec chroot "$r/merged" env -i container=rvs-test \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd --system \
        --unit=rvs-test.target --show-status=0 --log-target=journal
' boot "$r" >"$work/systemd.log" 2>&1 &
unshare_pid=$!
stop_systemd() {
    kill -9 "$unshare_pid" 2>/dev/null || true
    wait "$unshare_pid" 2>/dev/null || true
}
trap 'stop_systemd; cleanup' EXIT
sd=
for _ in $(seq 100); do
    sd=$(pgrep -P "$unshare_pid" -x systemd || true)
    [ -n "$sd" ] && break
    sleep 0.1
done
[ -n "$sd" ] || fail "systemd did not start: $(cat "$work/systemd.log")"
in_systemd() {
    timeout 300 nsenter --target "$sd" --mount --pid --net --root --wd \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive SYSTEMD_PAGER= bash -euo pipefail -s
}
state=
for _ in $(seq 100); do
    state=$(in_systemd <<<'systemctl is-system-running 2>/dev/null || true')
    case $state in running | degraded) break ;; esac
    sleep 0.1
done
case $state in running | degraded) ;; *) fail "systemd not up ($state): $(cat "$work/systemd.log")" ;; esac
echo "systemd $(in_systemd <<<'systemctl --version | head -1 | cut -d" " -f2') booted ($state)"
in_systemd <<'EOF'
fail() {
    echo "FAIL (under systemd): $*" >&2
    systemctl status --no-pager rvsd >&2 || true
    exit 1
}
# The journal, for rvsd's log and systemd's word on it.
systemctl start systemd-journald.socket systemd-journald.service
# A Docker-built image's policy-rc.d (exit 101) stops maintainer scripts
# from touching services; a host that boots systemd has none.
rm -f /usr/sbin/policy-rc.d
dpkg -i /root/rvs.deb >/dev/null
[ "$(systemctl is-enabled rvsd.service)" = enabled ] || fail "rvsd.service not enabled"
[ "$(systemctl is-active rvsd.service)" = inactive ] || fail "installing started rvsd"

# A NAT director: client 10.7.1.1 -- eth0 10.7.1.2 [VIP 10.7.1.100] eth1
# 10.7.2.1 -- real server 10.7.2.11 (a line echo on port 80).
ip link set lo up
ip netns add c
ip netns add s
ip link add eth0 type veth peer name eth0 netns c
ip link add eth1 type veth peer name eth0 netns s
ip addr add 10.7.1.2/24 dev eth0
ip addr add 10.7.2.1/24 dev eth1
ip addr add 10.7.1.100/32 dev lo
ip link set eth0 up
ip link set eth1 up
for ns in c s; do ip -n $ns link set lo up; ip -n $ns link set eth0 up; done
ip -n c addr add 10.7.1.1/24 dev eth0
ip -n c route add default via 10.7.1.2
ip -n s addr add 10.7.2.11/24 dev eth0
ip -n s route add default via 10.7.2.1
ip netns exec s python3 -c '
import socket, threading
def echo(c):
    with c:
        f = c.makefile("rwb", buffering=0)
        for line in f:
            f.write(line)
l = socket.create_server(("10.7.2.11", 80))
while True:
    threading.Thread(target=echo, args=(l.accept()[0],), daemon=True).start()
' </dev/null >/dev/null 2>&1 &
for _ in $(seq 50); do
    ip netns exec s bash -c 'exec 3<>/dev/tcp/10.7.2.11/80' 2>/dev/null && break
    sleep 0.1
done
printf -- '-A -t 10.7.1.100:80 -s rr\n-a -t 10.7.1.100:80 -r 10.7.2.11:80 -m\n' >/etc/rvs/rules
echo 'RVSD_OPTS="--interface eth0 --interface eth1"' >>/etc/rvs/rvsd.env

# `systemctl start` returns once rvsd said READY=1: forwarding works at once.
systemctl start rvsd.service || fail "systemctl start rvsd"
ip netns exec c timeout 5 bash -c '
    exec 3<>/dev/tcp/10.7.1.100/80; echo first >&3; read -r -t 3 l <&3; [ "$l" = first ]' ||
    fail "the first connection right after systemctl start returned was not forwarded"
status=$(systemctl show -p StatusText --value rvsd.service)
grep -q 'serving 1 virtual service(s)' <<<"$status" || fail "STATUS= says: $status"
echo "systemctl start rvsd: forwarding at once; status: $status"
journalctl -u rvsd.service --no-pager -o cat | grep -e '^AF_XDP: ' -e '^data plane: ' | sed 's/^/  rvsd: /' || true
# `rvs dataplane` says why this packet I/O (and a smaller UMEM, if any).
why=$(rvs dataplane | sed -n 2p)
case $why in "why: --io auto: "*) echo "  rvs dataplane: $why" ;; *) fail "rvs dataplane: no why line: $why" ;; esac

# An upgrade (the package installed again: postinst try-restarts rvsd):
# a connection open across it goes on.
ip netns exec c bash -c '
    exec 3<>/dev/tcp/10.7.1.100/80
    echo before >&3; read -r -t 3 l <&3; [ "$l" = before ] && touch /tmp/ll.before
    sleep 6
    echo after >&3; read -r -t 5 l <&3; [ "$l" = after ] && touch /tmp/ll.after' &
ll=$!
for _ in $(seq 50); do [ -e /tmp/ll.before ] && break; sleep 0.1; done
[ -e /tmp/ll.before ] || fail "the long-lived connection did not start"
pid0=$(systemctl show -p MainPID --value rvsd.service)
dpkg -i /root/rvs.deb >/dev/null
pid1=$(systemctl show -p MainPID --value rvsd.service)
[ "$pid1" != "$pid0" ] && [ "$pid1" != 0 ] || fail "the upgrade did not restart rvsd ($pid0 -> $pid1)"
wait "$ll" || true
[ -e /tmp/ll.after ] || fail "a connection open across the upgrade's restart was lost"
echo "upgrade: rvsd restarted (pid $pid0 -> $pid1), the open connection went on"

# The watchdog: a worker that stops (RVSD_INJECT_STALL, debug builds) stops
# WATCHDOG=1, and systemd restarts rvsd (WatchdogSec=10).
if [ -n "$(grep -a RVSD_INJECT_STALL /usr/sbin/rvsd | head -c1)" ]; then
    mkdir -p /etc/systemd/system/rvsd.service.d
    printf '[Service]\nEnvironment=RVSD_INJECT_STALL=worker\n' \
        >/etc/systemd/system/rvsd.service.d/stall.conf
    systemctl daemon-reload
    systemctl restart rvsd.service
    pid0=$(systemctl show -p MainPID --value rvsd.service)
    t0=$SECONDS
    for _ in $(seq 300); do
        [ "$(systemctl show -p NRestarts --value rvsd.service)" -ge 1 ] && break
        sleep 0.1
    done
    [ "$(systemctl show -p NRestarts --value rvsd.service)" -ge 1 ] ||
        fail "a stalled worker did not get rvsd restarted in 30 s"
    journalctl --no-pager | grep -q 'rvsd.service: Watchdog timeout' ||
        fail "systemd did not log a watchdog timeout: $(journalctl --no-pager | tail -20)"
    echo "watchdog: a stalled worker got rvsd (pid $pid0) restarted after $((SECONDS - t0)) s"
    rm -r /etc/systemd/system/rvsd.service.d
    systemctl daemon-reload
    systemctl restart rvsd.service
else
    echo "SKIP: watchdog (a release build has no RVSD_INJECT_STALL)"
fi

# ldirectord (Debian's script, not in debug mode: it runs /sbin/ipvsadm or
# /usr/sbin/ipvsadm, the names the package gave rvsadm) adds its virtual
# service and the real server that answers.
if [ -f /root/ldirectord ]; then
    printf 'checktimeout=1\ncheckinterval=1\nautoreload=no\nlogfile="/tmp/ldirectord.log"\nvirtual=10.7.1.100:81\n\treal=10.7.2.11:80 masq 3\n\tchecktype=connect\n\tscheduler=wlc\n\tprotocol=tcp\n' >/root/ldirectord.cf
    perl /root/ldirectord /root/ldirectord.cf start >/dev/null 2>&1 || fail "ldirectord start: $(cat /tmp/ldirectord.log 2>/dev/null)"
    for _ in $(seq 100); do
        ipvsadm -L -n | grep -q '10.7.2.11:80 *Masq *3' && break
        sleep 0.1
    done
    ipvsadm -L -n | grep -q '10.7.2.11:80 *Masq *3' ||
        fail "ldirectord did not add its real server: $(ipvsadm -L -n; cat /tmp/ldirectord.log)"
    perl /root/ldirectord /root/ldirectord.cf stop >/dev/null 2>&1 || true
    echo "ldirectord: found the package's ipvsadm and added 10.7.1.100:81 -> 10.7.2.11:80"
else
    echo "SKIP: ldirectord (RVS_LDIRECTORD not set: scripts/test.sh extracts it)"
fi

# rvs-health.service: keepalived.conf's checkers. Installed disabled;
# started, it puts the file's service in with the real server its
# TCP_CHECK finds alive; `systemctl reload` applies a changed weight;
# stopped, it leaves the table.
[ "$(systemctl is-enabled rvs-health.service)" = disabled ] || fail "rvs-health.service is not disabled"
mkdir -p /etc/keepalived
kconf() {
    printf 'virtual_server 10.7.1.100 82 {\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  real_server 10.7.2.11 80 {\n    weight %s\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n}\n' "$1" \
        >/etc/keepalived/keepalived.conf
}
table82() { ipvsadm -L -n -t 10.7.1.100:82 2>/dev/null | awk '$2 == "10.7.2.11:80" { print $4 }'; }
kconf 2
systemctl start rvs-health.service || fail "systemctl start rvs-health"
for _ in $(seq 100); do [ "$(table82)" = 2 ] && break; sleep 0.1; done
[ "$(table82)" = 2 ] || fail "rvs-health did not put 10.7.2.11:80 in: $(ipvsadm -L -n; journalctl -u rvs-health --no-pager | tail)"
kconf 5
systemctl reload rvs-health.service
for _ in $(seq 100); do [ "$(table82)" = 5 ] && break; sleep 0.1; done
[ "$(table82)" = 5 ] || fail "systemctl reload rvs-health did not apply the weight: $(ipvsadm -L -n)"
# The state file follows within a second or so.
for _ in $(seq 50); do rvs health | grep -q 'RS \[10.7.2.11\]:tcp:80 *UP weight 5' && break; sleep 0.1; done
rvs health | grep -q 'RS \[10.7.2.11\]:tcp:80 *UP weight 5' || fail "rvs health: $(rvs health)"
systemctl stop rvs-health.service
[ "$(table82)" = 5 ] || fail "stopping rvs-health changed the table"
ipvsadm -D -t 10.7.1.100:82
echo "rvs-health.service: started, reloaded (weight 2 -> 5), stopped; the table left as it was"

# The seed's workflow word for word, with systemctl (the /etc/sysconfig
# layout): save, stop (saves and clears), restore, start (loads).
systemctl start ipvsadm.service
ipvsadm -A -t 122.161.1.101:10 -s wrr
ipvsadm -a -t 122.161.1.101:10 -r 122.161.10.102:10 -m -w 1
ipvsadm -a -t 122.161.1.101:10 -r 122.161.10.103:10 -m -w 2
ipvsadm -A -u 122.161.1.101:53 -s rr -p 600
ipvsadm -a -u 122.161.1.101:53 -r 122.161.10.104:53 -m
want=$(ipvsadm -S -n)
mkdir -p /etc/sysconfig
ipvsadm-save >/etc/sysconfig/ipvsadm
systemctl stop ipvsadm
[ "$(systemctl is-active rvsd.service)" = active ] || fail "systemctl stop ipvsadm stopped rvsd"
[ "$(ipvsadm -S -n)" = "" ] || fail "systemctl stop ipvsadm did not clear the table"
[ "$(cat /etc/sysconfig/ipvsadm)" = "$want" ] || fail "systemctl stop ipvsadm did not save the table"
ipvsadm-restore </etc/sysconfig/ipvsadm
[ "$(ipvsadm -S -n)" = "$want" ] || fail "ipvsadm-restore did not restore the table"
systemctl start ipvsadm
[ "$(ipvsadm -S -n)" = "$want" ] || fail "systemctl start ipvsadm did not give the same table"
echo "seed sequence with systemctl stop|start ipvsadm: the same table ($(wc -l <<<"$want") rules)"

# Removal stops rvsd and leaves nothing in the kernel.
dpkg --purge rvs >/dev/null
! pgrep -x rvsd >/dev/null || fail "rvsd runs after the purge"
for dev in eth0 eth1; do
    ! ip link show dev $dev | grep -q ' xdp' || fail "an XDP program is left on $dev"
done
! nft list tables 2>/dev/null | grep -q rvs || fail "an nftables table is left: $(nft list tables)"
if [ -d /sys/fs/bpf ]; then
    ! find /sys/fs/bpf -name '*rvs*' 2>/dev/null | grep -q . || fail "pinned BPF objects left"
fi
echo "purge under systemd: rvsd stopped; no XDP program, nftables table or pinned object left"
EOF
stop_systemd
trap cleanup EXIT

echo "-- next to Debian's ipvsadm package"
ipvsadm_deb=
dl=$(target_dir)/debian/download
mkdir -p "$dl"
ipvsadm_deb=$(ls "$dl"/ipvsadm_*.deb 2>/dev/null | head -1 || true)
if [ -z "$ipvsadm_deb" ]; then
    (cd "$dl" && apt-get download -q ipvsadm >/dev/null 2>&1) || true
    ipvsadm_deb=$(ls "$dl"/ipvsadm_*.deb 2>/dev/null | head -1 || true)
fi
if [ -z "$ipvsadm_deb" ]; then
    echo "SKIP: the ipvsadm package could not be downloaded"
else
    in_root real "$ipvsadm_deb" <<'EOF'
fail() { echo "FAIL (in the throwaway root): $*" >&2; exit 1; }
# Its init script must not run here.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
dpkg -i --force-depends /tmp/ipvsadm.deb >/dev/null 2>&1 || fail "ipvsadm did not install"
sum=$(md5sum </usr/sbin/ipvsadm)
dpkg -i /tmp/rvs.deb >/dev/null 2>&1 || fail "rvs did not install next to ipvsadm"
for n in ipvsadm ipvsadm-save ipvsadm-restore; do
    [ ! -L /usr/sbin/$n ] || fail "/usr/sbin/$n was replaced by a link"
done
[ "$(md5sum </usr/sbin/ipvsadm)" = "$sum" ] || fail "/usr/sbin/ipvsadm changed"
grep -q '^ipvsadm:' <<<"$(dpkg -S /sbin/ipvsadm)" || fail "/sbin/ipvsadm is not the ipvsadm package's"
[ ! -e /etc/systemd/system/ipvsadm.service ] || fail "ipvsadm.service was taken from the ipvsadm package"
[ -x /usr/sbin/rvsadm ] || fail "no rvsadm"
# The operator chooses rvs: remove the kernel tool, hand over the names.
dpkg -r ipvsadm >/dev/null 2>&1
update-alternatives --auto ipvsadm >/dev/null 2>&1
[ "$(readlink -f /usr/sbin/ipvsadm)" = /usr/sbin/rvsadm ] || fail "--auto did not give ipvsadm to rvs"
[ "$(readlink -f /usr/sbin/ipvsadm-restore)" = /usr/sbin/rvsadm ] || fail "ipvsadm-restore"
dpkg --purge rvs >/dev/null 2>&1
[ ! -e /usr/sbin/ipvsadm ] || fail "/usr/sbin/ipvsadm outlived rvs"
echo "ipvsadm's files kept; names handed over on request"
EOF
fi
echo "package tests passed in $((SECONDS - start)) s"
