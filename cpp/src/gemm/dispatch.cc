// Picks the microkernel table of the ISA in use. The choice is made from cpu.h's active_isa()
// (cpuid + xgetbv, or DENSITRON_ISA) and cached; set_active_isa() for tests switches it.
#include <atomic>

#include "densitron/cpu.h"
#include "gemm/kernel_info.h"

namespace densitron {
namespace gemm {

const KernelInfo* active_kernel_info() {
  static std::atomic<int> cached_isa{-1};
  static std::atomic<const KernelInfo*> cached{nullptr};
  const int isa = static_cast<int>(active_isa());
  if (cached_isa.load(std::memory_order_acquire) == isa) {
    return cached.load(std::memory_order_acquire);
  }
  const KernelInfo* info = &kKernelInfoGeneric;
#if defined(DENSITRON_X86)
  if (isa == static_cast<int>(Isa::kAvx512)) info = &kKernelInfoAvx512;
  if (isa == static_cast<int>(Isa::kAvx2)) info = &kKernelInfoAvx2;
#endif
  cached.store(info, std::memory_order_release);
  cached_isa.store(isa, std::memory_order_release);
  return info;
}

}  // namespace gemm
}  // namespace densitron
