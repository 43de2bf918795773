#!/usr/bin/env python3
"""Writes the seed corpora (run from fuzz/: python3 gen_seeds.py). Frames are clear
(insecure) so the fuzzer reaches the message parsers; see core/src/wire/frame.rs for the layout."""
import struct, os

def header(kind, payload_len, sender=1, origin=0, number=0, task=0, seq=1, flags=0):
    return struct.pack('<4sBBBBHHIHHQI', b'TSRW', 1, kind, flags, 0, sender, origin, number,
                       task, 0, seq, payload_len)

def fk(o, n):
    return struct.pack('<HI', o, n)

def tensor(x0, x1, y0, y1, c):
    n = (x1 - x0) * (y1 - y0) * c
    return struct.pack('<5I', x0, x1, y0, y1, c) + b''.join(struct.pack('<f', i * 0.5) for i in range(n))

payloads = {
    'hello': (1, struct.pack('<HBQ', 3, 1, 0x0123456789abcdef), 0, 0, 0),
    'register': (2, fk(2, 7) + struct.pack('<H', 9), 2, 7, 0),
    'steal_reply': (5, struct.pack('<BH', 1, 4), 0, 0, 0),
    'task': (7, fk(2, 7) + struct.pack('<HB', 4, 1) + tensor(0, 2, 0, 2, 1), 2, 7, 4),
    'result': (10, fk(2, 7) + struct.pack('<H', 4) + tensor(4, 6, 8, 9, 2), 2, 7, 4),
    'strips': (11, fk(2, 7) + struct.pack('<HH', 0, 2) + bytes([1, 0]) + tensor(0, 2, 5, 6, 1)
               + bytes([2, 3]) + tensor(0, 1, 0, 2, 1), 2, 7, 0),
    'strip_request': (12, fk(2, 7) + struct.pack('<HB', 4, 0b0101), 2, 7, 4),
    'frame_done': (15, fk(2, 7) + b'\x01', 2, 7, 0),
    'layer_task': (16, fk(2, 7) + struct.pack('<BH', 3, 1) + struct.pack('<4I', 0, 4, 0, 2)
                   + tensor(0, 4, 0, 3, 1), 2, 7, 1),
    'heartbeat': (18, b'', 0, 0, 0),
    'reject': (19, struct.pack('<H', 77), 0, 0, 0),
}
os.makedirs('corpus/frame_parser', exist_ok=True)
stream = b''
for i, (name, (kind, p, o, n, t)) in enumerate(payloads.items()):
    frame = header(kind, len(p), origin=o, number=n, task=t, seq=10 + i) + p
    stream += frame
    open(f'corpus/frame_parser/frame_{name}', 'wb').write(frame)
    open(f'corpus/frame_parser/payload_{name}', 'wb').write(bytes([kind]) + p)
open('corpus/frame_parser/stream_all', 'wb').write(stream)
open('corpus/frame_parser/sealed_heartbeat', 'wb').write(header(18, 0, flags=1) + bytes(16))

SMALL = open('fuzz_targets/weights_reader.rs').read().split('const SMALL: &str = "')[1].split('";')[0]
SMALL = SMALL.replace('\\n\\\n', '\n').replace('\\n', '\n')
os.makedirs('corpus/cfg_parser', exist_ok=True)
open('corpus/cfg_parser/small.cfg', 'w').write(SMALL)

# Weights for SMALL: 319 parameters; header major 0, minor 2 (8-byte seen).
os.makedirs('corpus/weights_reader', exist_ok=True)
body = b''.join(struct.pack('<f', i * 0.01) for i in range(319))
wide = struct.pack('<iiiQ', 0, 2, 0, 1000)
narrow = struct.pack('<iiii', 0, 1, 0, 1000)
open('corpus/weights_reader/exact_wide', 'wb').write(b'\x00' + wide + body)
open('corpus/weights_reader/exact_wide_upto2', 'wb').write(b'\x04' + wide + body)
open('corpus/weights_reader/repeat_narrow', 'wb').write(b'\x01' + narrow + body[:64])
open('corpus/weights_reader/short', 'wb').write(b'\x00' + wide + body[:100])

# A connection's first bytes (fuzz_targets/link_handshake.rs): mode byte (bit 0 the link
# dials, bit 1 the peer closes after its bytes, bit 2 a valid sealed Hello first), read size,
# then the peer's bytes. The sealed Hello is made by the target (no AEAD here).
os.makedirs('corpus/link_handshake', exist_ok=True)
hs = {
    'empty_silent': bytes([0, 0]),
    'empty_closed': bytes([2, 0]),
    'clear_hello': bytes([0, 63]) + header(1, 11) + struct.pack('<HBQ', 1, 1, 0),
    'big_header': bytes([0, 7]) + header(7, 64 << 20, flags=1),
    'half_header': bytes([2, 3]) + header(1, 27, flags=1)[:20],
    'probe_hello_clear': bytes([0, 63]) + header(1, 11, sender=0xffff) + struct.pack('<HBQ', 0xffff, 2, 0),
    'garbage': bytes([0, 5]) + b'GET / HTTP/1.1\r\n\r\n' * 3,
    'refusal_to_dialler': bytes([1, 63]) + header(19, 2, sender=0) + struct.pack('<H', 1),
    'busy_to_dialler': bytes([3, 1]) + header(19, 2, sender=0) + struct.pack('<H', 5),
    'hello_then_heartbeat': bytes([4, 9]) + header(18, 0, flags=1, seq=2) + bytes(16),
    'hello_then_big_frame': bytes([6, 63]) + header(10, 1 << 20, flags=1, seq=2),
    'dialled_hello_then_frames': bytes([5, 17]) + header(18, 0, flags=1, seq=2) + bytes(16) * 2,
}
for name, data in hs.items():
    open(f'corpus/link_handshake/{name}', 'wb').write(data)

# datagram_parser: records [op, len, bytes]; see fuzz_targets/datagram_parser.rs.
os.makedirs('corpus/datagram_parser', exist_ok=True)
def rec(op, *b):
    return bytes([op, len(b)]) + bytes(b)
seeds = {
    # A 3-fragment message from sender 0, delivered out of order with a duplicate.
    'reorder_dup': rec(1, 0, 200, 0, 20, 7) + rec(2, 2, 0) + rec(2, 0, 0) + rec(2, 0, 0) + rec(2, 1, 0),
    # A message, one fragment corrupted, the rest late.
    'corrupt_late': rec(1, 1, 0, 2, 5, 1) + rec(2, 0, 0, 0x40, 9) + rec(3, 10) + rec(2, 1, 0),
    # Raw bytes with the datagram magic.
    'raw': rec(0, *b'TSDG\x01\x07\x00\x00' + bytes(40)),
    # Forgeries from sender 3 and small messages filling the slots.
    'forged_full': rec(1, 3, 10, 0, 5, 0) + rec(2, 0, 0) + rec(1, 0, 0, 8, 9, 0) + rec(1, 1, 0, 8, 9, 0)
                   + rec(1, 2, 0, 8, 9, 0) + rec(1, 0, 0, 8, 9, 0) + rec(2, 1, 0) + rec(2, 40, 0) + rec(2, 80, 0)
                   + rec(2, 120, 0) + rec(2, 160, 0),
}
for name, b in seeds.items():
    open(f'corpus/datagram_parser/{name}', 'wb').write(b)
