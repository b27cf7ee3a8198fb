#!/bin/sh
# apt-install-missing.sh COMMAND PACKAGE: install the Debian package PACKAGE
# when COMMAND is not on PATH (the install-*.sh scripts of single tools use
# it).  Needs root for apt-get.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 COMMAND PACKAGE" >&2
    exit 2
fi
if command -v "$1" >/dev/null 2>&1; then
    echo "install-$2: $(command -v "$1") is there already"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "$2"
command -v "$1" >/dev/null 2>&1 || { echo "install-$2: $1 still missing" >&2; exit 1; }
echo "install-$2: ok"
