// LD_PRELOAD shim for bench.py --isa avx2: hides AVX-512 (and AMX) from every `cpuid` the
// process executes, so onnxruntime's MLAS picks its AVX2/FMA kernels, as on the issue's
// AVX2-only reference machine, while Tessera runs its own AVX2 kernels.
//
// How: Linux's CPUID faulting (`arch_prctl(ARCH_SET_CPUID, 0)`, x86 CPUs with the
// `cpuid_fault` flag) turns `cpuid` into SIGSEGV; the handler runs the real instruction with
// faulting off for a moment, clears the feature bits below and steps over the 2-byte opcode.
// The setting is per thread and inherited by threads created later, so it is set in a
// constructor, before the interpreter imports anything. `xgetbv` still reports the ZMM state
// enabled: the libraries checked here require the cpuid bit as well.
//
// Build: gcc -O2 -shared -fPIC -o hide_avx512.so hide_avx512.c
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define ARCH_SET_CPUID 0x1012

static volatile uint64_t emulated;

static long set_faulting(int off) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, off); }

static void hide(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
  if (leaf == 7 && sub == 0) {
    // EBX: AVX512F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28, BW 30, VL 31.
    r[1] &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) |
              (1u << 30) | (1u << 31));
    // ECX: VBMI 1, VBMI2 6, VNNI 11, BITALG 12, VPOPCNTDQ 14.
    r[2] &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
    // EDX: 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8, AMX-BF16 22, AVX512-FP16 23, AMX-TILE 24,
    // AMX-INT8 25.
    r[3] &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) |
              (1u << 25));
  } else if (leaf == 7 && sub == 1) {
    // EAX: AVX-VNNI 4, AVX512-BF16 5 (Zen 2 has neither).
    r[0] &= ~((1u << 4) | (1u << 5));
  }
}

static void on_segv(int sig, siginfo_t *info, void *ctx) {
  (void)sig;
  (void)info;
  greg_t *g = ((ucontext_t *)ctx)->uc_mcontext.gregs;
  const uint8_t *ip = (const uint8_t *)g[REG_RIP];
  if (ip[0] != 0x0f || ip[1] != 0xa2) {
    // A real fault: let it kill the process as it would have.
    signal(SIGSEGV, SIG_DFL);
    return;
  }
  uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX], r[4];
  set_faulting(1);
  __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
  set_faulting(0);
  hide(leaf, sub, r);
  // A 32-bit register write zero-extends into the 64-bit one, as the instruction does.
  g[REG_RAX] = r[0];
  g[REG_RBX] = r[1];
  g[REG_RCX] = r[2];
  g[REG_RDX] = r[3];
  g[REG_RIP] += 2;
  emulated++;
}

static void report(void) {
  if (getenv("HIDE_AVX512_REPORT"))
    fprintf(stderr, "hide_avx512: %llu cpuid instructions answered without AVX-512\n",
            (unsigned long long)emulated);
}

__attribute__((constructor)) static void start(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, NULL) != 0 || set_faulting(0) != 0) {
    perror("hide_avx512: cpuid faulting unavailable (needs an x86 CPU with cpuid_fault)");
    _exit(3);
  }
  atexit(report);
}
