#!/bin/sh
# Make `make sanitize` work on a Debian machine: gcc and the runtimes of
# ThreadSanitizer (libtsan2), AddressSanitizer (libasan8), LeakSanitizer
# (liblsan0) and UndefinedBehaviorSanitizer (libubsan1).  The names are
# those of Debian 12 (gcc 12); libgcc-12-dev, which gcc depends on, brings
# the link-time libtsan.so/libasan.so.  Installs only what a trial compile
# shows to be missing.  Needs root for apt-get.
set -eu

CC="${CC:-gcc}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf 'int main(void) { return 0; }\n' > "$tmp/t.c"

works() {
    "$CC" -fsanitize="$1" "$tmp/t.c" -o "$tmp/t" >/dev/null 2>&1 && "$tmp/t"
}

if command -v "$CC" >/dev/null 2>&1 && works thread && works address,undefined; then
    echo "install-sanitizers: $CC builds and runs TSAN and ASAN/UBSAN programs already"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends gcc libc6-dev libtsan2 libasan8 liblsan0 libubsan1

works thread || { echo "install-sanitizers: -fsanitize=thread still fails" >&2; exit 1; }
works address,undefined || { echo "install-sanitizers: -fsanitize=address,undefined still fails" >&2; exit 1; }
echo "install-sanitizers: ok"
