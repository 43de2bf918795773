//! armv7 Advanced SIMD micro-kernels (a Raspberry Pi 3 on a 32-bit OS: Cortex-A53, NEON with
//! VFPv4's fused `VFMA.F32`), written in inline assembly: on `armv7-unknown-linux-gnueabihf` the
//! NEON intrinsics and `#[target_feature(enable = "neon")]` are unstable, and the target enables
//! neither NEON nor VFPv4, so [`available`] checks the CPU at run time and every vector instruction
//! lives in an `asm!` block (`.fpu neon-vfpv4`) with fixed registers.
//!
//! # Results
//!
//! Every output is the chain of the [module docs](super): `acc = fma(w, x, acc)` per tap in the
//! order (c, ky, kx), one `VFMA` (one rounding) per tap and lane, then `fma(acc, a, b)` and the
//! leaky `max(y, 0.1·y)` (equal to `y ≤ 0 ? 0.1·y : y` for every non-NaN `y`: both zeros keep their
//! sign; NEON returns its default NaN, as every NEON operation does). The result equals the scalar
//! path bit for bit **for normal numbers only**: ARMv7 Advanced SIMD arithmetic always flushes
//! subnormal operands and results to zero (its FPSCR `FZ` bit is fixed), so an output whose chain
//! meets a subnormal may differ. Tiles and threads equal the full frame bit for bit on this path
//! too (the operations per output do not depend on the tiling).
//!
//! # Tiles
//!
//! A tile is `N ≤ 6` output channels × 8 columns (2 q registers per channel: 12 accumulators in
//! q4–q15 for `N = 6`), the input vectors of one tap in q0–q1 and the broadcast weights alternating
//! in q2/q3 (ARMv7 has no by-element `VFMA`, so each weight is loaded to all lanes with `VLD1.32
//! {dX[], dY[]}`, one channel ahead of its use; the next tap's inputs and first weight are loaded
//! at the end of a tap, within a kernel row). The last block of a row is one tile of 8 columns if
//! more than 4 remain (whole-vector reads up to the next multiple of 4 columns are in bounds by
//! [`Row::check`]), else of 4 columns (one q register per channel); a tile that is not whole runs
//! on a stack copy of its accumulators and stores only its valid columns. The whole channel ×
//! kernel-row × tap loop, the accumulator load/zeroing and the [`Post`] epilogue of a tile are one
//! `asm!` block; 1×1 convs take a flat channel loop with the next channel's input and first weight
//! loaded during the current one.
//!
//! # Instruction mix and Pi 3 estimate
//!
//! One (c, ky) step of a 3×3, 6 × 8 tile (3 taps): 6 input loads of 4 lanes (`VLD1.32` of two d
//! registers, 3 × 32 bytes), 18 weight broadcasts (`VLD1.32` to all lanes), 36 `VFMA.F32` q (288
//! flops), and 9 integer/branch instructions (tap counter, row step and counter), plus 7 per
//! channel (≈ 2.3 per step). A 1×1, 6 × 8 step (one channel): 2 input loads, 6 broadcasts, 12
//! `VFMA`s (96 flops), 2 loop instructions.
//!
//! The Cortex-A53 has a 64-bit NEON datapath: a q-register `VFMA` issues every 2 cycles, so the 3×3
//! step needs ≥ 72 cycles (4 flops/cycle, 4.8 GFLOP/s per core at 1.2 GHz). Its 24 loads take the
//! load pipe; if they dual-issue with the `VFMA`s the step stays at ~72–80 cycles (≈ 4.3–4.8
//! GFLOP/s per core), if not it takes ~72 + 24–30 cycles (≈ 3.4 GFLOP/s per core), i.e. roughly
//! 13–19 GFLOP/s on 4 cores before memory and thermal limits. A tap has 12 independent accumulator
//! chains for `N = 6` (8 for `N = 4`), more than the `VFMA` latency (~8 cycles, 4 issue slots)
//! needs. These are estimates from the instruction mix (the kernels are tested under qemu-arm,
//! which says nothing about speed); measure with [`peak`] and the conv benchmarks on the Pi.
#![allow(clippy::needless_range_loop)]

#[cfg(feature = "std")]
extern crate std;

use core::mem::offset_of;

use super::row::{Post, Row};
use super::R;

/// f32 lanes per q register.
const L: usize = 4;
/// Columns of a whole tile (2 q registers).
const W: usize = 2 * L;

/// Independent q-register `VFMA` chains of [`peak`] (q4–q15).
pub(super) const PEAK_CHAINS: u64 = 12;

/// True when the CPU has NEON and VFPv4 (`HWCAP_NEON`, `HWCAP_VFPv4` in the auxiliary vector;
/// read once). Without `std`, from the compile-time target features.
pub(super) fn available() -> bool {
    #[cfg(feature = "std")]
    {
        use core::sync::atomic::{AtomicU8, Ordering};
        /// 0: not read yet, 1: no, 2: yes.
        static CACHE: AtomicU8 = AtomicU8::new(0);
        match CACHE.load(Ordering::Relaxed) {
            0 => {
                let yes = hwcap().is_some_and(|h| h & HWCAP_NEON != 0 && h & HWCAP_VFPV4 != 0);
                CACHE.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                yes
            }
            v => v == 2,
        }
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(all(target_feature = "neon", target_feature = "vfp4"))
    }
}

/// `AT_HWCAP` (Linux `auxvec.h`).
#[cfg(feature = "std")]
const AT_HWCAP: u32 = 16;
/// Linux arm `HWCAP_NEON`.
#[cfg(feature = "std")]
const HWCAP_NEON: u32 = 1 << 12;
/// Linux arm `HWCAP_VFPv4` (the fused `VFMA`).
#[cfg(feature = "std")]
const HWCAP_VFPV4: u32 = 1 << 16;

/// `AT_HWCAP` from `/proc/self/auxv` (pairs of native-endian u32: type, value).
#[cfg(feature = "std")]
fn hwcap() -> Option<u32> {
    let auxv = std::fs::read("/proc/self/auxv").ok()?;
    auxv.chunks_exact(8).find_map(|e| {
        let word = |i: usize| u32::from_ne_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
        (word(0) == AT_HWCAP).then(|| word(4))
    })
}

/// What a tile's `asm!` block reads besides its pointer operands (offsets via `offset_of!`).
#[repr(C)]
struct Frame {
    /// Accumulators: channel `r`'s 8 (or 4) columns at `acc + r·astride` bytes; loaded unless
    /// `first`, stored at the end.
    acc: *mut f32,
    /// Bytes between two channels' accumulators.
    astride: usize,
    /// Nonzero on the first chunk: sums start at 0.
    first: u32,
    /// Nonzero on the last chunk: apply `a`, `b` (and `leaky`).
    last: u32,
    /// Nonzero for the leaky activation.
    leaky: u32,
    /// Kernel rows per channel.
    nky: u32,
    /// Taps per kernel row that also load the next tap's operands (`k − 1`).
    kx: u32,
    /// Bytes from the input pointer after a kernel row's loads to the next row's start.
    row_step: isize,
    /// Bytes from after a channel's last kernel row to the next channel's first.
    chan_step: isize,
    /// Weight bytes of the kernel rows outside the map, skipped after each channel.
    wskip: usize,
    /// [`Post::a`] of the tile's channels.
    a: *const f32,
    /// [`Post::b`] of the tile's channels.
    b: *const f32,
    /// 0.1, broadcast by the leaky epilogue.
    tenth: f32,
}

/// Accumulators in: zeroed if `first`, else loaded (`kyc`, `kxc`, flags clobbered).
macro_rules! acc_in {
    ($(($dr:literal; $($a:literal),+)),+) => {
        concat!(
            "ldr {kyc}, [{f}, #{o_first}]\n",
            "cmp {kyc}, #0\n",
            "ldr {kyc}, [{f}, #{o_acc}]\n",
            "ldr {kxc}, [{f}, #{o_astride}]\n",
            "bne 2f\n",
            $("vld1.32 {{", $dr, "}}, [{kyc}], {kxc}\n",)+
            "b 3f\n",
            "2:\n",
            $($("vmov.i32 ", $a, ", #0\n",)+)+
            "3:\n",
        )
    };
}

/// Loads one tap's input vectors (the pointer steps by `{m}` net) and its first weight.
macro_rules! operands {
    ($($xl:literal),+) => {
        concat!($($xl, "\n",)+ "vld1.32 {{d4[], d5[]}}, [{w}]!\n")
    };
}

/// One tap: channel `r < N − 1` broadcasts weight `r + 1` into the other weight register, then
/// runs its `VFMA`s (acc += x·w); the last channel's `VFMA`s.
macro_rules! tap {
    (
        [$(($nlo:literal, $nhi:literal, $wq:literal; $(($ma:literal, $mx:literal)),+)),*];
        ($lwq:literal; $(($la:literal, $lx:literal)),+)
    ) => {
        concat!(
            $(
                "vld1.32 {{", $nlo, "[], ", $nhi, "[]}}, [{w}]!\n",
                $("vfma.f32 ", $ma, ", ", $mx, ", ", $wq, "\n",)+
            )*
            $("vfma.f32 ", $la, ", ", $lx, ", ", $lwq, "\n",)+
        )
    };
}

/// Epilogue: on the last chunk `y = fma(acc, a, b)` (q0 = a, q1 = b broadcast per channel),
/// then leaky `max(y, 0.1·y)` (q2 = 0.1); then the accumulators are stored.
macro_rules! acc_out {
    ($(($dr:literal; $($a:literal),+)),+) => {
        concat!(
            "ldr {kyc}, [{f}, #{o_last}]\n",
            "cmp {kyc}, #0\n",
            "beq 11f\n",
            "ldr {kyc}, [{f}, #{o_a}]\n",
            "ldr {kxc}, [{f}, #{o_b}]\n",
            "add {nc}, {f}, #{o_tenth}\n",
            "vld1.32 {{d4[], d5[]}}, [{nc}]\n",
            "ldr {nc}, [{f}, #{o_leaky}]\n",
            "cmp {nc}, #0\n",
            "beq 10f\n",
            $(
                "vld1.32 {{d0[], d1[]}}, [{kyc}]!\n",
                "vld1.32 {{d2[], d3[]}}, [{kxc}]!\n",
                $(
                    "vmov q3, q1\n",
                    "vfma.f32 q3, ", $a, ", q0\n",
                    "vmul.f32 ", $a, ", q3, q2\n",
                    "vmax.f32 ", $a, ", ", $a, ", q3\n",
                )+
            )+
            "b 11f\n",
            "10:\n",
            $(
                "vld1.32 {{d0[], d1[]}}, [{kyc}]!\n",
                "vld1.32 {{d2[], d3[]}}, [{kxc}]!\n",
                $(
                    "vmov q3, q1\n",
                    "vfma.f32 q3, ", $a, ", q0\n",
                    "vmov ", $a, ", q3\n",
                )+
            )+
            "11:\n",
            "ldr {kyc}, [{f}, #{o_acc}]\n",
            "ldr {kxc}, [{f}, #{o_astride}]\n",
            $("vst1.32 {{", $dr, "}}, [{kyc}], {kxc}\n",)+
        )
    };
}

/// Defines `unsafe fn $name(f, x, w, nc, m, k1)`: one whole tile of one channel count and
/// width (its accumulators `acc`, input loads `x`, tap schedule `mid`/`last`), a flat channel
/// loop for 1×1 (`k1`) or channel × kernel-row × tap loops for `k ≥ 2`.
///
/// Operands: `x` the input of tap (0, 0, 0) of the tile's first column, `w` the first weight
/// used, `nc` the channels (0: no taps), `m` the input post-increment of the last input load of
/// a tap (see [`row`]).
///
/// The clobbers name d0–d15 rather than q0–q7: the target has no NEON, and LLVM then silently
/// drops q-register clobbers, so it would not save the callee-saved d8–d15 (nor keep its own
/// values out of d0–d7). q8–q15 (d16–d31) do not exist for the compiler on this target; they
/// are listed for builds that enable NEON.
macro_rules! tile {
    (
        $name:ident;
        x: [$($xl:literal),+];
        acc: [$(($dr:literal; $($a:literal),+)),+];
        mid: [$($mid:tt),* $(,)?];
        last: $last:tt
    ) => {
        /// One tile (see [`tile!`]).
        ///
        /// # Safety
        ///
        /// NEON and VFPv4 are available; `f.acc` holds the tile's accumulators; every input,
        /// weight and accumulator address the loops form from `x`, `w`, `nc`, `m` and `f` is
        /// readable (accumulators writable): see the bounds in [`row`].
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name(
            f: *const Frame,
            x: *const f32,
            w: *const f32,
            nc: usize,
            m: isize,
            k1: bool,
        ) {
            if k1 {
                // SAFETY: the caller's contract; the block writes only the accumulators and
                // the registers it declares.
                unsafe {
                    core::arch::asm!(
                        ".fpu neon-vfpv4",
                        acc_in!($(($dr; $($a),+)),+),
                        "cmp {nc}, #0",
                        "beq 8f",
                        operands!($($xl),+),
                        "subs {nc}, {nc}, #1",
                        "beq 7f",
                        // Every channel but the last: its taps, then the next channel's
                        // operands (the loads have a whole tap of VFMAs to land).
                        "4:",
                        tap!([$($mid),*]; $last),
                        operands!($($xl),+),
                        "subs {nc}, {nc}, #1",
                        "bne 4b",
                        "7:",
                        tap!([$($mid),*]; $last),
                        "8:",
                        acc_out!($(($dr; $($a),+)),+),
                        f = in(reg) f,
                        x = inout(reg) x => _,
                        w = inout(reg) w => _,
                        nc = inout(reg) nc => _,
                        m = in(reg) m,
                        kyc = out(reg) _,
                        kxc = out(reg) _,
                        o_acc = const offset_of!(Frame, acc),
                        o_astride = const offset_of!(Frame, astride),
                        o_first = const offset_of!(Frame, first),
                        o_last = const offset_of!(Frame, last),
                        o_leaky = const offset_of!(Frame, leaky),
                        o_a = const offset_of!(Frame, a),
                        o_b = const offset_of!(Frame, b),
                        o_tenth = const offset_of!(Frame, tenth),
                        out("d0") _, out("d1") _, out("d2") _, out("d3") _,
                        out("d4") _, out("d5") _, out("d6") _, out("d7") _,
                        out("d8") _, out("d9") _, out("d10") _, out("d11") _,
                        out("d12") _, out("d13") _, out("d14") _, out("d15") _,
                        out("q8") _, out("q9") _, out("q10") _, out("q11") _,
                        out("q12") _, out("q13") _, out("q14") _, out("q15") _,
                        options(nostack),
                    );
                }
            } else {
                // SAFETY: as above.
                unsafe {
                    core::arch::asm!(
                        ".fpu neon-vfpv4",
                        acc_in!($(($dr; $($a),+)),+),
                        "cmp {nc}, #0",
                        "beq 8f",
                        "4:",
                        "ldr {kyc}, [{f}, #{o_nky}]",
                        "5:",
                        // Kernel row: taps 0..k−1 each load the next tap's operands, the last
                        // does not (the next row may start a new channel, or end the input).
                        operands!($($xl),+),
                        "ldr {kxc}, [{f}, #{o_kx}]",
                        "6:",
                        tap!([$($mid),*]; $last),
                        operands!($($xl),+),
                        "subs {kxc}, {kxc}, #1",
                        "bne 6b",
                        tap!([$($mid),*]; $last),
                        "ldr {kxc}, [{f}, #{o_row}]",
                        "add {x}, {x}, {kxc}",
                        "subs {kyc}, {kyc}, #1",
                        "bne 5b",
                        "ldr {kxc}, [{f}, #{o_chan}]",
                        "add {x}, {x}, {kxc}",
                        "ldr {kxc}, [{f}, #{o_wskip}]",
                        "add {w}, {w}, {kxc}",
                        "subs {nc}, {nc}, #1",
                        "bne 4b",
                        "8:",
                        acc_out!($(($dr; $($a),+)),+),
                        f = in(reg) f,
                        x = inout(reg) x => _,
                        w = inout(reg) w => _,
                        nc = inout(reg) nc => _,
                        m = in(reg) m,
                        kyc = out(reg) _,
                        kxc = out(reg) _,
                        o_acc = const offset_of!(Frame, acc),
                        o_astride = const offset_of!(Frame, astride),
                        o_first = const offset_of!(Frame, first),
                        o_last = const offset_of!(Frame, last),
                        o_leaky = const offset_of!(Frame, leaky),
                        o_nky = const offset_of!(Frame, nky),
                        o_kx = const offset_of!(Frame, kx),
                        o_row = const offset_of!(Frame, row_step),
                        o_chan = const offset_of!(Frame, chan_step),
                        o_wskip = const offset_of!(Frame, wskip),
                        o_a = const offset_of!(Frame, a),
                        o_b = const offset_of!(Frame, b),
                        o_tenth = const offset_of!(Frame, tenth),
                        out("d0") _, out("d1") _, out("d2") _, out("d3") _,
                        out("d4") _, out("d5") _, out("d6") _, out("d7") _,
                        out("d8") _, out("d9") _, out("d10") _, out("d11") _,
                        out("d12") _, out("d13") _, out("d14") _, out("d15") _,
                        out("q8") _, out("q9") _, out("q10") _, out("q11") _,
                        out("q12") _, out("q13") _, out("q14") _, out("q15") _,
                        options(nostack),
                    );
                }
            }
        }
    };
}

// The tiles `tile_{N}x{8,4}`. Channel r accumulates in q(4+2r), q(5+2r) (8 columns) or q(4+r)
// (4 columns); the weight of channel r is broadcast into q2 (r even) or q3 (r odd) while
// channel r − 1 runs, so a broadcast never overwrites the weight in use.
tile!(tile_1x8;
    x: ["vld1.32 {{d0-d1}}, [{x}]!", "vld1.32 {{d2-d3}}, [{x}], {m}"];
    acc: [
        ("d8-d11"; "q4", "q5")
    ];
    mid: [];
    last: ("q2"; ("q4", "q0"), ("q5", "q1"))
);
tile!(tile_1x4;
    x: ["vld1.32 {{d0-d1}}, [{x}], {m}"];
    acc: [
        ("d8-d9"; "q4")
    ];
    mid: [];
    last: ("q2"; ("q4", "q0"))
);
tile!(tile_2x8;
    x: ["vld1.32 {{d0-d1}}, [{x}]!", "vld1.32 {{d2-d3}}, [{x}], {m}"];
    acc: [
        ("d8-d11"; "q4", "q5"),
        ("d12-d15"; "q6", "q7")
    ];
    mid: [
        ("d6", "d7", "q2"; ("q4", "q0"), ("q5", "q1")),
    ];
    last: ("q3"; ("q6", "q0"), ("q7", "q1"))
);
tile!(tile_2x4;
    x: ["vld1.32 {{d0-d1}}, [{x}], {m}"];
    acc: [
        ("d8-d9"; "q4"),
        ("d10-d11"; "q5")
    ];
    mid: [
        ("d6", "d7", "q2"; ("q4", "q0")),
    ];
    last: ("q3"; ("q5", "q0"))
);
tile!(tile_3x8;
    x: ["vld1.32 {{d0-d1}}, [{x}]!", "vld1.32 {{d2-d3}}, [{x}], {m}"];
    acc: [
        ("d8-d11"; "q4", "q5"),
        ("d12-d15"; "q6", "q7"),
        ("d16-d19"; "q8", "q9")
    ];
    mid: [
        ("d6", "d7", "q2"; ("q4", "q0"), ("q5", "q1")),
        ("d4", "d5", "q3"; ("q6", "q0"), ("q7", "q1")),
    ];
    last: ("q2"; ("q8", "q0"), ("q9", "q1"))
);
tile!(tile_3x4;
    x: ["vld1.32 {{d0-d1}}, [{x}], {m}"];
    acc: [
        ("d8-d9"; "q4"),
        ("d10-d11"; "q5"),
        ("d12-d13"; "q6")
    ];
    mid: [
        ("d6", "d7", "q2"; ("q4", "q0")),
        ("d4", "d5", "q3"; ("q5", "q0")),
    ];
    last: ("q2"; ("q6", "q0"))
);
tile!(tile_4x8;
    x: ["vld1.32 {{d0-d1}}, [{x}]!", "vld1.32 {{d2-d3}}, [{x}], {m}"];
    acc: [
        ("d8-d11"; "q4", "q5"),
        ("d12-d15"; "q6", "q7"),
        ("d16-d19"; "q8", "q9"),
        ("d20-d23"; "q10", "q11")
    ];
    mid: [
        ("d6", "d7", "q2"; ("q4", "q0"), ("q5", "q1")),
        ("d4", "d5", "q3"; ("q6", "q0"), ("q7", "q1")),
        ("d6", "d7", "q2"; ("q8", "q0"), ("q9", "q1")),
    ];
    last: ("q3"; ("q10", "q0"), ("q11", "q1"))
);
tile!(tile_4x4;
    x: ["vld1.32 {{d0-d1}}, [{x}], {m}"];
    acc: [
        ("d8-d9"; "q4"),
        ("d10-d11"; "q5"),
        ("d12-d13"; "q6"),
        ("d14-d15"; "q7")
    ];
    mid: [
        ("d6", "d7", "q2"; ("q4", "q0")),
        ("d4", "d5", "q3"; ("q5", "q0")),
        ("d6", "d7", "q2"; ("q6", "q0")),
    ];
    last: ("q3"; ("q7", "q0"))
);
tile!(tile_5x8;
    x: ["vld1.32 {{d0-d1}}, [{x}]!", "vld1.32 {{d2-d3}}, [{x}], {m}"];
    acc: [
        ("d8-d11"; "q4", "q5"),
        ("d12-d15"; "q6", "q7"),
        ("d16-d19"; "q8", "q9"),
        ("d20-d23"; "q10", "q11"),
        ("d24-d27"; "q12", "q13")
    ];
    mid: [
        ("d6", "d7", "q2"; ("q4", "q0"), ("q5", "q1")),
        ("d4", "d5", "q3"; ("q6", "q0"), ("q7", "q1")),
        ("d6", "d7", "q2"; ("q8", "q0"), ("q9", "q1")),
        ("d4", "d5", "q3"; ("q10", "q0"), ("q11", "q1")),
    ];
    last: ("q2"; ("q12", "q0"), ("q13", "q1"))
);
tile!(tile_5x4;
    x: ["vld1.32 {{d0-d1}}, [{x}], {m}"];
    acc: [
        ("d8-d9"; "q4"),
        ("d10-d11"; "q5"),
        ("d12-d13"; "q6"),
        ("d14-d15"; "q7"),
        ("d16-d17"; "q8")
    ];
    mid: [
        ("d6", "d7", "q2"; ("q4", "q0")),
        ("d4", "d5", "q3"; ("q5", "q0")),
        ("d6", "d7", "q2"; ("q6", "q0")),
        ("d4", "d5", "q3"; ("q7", "q0")),
    ];
    last: ("q2"; ("q8", "q0"))
);
tile!(tile_6x8;
    x: ["vld1.32 {{d0-d1}}, [{x}]!", "vld1.32 {{d2-d3}}, [{x}], {m}"];
    acc: [
        ("d8-d11"; "q4", "q5"),
        ("d12-d15"; "q6", "q7"),
        ("d16-d19"; "q8", "q9"),
        ("d20-d23"; "q10", "q11"),
        ("d24-d27"; "q12", "q13"),
        ("d28-d31"; "q14", "q15")
    ];
    mid: [
        ("d6", "d7", "q2"; ("q4", "q0"), ("q5", "q1")),
        ("d4", "d5", "q3"; ("q6", "q0"), ("q7", "q1")),
        ("d6", "d7", "q2"; ("q8", "q0"), ("q9", "q1")),
        ("d4", "d5", "q3"; ("q10", "q0"), ("q11", "q1")),
        ("d6", "d7", "q2"; ("q12", "q0"), ("q13", "q1")),
    ];
    last: ("q3"; ("q14", "q0"), ("q15", "q1"))
);
tile!(tile_6x4;
    x: ["vld1.32 {{d0-d1}}, [{x}], {m}"];
    acc: [
        ("d8-d9"; "q4"),
        ("d10-d11"; "q5"),
        ("d12-d13"; "q6"),
        ("d14-d15"; "q7"),
        ("d16-d17"; "q8"),
        ("d18-d19"; "q9")
    ];
    mid: [
        ("d6", "d7", "q2"; ("q4", "q0")),
        ("d4", "d5", "q3"; ("q5", "q0")),
        ("d6", "d7", "q2"; ("q6", "q0")),
        ("d4", "d5", "q3"; ("q7", "q0")),
        ("d6", "d7", "q2"; ("q8", "q0")),
    ];
    last: ("q3"; ("q9", "q0"))
);

/// Computes `N` output channels of one row segment (stride 1) into
/// `out[r·oplane + orow + j]`.
pub(super) fn row<const N: usize>(
    job: &Row<'_>,
    post: &Post,
    out: &mut [f32],
    oplane: usize,
    orow: usize,
) {
    assert!(job.stride == 1 && available());
    job.check(N, L, out.len(), oplane, orow);
    if job.j1 <= job.j0 {
        return;
    }
    let k = job.k;
    let k1 = k == 1;
    let mut frame = Frame {
        acc: core::ptr::null_mut(),
        astride: 0,
        first: job.first as u32,
        last: job.last as u32,
        leaky: post.leaky as u32,
        nky: job.nky as u32,
        kx: k.saturating_sub(1) as u32,
        row_step: (job.row as isize - k as isize) * 4,
        chan_step: (job.plane as isize - (job.nky * job.row) as isize) * 4,
        wskip: (k - job.nky) * k * N * 4,
        a: post.a.as_ptr(),
        b: post.b.as_ptr(),
        tenth: 0.1,
    };
    // No taps when no kernel row lies in the map (then `base` need not be in bounds).
    let nc = if job.nky == 0 { 0 } else { job.channels };
    let input = job.input.as_ptr().wrapping_add(job.base);
    let weights = job.weights.as_ptr().wrapping_add(job.ky0 * k * N);
    let mut j = job.j0;
    while j < job.j1 {
        let n = (job.j1 - j).min(W);
        // More than 4 columns: an 8-wide tile (the reads up to the next multiple of 4 columns
        // are in bounds); else a 4-wide one.
        let width = if n > L { W } else { L };
        // Input post-increment of a tap's last load: 1×1 steps to the next channel plane,
        // k ≥ 2 to the next tap (+4 bytes net; the 8-wide load pair's first load adds 16).
        let m = match (k1, width == W) {
            (true, true) => job.plane as isize * 4 - 16,
            (true, false) => job.plane as isize * 4,
            (false, true) => -12,
            (false, false) => 4,
        };
        let mut buf = [0.0f32; R * W];
        let whole = n == width;
        if whole {
            frame.acc = out[orow + j..].as_mut_ptr();
            frame.astride = oplane * 4;
        } else {
            if !job.first {
                for r in 0..N {
                    let o = r * oplane + orow + j;
                    buf[r * width..r * width + n].copy_from_slice(&out[o..o + n]);
                }
            }
            frame.acc = buf.as_mut_ptr();
            frame.astride = width * 4;
        }
        let x = input.wrapping_add(j);
        // SAFETY: NEON and VFPv4 are available (asserted above). `check` bounds every address
        // the tile forms: the weights of channels `0..nc`, rows `ky0..ky0 + nky` (skipped rows
        // by `wskip`); the input of channels `0..nc`, rows `0..nky`, columns `j + kx + 0..width`
        // for `kx < k`, i.e. up to `j + width + k − 2` with `j + width` at most `j1` rounded
        // up to a multiple of 4 (`width = 8` only when more than 4 columns remain); and the
        // accumulators: `whole` tiles read and write `out[r·oplane + orow + j + 0..width]`
        // below `j1` (`frame.acc` derives from `out`, not otherwise used meanwhile), others
        // the stack buffer `buf` of `R·W ≥ N·width` values. `post.a`/`post.b` hold `R ≥ N`.
        unsafe {
            let f = &frame as *const Frame;
            match (N, width == W) {
                (6, true) => tile_6x8(f, x, weights, nc, m, k1),
                (6, false) => tile_6x4(f, x, weights, nc, m, k1),
                (5, true) => tile_5x8(f, x, weights, nc, m, k1),
                (5, false) => tile_5x4(f, x, weights, nc, m, k1),
                (4, true) => tile_4x8(f, x, weights, nc, m, k1),
                (4, false) => tile_4x4(f, x, weights, nc, m, k1),
                (3, true) => tile_3x8(f, x, weights, nc, m, k1),
                (3, false) => tile_3x4(f, x, weights, nc, m, k1),
                (2, true) => tile_2x8(f, x, weights, nc, m, k1),
                (2, false) => tile_2x4(f, x, weights, nc, m, k1),
                (_, true) => tile_1x8(f, x, weights, nc, m, k1),
                (_, false) => tile_1x4(f, x, weights, nc, m, k1),
            }
        }
        if !whole {
            for r in 0..N {
                let o = r * oplane + orow + j;
                out[o..o + n].copy_from_slice(&buf[r * width..r * width + n]);
            }
        }
        j += n;
    }
}

/// 12 independent chains of `acc += x·y` on q registers, `iters` times (96 flops per
/// iteration); returns a checksum so the loop is not removed.
pub(super) fn peak(iters: u64) -> f32 {
    assert!(available());
    let mut acc = [1.0f32; 4 * PEAK_CHAINS as usize];
    // Opaque factors, so nothing can be folded.
    let xy = [
        core::hint::black_box(0.999_999f32),
        core::hint::black_box(1e-6f32),
    ];
    let mut left = iters;
    while left > 0 {
        let n = left.min(1 << 30) as u32;
        left -= n as u64;
        // SAFETY: NEON and VFPv4 are available (asserted above); the block reads `xy` and
        // reads and writes `acc` (48 f32), and writes only the registers it declares (d0–d3,
        // d8–d15 by name so that the compiler saves d8–d15, see `tile!`).
        unsafe {
            core::arch::asm!(
                ".fpu neon-vfpv4",
                "vld1.32 {{d0[], d1[]}}, [{xy}]!",
                "vld1.32 {{d2[], d3[]}}, [{xy}]",
                "mov {p}, {acc}",
                "vld1.32 {{d8-d11}}, [{p}]!",
                "vld1.32 {{d12-d15}}, [{p}]!",
                "vld1.32 {{d16-d19}}, [{p}]!",
                "vld1.32 {{d20-d23}}, [{p}]!",
                "vld1.32 {{d24-d27}}, [{p}]!",
                "vld1.32 {{d28-d31}}, [{p}]",
                "2:",
                "vfma.f32 q4, q0, q1",
                "vfma.f32 q5, q0, q1",
                "vfma.f32 q6, q0, q1",
                "vfma.f32 q7, q0, q1",
                "vfma.f32 q8, q0, q1",
                "vfma.f32 q9, q0, q1",
                "vfma.f32 q10, q0, q1",
                "vfma.f32 q11, q0, q1",
                "vfma.f32 q12, q0, q1",
                "vfma.f32 q13, q0, q1",
                "vfma.f32 q14, q0, q1",
                "vfma.f32 q15, q0, q1",
                "subs {n}, {n}, #1",
                "bne 2b",
                "vst1.32 {{d8-d11}}, [{acc}]!",
                "vst1.32 {{d12-d15}}, [{acc}]!",
                "vst1.32 {{d16-d19}}, [{acc}]!",
                "vst1.32 {{d20-d23}}, [{acc}]!",
                "vst1.32 {{d24-d27}}, [{acc}]!",
                "vst1.32 {{d28-d31}}, [{acc}]",
                xy = inout(reg) xy.as_ptr() => _,
                acc = inout(reg) acc.as_mut_ptr() => _,
                n = inout(reg) n => _,
                p = out(reg) _,
                out("d0") _, out("d1") _, out("d2") _, out("d3") _,
                out("d8") _, out("d9") _, out("d10") _, out("d11") _,
                out("d12") _, out("d13") _, out("d14") _, out("d15") _,
                out("q8") _, out("q9") _, out("q10") _, out("q11") _,
                out("q12") _, out("q13") _, out("q14") _, out("q15") _,
                options(nostack),
            );
        }
    }
    acc.iter().sum()
}

#[cfg(test)]
mod tests {
    extern crate alloc;
    extern crate std;

    use alloc::vec;
    use alloc::vec::Vec;

    use super::super::row::{row_scalar, Post, Row};
    use super::super::R;

    /// xorshift64*; `f` uniform in [-1, 1) on a 2⁻²³ grid (normal numbers or zero).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn f(&mut self) -> f32 {
            (self.next() >> 41) as f32 / (1u32 << 22) as f32 - 1.0
        }
    }

    /// One random row job of `n` channels run by `row` and by `row_scalar`: equal bit for bit,
    /// and nothing outside the segment written.
    fn case(rng: &mut Rng, n: usize, k: usize) {
        let channels = 1 + rng.below(5);
        let ky0 = rng.below(k);
        let nky = rng.below(k - ky0 + 1); // 0 ..= k − ky0
        let j0 = 16 * rng.below(2);
        let j1 = j0 + rng.below(41);
        let cols = j0 + (j1 - j0).div_ceil(4) * 4;
        let row = cols + k - 1 + rng.below(3);
        let plane = nky.max(1) * row + rng.below(5);
        let base = rng.below(7);
        let len = base + channels * plane;
        let input: Vec<f32> = (0..len).map(|_| rng.f()).collect();
        let weights: Vec<f32> = (0..channels * k * k * n).map(|_| rng.f()).collect();
        let mut post = Post {
            a: [0.0; R],
            b: [0.0; R],
            leaky: rng.below(2) == 0,
        };
        for r in 0..R {
            post.a[r] = rng.f();
            post.b[r] = rng.f() * 0.25;
        }
        let job = Row {
            input: &input,
            base,
            plane,
            row,
            channels,
            ky0,
            nky,
            k,
            stride: 1,
            weights: &weights,
            j0,
            j1,
            first: rng.below(2) == 0,
            last: rng.below(2) == 0,
        };
        let orow = rng.below(9);
        let oplane = orow + j1 + rng.below(9);
        let out0: Vec<f32> = (0..(n - 1) * oplane + orow + j1 + 3)
            .map(|_| rng.f())
            .collect();
        let (mut want, mut got) = (out0.clone(), out0.clone());
        row_scalar(&job, n, &post, &mut want, oplane, orow);
        match n {
            6 => super::row::<6>(&job, &post, &mut got, oplane, orow),
            5 => super::row::<5>(&job, &post, &mut got, oplane, orow),
            4 => super::row::<4>(&job, &post, &mut got, oplane, orow),
            3 => super::row::<3>(&job, &post, &mut got, oplane, orow),
            2 => super::row::<2>(&job, &post, &mut got, oplane, orow),
            _ => super::row::<1>(&job, &post, &mut got, oplane, orow),
        }
        // Guards the test itself: finite values of the expected size.
        assert!(want.iter().all(|v| v.is_finite() && v.abs() < 64.0));
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(
                w.to_bits(),
                g.to_bits(),
                "n {n} k {k} c {channels} ky {ky0}+{nky} j {j0}..{j1} first {} last {} \
                 leaky {} at {i}: {w} vs {g}",
                job.first,
                job.last,
                post.leaky,
            );
        }
    }

    #[test]
    fn rows_equal_the_scalar_path_bit_for_bit() {
        assert!(super::available());
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for n in 1..=6 {
            for k in [1, 2, 3, 5] {
                for _ in 0..60 {
                    case(&mut rng, n, k);
                }
            }
        }
    }

    #[test]
    fn leaky_keeps_signed_zeros_and_scales_negatives() {
        // One 1×1 channel, w = 1: the output is fma(x, a, b) then leaky.
        let xs = [0.0f32, -0.0, -2.0, 3.0, -1e-3, 5e-3, -1.0, 1.0];
        let mut input = vec![0.0f32; 16];
        input[..8].copy_from_slice(&xs);
        let weights = [1.0f32];
        let post = Post {
            a: [1.0; R],
            b: [-0.0; R],
            leaky: true,
        };
        let job = Row {
            input: &input,
            base: 0,
            plane: 16,
            row: 16,
            channels: 1,
            ky0: 0,
            nky: 1,
            k: 1,
            stride: 1,
            weights: &weights,
            j0: 0,
            j1: 8,
            first: false,
            last: true,
        };
        // Sums continue from −0 and b = −0, so an input −0 stays −0 up to the leaky step.
        let (mut want, mut got) = ([-0.0f32; 8], [-0.0f32; 8]);
        row_scalar(&job, 1, &post, &mut want, 8, 0);
        super::row::<1>(&job, &post, &mut got, 8, 0);
        assert_eq!(want.map(f32::to_bits), got.map(f32::to_bits));
        assert_eq!(got[0].to_bits(), 0.0f32.to_bits());
        assert_eq!(got[1].to_bits(), (-0.0f32).to_bits());
        assert_eq!(got[2], -2.0 * 0.1);
        assert_eq!(got[3], 3.0);
    }

    #[test]
    fn peak_runs() {
        // 48 lanes of 1 + 1000 · 0.999999·10⁻⁶ (in f32 steps of 2⁻²⁰ ≈ 0.95·10⁻⁶ each).
        let s = super::peak(1000);
        assert!(s > 48.04 && s < 48.06, "{s}");
        assert_eq!(super::peak(0), 48.0);
    }
}
