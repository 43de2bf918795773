#!/usr/bin/env bash
# Smoke-fuzzes Tessera's untrusted-input parsers with cargo-fuzz (libFuzzer, nightly).
#
#   ci/fuzz.sh                 # every target, 20 s each
#   FUZZ_SECONDS=60 ci/fuzz.sh frame_parser
#
# Targets (fuzz/fuzz_targets/): frame_parser (wire frames, stream decoder, payload parsers),
# link_handshake (a connection's first bytes through a real link), cfg_parser (model::cfg::parse),
# weights_reader (model::weights::decode), datagram_parser (wire::datagram: raw datagrams and
# genuine ones reordered, duplicated, corrupted and late through a reassembler).
# Seeds are read from fuzz/corpus/<target>/ and never written to: new inputs go to a scratch
# corpus under fuzz/target/. A crash leaves its input in fuzz/artifacts/<target>/ and fails the
# script. Installs cargo-fuzz if missing; needs the nightly toolchain.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"
# Its own target dir: sanitizer builds must not invalidate the main workspace's artifacts.
export CARGO_TARGET_DIR="$root/fuzz/target"

seconds="${FUZZ_SECONDS:-20}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
all_targets=(frame_parser link_handshake cfg_parser weights_reader datagram_parser)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
rustup toolchain list | grep -q "^$toolchain" || {
    echo "fuzz: toolchain $toolchain missing (rustup toolchain install $toolchain)" >&2
    exit 1
}

echo "fuzz: building ${targets[*]}"
start=$SECONDS
for t in "${targets[@]}"; do
    cargo "+$toolchain" fuzz build "$t"
done
echo "fuzz: built in $((SECONDS - start)) s"

for t in "${targets[@]}"; do
    scratch="$root/fuzz/target/corpus-run/$t"
    mkdir -p "$scratch"
    echo "fuzz: $t for ${seconds} s"
    start=$SECONDS
    # The first corpus dir receives new inputs; the seed dir is only read.
    log="$scratch.log"
    status=0
    cargo "+$toolchain" fuzz run "$t" "$scratch" "corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb" "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log" >&2
        echo "fuzz: $t FAILED (exit $status); inputs in fuzz/artifacts/$t/" >&2
        exit "$status"
    fi
    echo "fuzz: $t ok in $((SECONDS - start)) s"
done
echo "fuzz: all targets ok"
