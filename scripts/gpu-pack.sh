#!/usr/bin/env bash
# Packs what the travelling GPU check needs into an ignored folder (default gpu-bundle/), for a
# GPU machine that has no Rust and no network (the project's `device` tool carries ignored
# folders named in `carry`, 64 MiB in all):
#   adainf.xz              the release binary built with `cuda` and `wgpu`, stripped, xz-compressed
#   libvulkan1_*.deb       Debian's Vulkan loader, for wgpu on a machine that lacks it
#   MANIFEST               what was packed, from which commit, and the sizes
# scripts/gpu_check.py and docs/peer/pytorch_bench.py travel with the working tree; the DDPM
# peer scripts/ddpm_peer.py is built into the binary (`adainf bench --suite diffusion` runs it).
#
# Usage: scripts/gpu-pack.sh [DIR]        (fails if the bundle exceeds 60 MiB)
# Then, on the GPU machine: python3 scripts/gpu_check.py --bundle DIR --out results.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-bundle}"
target="${CARGO_TARGET_DIR:-target}"
limit=$((60 * 1024 * 1024))

scripts/setup-cuda.sh
cargo build --release --features cuda
mkdir -p "$out"
rm -f "$out"/adainf.xz "$out"/libvulkan1_*.deb "$out"/MANIFEST
strip -o "$out/adainf" "$target/release/adainf"
stripped=$(stat -c %s "$out/adainf")
xz -T0 -6 -f "$out/adainf"

# The Vulkan loader as a .deb (unpacked by the check into a temporary folder, never into /).
if ! (cd "$out" && apt-get download -q libvulkan1 >/dev/null 2>&1); then
  apt-get update -qq && (cd "$out" && apt-get download -q libvulkan1 >/dev/null)
fi

total=$(du -cb "$out"/adainf.xz "$out"/libvulkan1_*.deb | tail -n 1 | cut -f 1)
{
  echo "commit $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) with $(cargo --version)"
  echo "features default (wgpu) + cuda"
  echo "adainf stripped bytes $stripped"
  (cd "$out" && ls -l adainf.xz libvulkan1_*.deb)
  echo "total bytes $total (limit $limit)"
} >"$out/MANIFEST"
cat "$out/MANIFEST"
if [ "$total" -gt "$limit" ]; then
  echo "gpu-pack: the bundle is $total bytes, over the 60 MiB carry limit" >&2
  exit 1
fi
