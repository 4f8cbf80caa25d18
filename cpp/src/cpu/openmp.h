// OpenMP's runtime functions, or one thread's answers when the compiler has no OpenMP (Apple's
// clang without libomp, say): then every `#pragma omp` is ignored, get_num_threads() is 1 and
// each parallel region runs as one thread's call.
#pragma once

#if defined(_OPENMP)
#include <omp.h>
#else
inline int omp_get_max_threads() { return 1; }
inline int omp_get_num_threads() { return 1; }
inline int omp_get_thread_num() { return 0; }
inline void omp_set_num_threads(int) {}
#endif
