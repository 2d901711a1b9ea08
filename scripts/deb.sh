#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Build the Debian package of rvs: ./scripts/deb.sh  (or make deb)
# -> $(target dir)/debian/rvs_VERSION-1_ARCH.deb; install it with
#    apt install ./target/debian/rvs_*.deb
#
# The package is laid out here and built with dpkg-deb: what goes in is
# listed below, nothing is hidden in a packaging tool's conventions, and no
# tool has to be built first (cargo-deb would be compiled from crates.io,
# debhelper would run the whole cargo build again under dpkg-buildpackage).
# The maintainer scripts (dist/debian/) are what dh_installsystemd and
# update-alternatives users write by hand.
#
# Options:
#   --profile P   package the binaries of cargo profile P (default release;
#                 `debug` packages the test build, as the package test does)
#   --no-build    do not run cargo build (use the binaries as they are)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/packages.sh
. scripts/lib/target-dir.sh

profile=release
build=1
while [ $# -gt 0 ]; do
    case $1 in
    --profile) profile=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "usage: $0 [--profile release|debug] [--no-build]" >&2; exit 2 ;;
    esac
done

# dpkg-dev: dpkg-shlibdeps. binutils: strip. man-db/groff: not needed to
# build (the pages are roff, gzipped).
ensure_packages dpkg-dev binutils python3

if [ "$build" = 1 ]; then
    case $profile in
    debug | dev) cargo build --locked -q -p rvs -p rvsd -p rvsadm ;;
    *) cargo build --profile "$profile" --locked -q -p rvs -p rvsd -p rvsadm ;;
    esac
fi
target=$(target_dir)
case $profile in
debug | dev) bin=$target/debug ;;
*) bin=$target/$profile ;;
esac
for b in rvsd rvsadm rvs; do
    [ -x "$bin/$b" ] || { echo "deb.sh: no $bin/$b (build it first)" >&2; exit 1; }
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)-1
arch=$(dpkg --print-architecture)
out=$target/debian
stage=$out/rvs_${version}_$arch
rm -rf "$stage"
umask 022

# The benchmarks (rvs-bench, which `rvs bench` runs) are not packaged: they
# build namespaces, contenders and a traffic generator for a test machine,
# not a director; the installed `rvs bench` says they are not installed.
# Binaries, stripped as dh_strip does; the ipvsadm-save/-restore
# personalities of rvsadm under their rvs names.
install -d "$stage/usr/sbin"
for b in rvsd rvsadm rvs; do
    install -m 0755 "$bin/$b" "$stage/usr/sbin/$b"
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$stage/usr/sbin/$b"
done
ln -s rvsadm "$stage/usr/sbin/rvsadm-save"
ln -s rvsadm "$stage/usr/sbin/rvsadm-restore"
install -D -m 0755 dist/ipvsadm-service "$stage/usr/lib/rvs/ipvsadm-service"
install -D -m 0755 dist/keepalived/rvs-sync-notify "$stage/usr/lib/rvs/rvs-sync-notify"

# systemd units (the packaged binaries are in /usr/sbin).
install -d "$stage/lib/systemd/system"
sed 's|/usr/local/sbin/|/usr/sbin/|g' dist/rvsd.service >"$stage/lib/systemd/system/rvsd.service"
install -m 0644 dist/rvs-ipvsadm.service "$stage/lib/systemd/system/rvs-ipvsadm.service"
sed 's|/usr/local/sbin/|/usr/sbin/|g' dist/rvs-health.service >"$stage/lib/systemd/system/rvs-health.service"
chmod 0644 "$stage/lib/systemd/system/"*

# Configuration (conffiles).
install -D -m 0644 dist/rvsd.env "$stage/etc/rvs/rvsd.env"

# Man pages, from the binaries' --help and dist/man/*.in.
man=$(mktemp -d)
trap 'rm -rf "$man"' EXIT
python3 scripts/manpages.py --bin "$bin" --out "$man"
for page in "$man"/*; do
    sec=${page##*.}
    install -D -m 0644 "$page" "$stage/usr/share/man/man$sec/$(basename "$page")"
    gzip -9n "$stage/usr/share/man/man$sec/$(basename "$page")"
done
ln -s rvsadm.8.gz "$stage/usr/share/man/man8/rvsadm-save.8.gz"
ln -s rvsadm.8.gz "$stage/usr/share/man/man8/rvsadm-restore.8.gz"

# Shell completions.
install -D -m 0644 dist/completions/bash/rvsadm "$stage/usr/share/bash-completion/completions/rvsadm"
install -D -m 0644 dist/completions/bash/rvs "$stage/usr/share/bash-completion/completions/rvs"
ln -s rvsadm "$stage/usr/share/bash-completion/completions/rvsadm-save"
install -D -m 0644 dist/completions/zsh/_rvsadm "$stage/usr/share/zsh/vendor-completions/_rvsadm"
install -D -m 0644 dist/completions/zsh/_rvs "$stage/usr/share/zsh/vendor-completions/_rvs"

# Documentation, licence, integration examples.
doc=$stage/usr/share/doc/rvs
install -D -m 0644 dist/debian/copyright "$doc/copyright"
install -m 0644 README.md "$doc/README.md" && gzip -9n "$doc/README.md"
install -m 0644 dist/README.md "$doc/README.systemd.md"
install -D -m 0644 dist/examples/ldirectord.cf "$doc/examples/ldirectord.cf"
install -m 0644 dist/examples/keepalived.conf "$doc/examples/keepalived.conf"
install -m 0644 dist/keepalived/keepalived-sync.conf "$doc/examples/keepalived-sync.conf"
install -m 0644 dist/keepalived/keepalived.conf "$doc/examples/keepalived-checkers.conf"
when=$(git log -1 --format=%cD 2>/dev/null || date -R)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
cat >"$doc/changelog.Debian" <<EOF
rvs ($version) unstable; urgency=medium

  * Built from the rvs source tree (git $commit) by scripts/deb.sh.

 -- rvs developers <rvs@example.invalid>  $when
EOF
gzip -9n "$doc/changelog.Debian"

# Control files.
install -d "$stage/DEBIAN"
install -m 0755 dist/debian/postinst dist/debian/prerm dist/debian/postrm "$stage/DEBIAN/"
(cd "$stage" && find etc -type f | sed 's|^|/|' | sort) >"$stage/DEBIAN/conffiles"
shlib=$(mktemp -d)
mkdir "$shlib/debian"
printf 'Source: rvs\n\nPackage: rvs\nArchitecture: any\n' >"$shlib/debian/control"
depends=$(cd "$shlib" && dpkg-shlibdeps -O "$stage/usr/sbin/rvsd" "$stage/usr/sbin/rvsadm" "$stage/usr/sbin/rvs" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
rm -rf "$shlib"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOF
Package: rvs
Version: $version
Architecture: $arch
Maintainer: rvs developers <rvs@example.invalid>
Installed-Size: $size
Depends: $depends
Provides: ipvsadm
Recommends: nftables
Suggests: ldirectord, keepalived
Section: net
Priority: optional
Description: Linux Virtual Server (IPVS) director in user space, with ipvsadm
 rvs is a layer-4 load-balancing director in the mould of Linux Virtual
 Server: it forwards packets to real servers in NAT, direct routing and
 IP-in-IP modes, with every IPVS scheduler, persistence and statistics,
 in user space (AF_XDP with an XDP classifier, or AF_PACKET).
 .
 The package provides rvsd (the daemon, as rvsd.service), rvsadm (ipvsadm's
 command line, byte for byte, also as ipvsadm, ipvsadm-save and
 ipvsadm-restore through update-alternatives), rvs (fwmark rules, sysctls,
 real-server set-up, keepalived.conf's health checkers as
 rvs-health.service) and ipvsadm.service (rvs-ipvsadm.service), which
 loads and saves the distribution's ipvsadm rules file.
EOF
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

deb=$out/rvs_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
