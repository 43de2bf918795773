#!/usr/bin/env bash
# The microcontroller gateway end to end: the Cortex-M4 gateway image on qemu's mps2-an386
# (LAN9118 on qemu user networking, its port forwarded to 127.0.0.1) and two Linux
# `tessera edge` processes around it, YOLOv2-608 with generated weights on a 3x3 grid, twice:
#
#   wst-s  one frame with both edges at full speed (edge 2 steals from the source, overlap
#          strips through the board's strip cache: `reuse = "gateway"`) and the
#          layers after the fused ones coded over the edges (`tail = "uncoded"`: each edge
#          computes half of every tail convolution's filters; the board runs the pools,
#          routes, reorg and region and decodes the boxes): the fused output must equal one
#          machine's run bit for bit (`tessera layers`, same kernels), and the boxes those of
#          a Linux `tessera gateway` on the same cluster file, bit for bit; before the frame, a
#          forged connection (random bytes) reaches the gateway: dropped, counted and logged;
#   wsh    the gateway queues every tile itself; edge 2 runs 1000x slowed down, takes a tile
#          and is killed (SIGKILL) holding it: the gateway must re-dispatch that tile and the
#          frame's output must again equal the reference.
#
# The board's log lines (tessera-log over defmt on its UART) are decoded with defmt-print
# (installed if missing) and must name the refused connection.
# Prints the image's flash and RAM use and the frame times (qemu time on this host: not Pi or
# microcontroller time). Every process runs under `timeout` and is stopped by PID.
# Usage: ci/firmware/gateway.sh [path/to/tessera]   (default: target/release/tessera)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tessera=${1:-${CARGO_TARGET_DIR:-$root/target}/release/tessera}
[ -x "$tessera" ] || { echo "gateway.sh: no tessera binary at $tessera (build it first)" >&2; exit 2; }

# The host side of the board's defmt log.
command -v defmt-print >/dev/null || {
  echo "gateway.sh: installing defmt-print"
  cargo install defmt-print --locked --quiet || exit 1
}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT


flash_ram() { # the image's flash and RAM use, from the ELF's section headers
  python3 - "$elf" <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read()
shoff, = struct.unpack_from("<I", d, 0x20)
shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x2E)
secs = [struct.unpack_from("<IIIIIIIIII", d, shoff + i * shentsize) for i in range(shnum)]
strtab = secs[shstrndx][4]
name = lambda s: d[strtab + s[0]:d.index(b"\0", strtab + s[0])].decode()
size = {name(s): s[5] for s in secs}
flash = sum(size.get(n, 0) for n in (".vector_table", ".text", ".rodata", ".data"))
ram = sum(size.get(n, 0) for n in (".data", ".bss", ".uninit"))
print(f"firmware: flash {flash} B of 4 MiB ({100 * flash / (4 << 20):.1f} %), SRAM statics "
      f"{ram} B of 4 MiB (the rest is stack), PSRAM {size.get('.psram', 0)} B of 16 MiB "
      "(socket buffers and heap; the linker refuses more)")
EOF
}
fnv1a() { # FNV-1a 64 over a file's bytes (the firmware prints the same over its output's bits)
  python3 - "$1" <<'EOF'
import sys
h = 0xcbf29ce484222325
for b in open(sys.argv[1], "rb").read():
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
print(f"{h:016x}")
EOF
}
fail() {
  echo "gateway.sh: $*" >&2
  for f in "$work"/*.log; do echo "--- $(basename "$f")"; tail -n 30 "$f"; done
  exit 1
}
wait_for() { # wait_for FILE PATTERN SECONDS: until FILE has a line matching PATTERN (and
  # the gateway, $watched, still runs)
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    kill -0 "$watched" 2>/dev/null || { echo "gateway.sh: the gateway exited" >&2; return 1; }
    sleep 0.1
  done
  echo "gateway.sh: no '$2' in $(basename "$1") after $3 s" >&2
  return 1
}
edge() { # edge ID LOG [args]: starts edge ID in the background; its PID (timeout's) in $edge_pid
  local id=$1 log=$2
  shift 2
  RUST_LOG=info timeout 900 "$tessera" edge --cluster "$work/cluster.toml" --id "$id" "$@" \
    >"$work/$log" 2>&1 &
  edge_pid=$!
  pids+=("$edge_pid")
}
feed() { # feed NAME: one frame into the source's spool directory (whole files only)
  cp "$image" "$work/spool/.$1.jpg" && mv "$work/spool/.$1.jpg" "$work/spool/$1.jpg"
}

# cluster POLICY TAIL [REUSE]: the cluster file (its `tail`, and `reuse`, default local).
cluster() {
  # A port free on 127.0.0.1 (qemu forwards it to the gateway's port in its user network).
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$work/cluster.toml" <<EOF
policy = "$1"
grid = "3x3"
layers = 16
kernel = "auto"
key = "$key"
seed = 1
tail = "$2"
reuse = "${3:-local}"
$([ "$2" = gateway ] || echo "tail_deadline_ms = $tail_ms")
[timeouts]
tile_ms = 120000
frame_ms = 600000
steal_backoff_ms = 20
peer_dead_ms = 10000
connect_ms = 2000
[[nodes]]
id = 0
addr = "127.0.0.1:$port"
[[nodes]]
id = 1
addr = "127.0.0.2:$port"
source = true
[[nodes]]
id = 2
addr = "127.0.0.3:$port"
EOF
}

# start POLICY TAIL [REUSE]: the image built for the cluster file, the gateway on qemu (TAIL:
# `none`, or the file's coded tail; REUSE: the file's `reuse`, default local).
start() {
  policy=$1
  fingerprint=$("$tessera" check --cluster "$work/cluster.toml" --id 1 --timeout-ms 200 2>/dev/null |
    sed -n 's/^model here: //p' || true)
  [ -n "$fingerprint" ] || fail "no model fingerprint from tessera check"
  echo "== $policy: port $port, model fingerprint $fingerprint"
  (
    cd "$root/ci/firmware"
    unset CARGO_TARGET_DIR
    TESSERA_GW_KEY=$key TESSERA_GW_FINGERPRINT=$fingerprint TESSERA_GW_PORT=$port \
      TESSERA_GW_EDGES=2 TESSERA_GW_GRID=3x3 TESSERA_GW_POLICY=$policy TESSERA_GW_FRAMES=1 \
      TESSERA_GW_TAIL=$2 TESSERA_GW_TAIL_DEADLINE_MS=$tail_ms TESSERA_GW_REUSE=${3:-local} \
      TESSERA_GW_SEED=1 \
      DEFMT_LOG=info cargo build --release --target thumbv7em-none-eabihf --bin gateway
  ) || fail "building the gateway image"
  timeout 900 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
    -semihosting-config enable=on,target=native \
    -nic "user,hostfwd=tcp:127.0.0.1:$port-:$port" -serial "file:$work/defmt-$policy.bin" -monitor none \
    -kernel "$elf" \
    </dev/null >"$work/gateway-$policy.log" 2>&1 &
  qemu=$!
  watched=$qemu
  pids+=("$qemu")
  wait_for "$work/gateway-$policy.log" "^gateway: $policy" 60 || fail "the gateway did not start"
  rm -rf "$work/spool" && mkdir -p "$work/spool"
}

# finish POLICY: waits for the gateway to exit, checks its frame against the reference and
# stops the edges; the gateway's summary line in $summary.
finish() {
  local log=$work/gateway-$1.log out
  wait "$qemu" || fail "the $1 gateway failed (exit $?)"
  cat "$log"
  out=$(sed -n 's/.*fnv1a \([0-9a-f]*\).*/\1/p' "$log")
  [ "$out" = "$reference" ] || fail "$1: fused output '$out' differs from the reference $reference"
  summary=$(grep "^gateway: summary" "$log")
  # The board's log lines: defmt frames on its UART, decoded with the image's ELF.
  defmt-print -e "$elf" <"$work/defmt-$1.bin" >"$work/defmt-$1.log" 2>&1 ||
    fail "$1: defmt-print could not decode the board's log"
  sed 's/^/defmt: /' "$work/defmt-$1.log"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}

image=$root/data/images/0.jpg
elf=$root/ci/firmware/target/thumbv7em-none-eabihf/release/gateway
qemu=
watched=
# A coded tail's deadline: qemu on a loaded machine has taken 85 s and more for it.
tail_ms=600000
# The reference: layers 0-15 of the frame on this machine.
timeout 600 "$tessera" layers --input "$image" --upto 16 --dump "$work/ref.f32" >/dev/null
reference=$(fnv1a "$work/ref.f32")
echo "reference fused output (one machine): fnv1a $reference"
key=$("$tessera" keygen | tail -1)

# The boxes of the same cluster with a Linux gateway: the reference for the board's.
cluster wst-s uncoded gateway
mkdir "$work/spool" "$work/linux"
RUST_LOG=info timeout 600 "$tessera" gateway --cluster "$work/cluster.toml" --out "$work/linux" \
  --frames 1 >"$work/linux-gateway.log" 2>&1 &
linux=$!
watched=$linux
pids+=("$linux")
edge 2 linux-edge2.log
edge 1 linux-edge1.log --input-dir "$work/spool"
# Coded workers make their shards (about 190 MB each) before they dial.
wait_for "$work/linux-edge2.log" "peer 0 up" 300 || fail "edge 2 did not reach the Linux gateway"
wait_for "$work/linux-edge1.log" "peer 0 up" 300 || fail "edge 1 did not reach the Linux gateway"
feed f0
wait "$linux" || fail "the Linux gateway failed"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
echo "reference boxes (Linux gateway): $(ls "$work/linux")"

start wst-s uncoded gateway
edge 2 edge2-wst-s.log
edge 1 edge1-wst-s.log --input-dir "$work/spool"
wait_for "$work/edge2-wst-s.log" "peer 0 up" 300 || fail "edge 2 did not reach the gateway"
wait_for "$work/edge1-wst-s.log" "peer 0 up" 300 || fail "edge 1 did not reach the gateway"
# A hostile connection first: random bytes where a sealed Hello belongs.
python3 -c "
import os, socket
s = socket.create_connection(('127.0.0.1', $port))
s.sendall(os.urandom(512))
s.close()"
wait_for "$work/gateway-wst-s.log" "connection dropped" 60 || fail "the forged connection was not counted"
feed f1
finish wst-s
python3 - "$work/linux"/*.json "$work/gateway-wst-s.log" <<'EOF' || fail "the board's boxes differ from the Linux gateway's"
# Same boxes, bit for bit: class, probability and relative box of each, in order.
import json, re, struct, sys
bits = lambda v: struct.unpack("<I", struct.pack("<f", float(v)))[0]
ref = [(d["class_id"], *map(bits, (d["prob"], *(d["relative"][k] for k in "xywh"))))
       for d in json.load(open(sys.argv[1]))["detections"]]
pat = re.compile(r"box class (\d+) prob (\S+) x (\S+) y (\S+) w (\S+) h (\S+)")
got = [(int(m[1]), *map(bits, m.groups()[1:])) for m in map(pat.match, open(sys.argv[2])) if m]
print(f"boxes: board {len(got)}, Linux gateway {len(ref)}, identical: {got == ref}")
sys.exit(0 if got == ref and got else 1)
EOF
dropped=$(echo "$summary" | sed -n 's/.* dropped=\([0-9]*\).*/\1/p')
[ "${dropped:-0}" -ge 1 ] || fail "no dropped connection counted"
grep -q "refused a connection from" "$work/defmt-wst-s.log" ||
  fail "no defmt log line for the refused connection"
flash_ram

cluster wsh gateway
start wsh none
edge 1 edge1-wsh.log --input-dir "$work/spool"
edge 2 edge2-wsh.log --slowdown 1000 --stats-every 1
slow=$edge_pid
wait_for "$work/edge2-wsh.log" "peer 0 up" 60 || fail "edge 2 did not reach the gateway"
wait_for "$work/edge1-wsh.log" "peer 0 up" 60 || fail "edge 1 did not reach the gateway"
feed f2
# Edge 2 asks the gateway for work as soon as the frame is queued; slowed 1000x, its tile
# takes minutes. Under WSH the gateway relays the frame's picture (the JPEG) to a worker just
# before the worker's first tile task, so once edge 2's counters show the picture's bytes
# received (its heartbeats alone take far longer to add up to them), it holds a tile: kill
# the edge process itself (not its `timeout` wrapper).
picture_bytes=$(stat -c %s "$image")
held=
for ((i = 0; i < 3000; i++)); do
  got=$(sed -n 's/^edge 2:.*bytes_received: \([0-9]*\).*/\1/p' "$work/edge2-wsh.log" | tail -1)
  if [ "${got:-0}" -ge "$picture_bytes" ]; then held=$got; break; fi
  kill -0 "$qemu" 2>/dev/null || break
  sleep 0.1
done
[ -n "$held" ] || fail "edge 2 never received a tile"
pkill -KILL -P "$slow" || fail "edge 2 was gone before it could be killed"
echo "edge 2 killed holding a tile ($held bytes received)"
finish wsh
redispatched=$(echo "$summary" | sed -n 's/.*redispatched=\([0-9]*\).*/\1/p')
[ "${redispatched:-0}" -ge 1 ] || fail "edge 2 was killed holding a tile, yet the gateway re-dispatched nothing"
echo "gateway.sh: ok: wst-s and wsh frames through the Cortex-M4 gateway bit-identical to one" \
  "machine; forged connection dropped; $redispatched tile(s) of the killed edge re-dispatched"
