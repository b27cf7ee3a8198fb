#!/bin/sh
# Make `model/check.sh` work on a Debian machine: the spin model checker
# (Debian package `spin`) and a C compiler for the verifiers it generates.
# Installs only what is missing.  Needs root for apt-get.
set -eu

CC="${CC:-cc}"

have_spin() {
    command -v spin >/dev/null 2>&1 && spin -V >/dev/null 2>&1
}

if have_spin && command -v "$CC" >/dev/null 2>&1; then
    echo "install-spin: $(spin -V) and $CC are installed already"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends spin gcc libc6-dev

have_spin || { echo "install-spin: spin still missing" >&2; exit 1; }
echo "install-spin: ok: $(spin -V)"
