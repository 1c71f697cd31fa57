#!/usr/bin/env bash
# Installs what memo needs from Debian's packages, and nothing when all is there.
# Used by `make demo`, `make check`, `make bench` (the target `deps`).
set -euo pipefail

pkgs=(gcc make pkg-config flex bison libhiredis-dev libjansson-dev libpq-dev
      libcmocka-dev redis-server redis-tools postgresql procps clang-format
      prometheus   # promtool: a real parser for the metrics tests
      pgbouncer)   # the tests through a transaction-mode pooler
[ $# -gt 0 ] && pkgs+=("$@")

missing=()
for p in "${pkgs[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d keeps the packaged PostgreSQL and Redis services from starting:
# memo runs private servers of its own and never uses the system ones.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo[@]}" chmod +x /usr/sbin/policy-rc.d
    trap '"${sudo[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
fi
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
