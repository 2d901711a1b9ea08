# Sourced by the scripts: install missing Debian packages, idempotently.
# Usage: ensure_packages [--no-recommends] PKG...   (python3 is checked as a
# command: pyenv or another interpreter on PATH counts.) --no-recommends:
# without the packages' Recommends (keepalived recommends the kernel's
# ipvsadm, which would take /usr/sbin/ipvsadm from rvsadm).
ensure_packages() {
    local need=() pkg apt_opts=()
    if [ "${1:-}" = --no-recommends ]; then
        apt_opts=(--no-install-recommends)
        shift
    fi
    for pkg in "$@"; do
        if [ "$pkg" = python3 ]; then
            command -v python3 >/dev/null || need+=(python3)
        else
            dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
        fi
    done
    ((${#need[@]})) || return 0
    if [ "$(id -u)" != 0 ]; then
        echo "note: missing packages ${need[*]} (run as root to install them)" >&2
        return 0
    fi
    # Packages with services (nginx, haproxy) must not start them here: a
    # policy-rc.d that refuses keeps the install from depending on port 80
    # being free. Ours is removed afterwards; an existing one is kept.
    local policy=/usr/sbin/policy-rc.d ours=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && ours=1
    fi
    local rc=0
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_opts[@]}" "${need[@]}" >/dev/null || rc=$?
    if [ "$ours" = 1 ]; then rm -f "$policy"; fi
    return "$rc"
}
