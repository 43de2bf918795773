#!/usr/bin/env bash
# Builds the Cortex-M4 test image (release) and runs it on qemu's mps2-an386 board.
# Exit code: the image's semihosting exit code (0 pass, 1 fail), 124 on timeout.
set -euo pipefail
cd "$(dirname "$0")"
# Its own workspace and target dir (ci/firmware/target), never the host one.
unset CARGO_TARGET_DIR
cargo build --release --target thumbv7em-none-eabihf
elf=target/thumbv7em-none-eabihf/release/tessera-firmware-test
set +e
timeout 60 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
  -semihosting-config enable=on,target=native -kernel "$elf" </dev/null
rc=$?
set -e
if [ "$rc" -eq 124 ]; then
  echo "firmware test timed out after 60 s" >&2
elif [ "$rc" -ne 0 ]; then
  echo "firmware test failed (exit $rc)" >&2
fi
exit "$rc"
