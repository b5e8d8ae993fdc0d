#!/usr/bin/env bash
# Installs what PruneGym needs beyond the Swift toolchain: OpenBLAS (libopenblas-dev) and
# pkg-config, through apt-get, only when they are missing.
set -euo pipefail
if pkg-config --exists openblas 2>/dev/null; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup: installing libopenblas-dev and pkg-config with apt-get" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libopenblas-dev pkg-config >/dev/null
pkg-config --exists openblas || { echo "setup: OpenBLAS is still not visible to pkg-config" >&2; exit 1; }
