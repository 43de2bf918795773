#!/usr/bin/env bash
# Feature-combination checks of the workspace crates that declare features: each crate with no
# default features, with each feature alone, and with all features (`cargo check`: cheap, and
# the crates are libraries). The crates and features are read from `cargo metadata`, so new
# features are covered without editing this file.
set -uo pipefail
cd "$(dirname "$0")/.."

list() { # prints "package feature..." per workspace member that has features
  cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
meta = json.load(sys.stdin)
members = set(meta["workspace_members"])
for p in meta["packages"]:
    if p["id"] in members:
        feats = sorted(f for f in p["features"] if f != "default")
        if feats:
            print(p["name"], *feats)
'
}

lines=$(list) || {
  echo "cargo metadata / python3 failed; falling back to the known list" >&2
  lines="tessera-backends std"
}
if [ -z "$lines" ]; then
  echo "no workspace crate declares features"
  exit 0
fi
rc=0
run() {
  echo "+ cargo check $*"
  cargo check "$@" || rc=1
}
while read -r pkg feats; do
  run -p "$pkg" --no-default-features
  for f in $feats; do
    run -p "$pkg" --no-default-features --features "$f"
  done
  run -p "$pkg" --all-features
done <<<"$lines"
exit "$rc"
