#!/usr/bin/env bash
# Installs every Debian package Verdict needs to build, test and benchmark. Idempotent:
# when everything is already installed it only checks and returns. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  clang-14 libclang-rt-14-dev clang-format
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  thrift-compiler libthrift-dev libevent-dev python3-thrift
  libboost-dev libboost-program-options-dev libboost-system-dev libboost-filesystem-dev
  libboost-context-dev
  libspdlog-dev libfmt-dev
  libsqlite3-dev sqlite3
  libpq-dev postgresql postgresql-client
  etcd-server etcd-client
  iproute2 procps psmisc python3
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The postgresql package starts a cluster service; tests run their own servers.
$SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
echo "install-deps: done" >&2
