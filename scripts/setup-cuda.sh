#!/usr/bin/env bash
# Makes `cargo build --release --features cuda` work on a machine whose only network is the
# package registries (crates.io, PyPI).
#
# Why: burn's CUDA backend compiles kernels with LLVM (cubecl-cuda → cubecl-llvm). The build
# script of cubecl-llvm's dependency `tracel-llvm-bundler` downloads an LLVM 23 bundle from
# GitHub unless one is already installed where it looks:
#   ${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-23.1.0-4/.tracel-llvm-installed
# This script puts LLVM 23 there from PyPI's relocatable static SDK wheels (mlc-llvm-static, with
# the NVPTX target from mlc-llvm-static-extra-targets). A machine with internet access does not
# need it: the bundler then downloads its own copy.
#
# No CUDA toolkit is needed to build: cudarc loads libcuda at run time; .cargo/config.toml pins
# its bindings (CUDARC_CUDA_VERSION). Running needs only the NVIDIA driver.
#
# Idempotent: does nothing when the marker exists. Usage: scripts/setup-cuda.sh [--force]
set -euo pipefail

llvm_version="23.1.1.post0"
bundle="tracel-llvm-23.1.0-4" # the directory name tracel-llvm-bundler 23.1.0-4 looks for
dest="${XDG_DATA_HOME:-$HOME/.local/share}/tracel/$bundle"
marker="$dest/.tracel-llvm-installed"

if [ -f "$marker" ] && [ "${1:-}" != "--force" ]; then
  echo "setup-cuda: LLVM already installed in $dest"
  exit 0
fi

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || {
  echo "setup-cuda: needs python3 with pip (to fetch LLVM from PyPI); set PYTHON=..." >&2
  exit 1
}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "setup-cuda: installing LLVM $llvm_version (static SDK with NVPTX) from PyPI"
"$python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$work/sdk" \
  "mlc-llvm-static==$llvm_version" "mlc-llvm-static-extra-targets==$llvm_version"

src="$work/sdk/mlc_llvm_static/static"
[ -x "$src/bin/llvm-config" ] || { echo "setup-cuda: the wheel has no $src/bin/llvm-config" >&2; exit 1; }
"$src/bin/llvm-config" --targets-built | grep -qw NVPTX || {
  echo "setup-cuda: the installed LLVM lacks the NVPTX target (mlc-llvm-static-extra-targets)" >&2
  exit 1
}

rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
cp -a "$src" "$dest"
touch "$marker"
echo "setup-cuda: LLVM $("$dest/bin/llvm-config" --version) in $dest;" \
  "now: cargo build --release --features cuda"
