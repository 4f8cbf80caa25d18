// Which SIMD instruction set this process uses. The CPU's support is read from cpuid and the
// OS's from xgetbv (XCR0 must enable the YMM state for AVX2, and the opmask/ZMM states for
// AVX-512); DENSITRON_ISA=generic|avx2|avx512 forces a path and is an error if unsupported.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "densitron/cpu.h"

#if defined(DENSITRON_X86)
#include <cpuid.h>
#endif

namespace densitron {
namespace {

#if defined(DENSITRON_X86)
uint64_t read_xcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

struct CpuFeatures {
  bool avx2 = false;
  bool avx512 = false;
};

CpuFeatures detect() {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return f;
  const unsigned max_leaf = eax;
  __get_cpuid(1, &eax, &ebx, &ecx, &edx);
  const bool osxsave = ecx & (1u << 27);
  const bool avx = ecx & (1u << 28);
  const bool fma = ecx & (1u << 12);
  if (!osxsave || !avx || max_leaf < 7) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;     // SSE and AVX state
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;   // + opmask, ZMM_Hi256, Hi16_ZMM
  __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx);
  const bool avx2 = ebx & (1u << 5);
  const bool avx512f = ebx & (1u << 16);
  const bool avx512dq = ebx & (1u << 17);
  const bool avx512bw = ebx & (1u << 30);
  const bool avx512vl = ebx & (1u << 31);
  f.avx2 = os_ymm && avx2 && fma;
  f.avx512 = f.avx2 && os_zmm && avx512f && avx512dq && avx512bw && avx512vl;
#if defined(DENSITRON_EMULATE_AVX512)
  // A test build (CMake's DENSITRON_EMULATE_AVX512): the AVX-512 kernels are compiled for AVX2
  // and FMA through SIMDe (cpu/avx512_emulation.h), so they run wherever the AVX2 ones do.
  f.avx512 = f.avx2;
#endif
  return f;
}
#endif

const char* supported_list() {
  static std::string list = [] {
    std::string s;
    for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
      if (!isa_supported(isa)) continue;
      if (!s.empty()) s += ", ";
      s += isa_name(isa);
    }
    return s;
  }();
  return list.c_str();
}

Isa isa_from_env() {
  const char* env = std::getenv("DENSITRON_ISA");
  if (env == nullptr || env[0] == '\0') return best_supported_isa();
  for (Isa isa : {Isa::kGeneric, Isa::kAvx2, Isa::kAvx512}) {
    if (std::strcmp(env, isa_name(isa)) != 0) continue;
    if (!isa_supported(isa)) {
      throw std::runtime_error(std::string("DENSITRON_ISA=") + env +
                               " is not supported by this CPU (supported: " + supported_list() +
                               ")");
    }
    return isa;
  }
  throw std::runtime_error(std::string("DENSITRON_ISA=") + env +
                           " is unknown; expected one of generic, avx2, avx512");
}

std::atomic<int> g_active{-1};

}  // namespace

bool isa_supported(Isa isa) {
#if defined(DENSITRON_X86)
  static const CpuFeatures f = detect();
  switch (isa) {
    case Isa::kGeneric: return true;
    case Isa::kAvx2: return f.avx2;
    case Isa::kAvx512: return f.avx512;
  }
  return false;
#else
  return isa == Isa::kGeneric;
#endif
}

Isa best_supported_isa() {
  if (isa_supported(Isa::kAvx512)) return Isa::kAvx512;
  if (isa_supported(Isa::kAvx2)) return Isa::kAvx2;
  return Isa::kGeneric;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kGeneric: return "generic";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "unknown";
}

Isa active_isa() {
  int v = g_active.load(std::memory_order_acquire);
  if (v >= 0) return static_cast<Isa>(v);
  const Isa chosen = isa_from_env();  // throws on a bad DENSITRON_ISA; retried next call
  int expected = -1;
  g_active.compare_exchange_strong(expected, static_cast<int>(chosen));
  return static_cast<Isa>(g_active.load(std::memory_order_acquire));
}

void set_active_isa(Isa isa) {
  if (!isa_supported(isa)) {
    throw std::invalid_argument(std::string("ISA ") + isa_name(isa) +
                                " is not supported by this CPU (supported: " + supported_list() +
                                ")");
  }
  g_active.store(static_cast<int>(isa), std::memory_order_release);
}

}  // namespace densitron
