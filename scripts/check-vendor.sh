#!/usr/bin/env bash
# Checks that vendor/burn-flex is the published burn-flex 0.22.1 plus vendor/burn-flex.patch and
# nothing else (run by CI). Allowed differences: PATCHED.md (ours, says what the patch does),
# Cargo.lock (dropped, as cargo does for path dependencies) and .cargo-ok (cargo's unpack marker).
# The published crate comes from cargo's download cache when present, else from crates.io, and
# must have the checksum the crates.io index lists for it.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.22.1
sha256=7e05d08ef48d738fadf13f8689b634f8b396d5a8cbb27d0a87f61e163d241846
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

crate="$(ls ~/.cargo/registry/cache/*/burn-flex-$version.crate 2>/dev/null | head -n 1 || true)"
if [ -z "$crate" ]; then
  crate="$work/burn-flex-$version.crate"
  curl -sSfL -m 120 -o "$crate" "https://static.crates.io/crates/burn-flex/burn-flex-$version.crate"
fi
echo "$sha256  $crate" | sha256sum -c --quiet - || {
  echo "check-vendor: $crate is not the published burn-flex $version (checksum differs)" >&2
  exit 1
}
tar -xzf "$crate" -C "$work"
(cd "$work/burn-flex-$version" && patch -p1 -s --no-backup-if-mismatch <"$OLDPWD/vendor/burn-flex.patch")
rm -f "$work/burn-flex-$version/Cargo.lock"
if ! diff -r -x PATCHED.md -x .cargo-ok -x Cargo.lock "$work/burn-flex-$version" vendor/burn-flex; then
  echo "check-vendor: vendor/burn-flex differs from burn-flex $version + vendor/burn-flex.patch;" \
    "put every change into the patch (diff -ruN against the published crate)" >&2
  exit 1
fi
echo "check-vendor: vendor/burn-flex is burn-flex $version + vendor/burn-flex.patch"
