#!/usr/bin/env bash
# Builds the Debian package: the dashboard first (so the release binary carries it), then
# `cargo deb` (cargo-deb, installed by scripts/setup.sh), which builds the release binary and
# packs it with the systemd unit, /etc/mjpeg-relay/ and the maintainer scripts of deploy/.
# Prints the .deb's path on its last line.
#
#   scripts/package.sh && sudo dpkg -i target/debian/mjpeg-relay_*.deb
set -euo pipefail
source "$(dirname "$0")/env.sh"
if [ ! -f dist/index.html ]; then
  trunk build --release >&2
fi
# Stripped: the release profile keeps line tables for profiling, which a package has no use for.
cargo deb -p mjpeg-relay --strip "$@"
