// avx2 microkernels (placeholder: forwards to the generic kernels until the SIMD kernel lands).
#include "gemm/kernel_info.h"

namespace densitron {
namespace gemm {

void sgemm_ukernel_4x16_generic(const UkernelArgs* p);
void sgemm_ukernel_4x16_generic_rowa(const UkernelArgs* p);

extern const KernelInfo kKernelInfoAvx2 = {
    "avx2", 4, 16, 256, 128, 4096, sgemm_ukernel_4x16_generic, sgemm_ukernel_4x16_generic_rowa};

}  // namespace gemm
}  // namespace densitron
