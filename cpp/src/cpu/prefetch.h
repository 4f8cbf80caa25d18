// Software prefetch of a float range, shared by the GEMM (A rows read in place) and the graph
// executor (gathered batch rows).
#pragma once

#include <cstdint>

namespace densitron {

// Requests the n floats at p from memory (every cache line they touch), with
// __builtin_prefetch's temporal locality kLocality (3: all cache levels, 2: from L2 out).
template <int kLocality = 3>
inline void prefetch_floats(const float* p, int64_t n) {
  if (n <= 0) return;
  const uintptr_t end = reinterpret_cast<uintptr_t>(p + n);
  for (uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~uintptr_t{63}; a < end; a += 64)
    __builtin_prefetch(reinterpret_cast<const void*>(a), 0, kLocality);
}

// prefetch_floats for n values of any type (a float64 row: twice the bytes).
template <int kLocality = 3, class T>
inline void prefetch_values(const T* p, int64_t n) {
  prefetch_floats<kLocality>(reinterpret_cast<const float*>(p),
                             n * static_cast<int64_t>(sizeof(T) / sizeof(float)));
}

}  // namespace densitron
