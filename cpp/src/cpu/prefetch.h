// Software prefetch of a float range, shared by the GEMM (A rows read in place) and the graph
// executor (gathered batch rows).
#pragma once

#include <cstdint>

namespace densitron {

// Requests the bytes at p from memory (every cache line they touch), with
// __builtin_prefetch's temporal locality kLocality (3: all cache levels, 2: from L2 out).
template <int kLocality = 3>
inline void prefetch_bytes(const void* p, int64_t bytes) {
  if (bytes <= 0) return;
  const uintptr_t end = reinterpret_cast<uintptr_t>(p) + static_cast<uintptr_t>(bytes);
  for (uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63}; a < end; a += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(a), 0, kLocality);
}

// The n floats at p.
template <int kLocality = 3>
inline void prefetch_floats(const float* p, int64_t n) {
  prefetch_bytes<kLocality>(p, n * static_cast<int64_t>(sizeof(float)));
}

}  // namespace densitron
