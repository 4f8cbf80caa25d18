// Sleeping on an atomic int until another thread changes it: Linux's futex, or yields
// elsewhere. For waits that outlast a spin, so that a thread waiting for another that the
// kernel has descheduled (more runnable threads than cores) gives its core up instead of
// spinning or yielding through the other's time slice.
#pragma once

#include <atomic>
#include <thread>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#endif

namespace densitron {

static_assert(sizeof(std::atomic<int>) == sizeof(int), "a futex word is a plain int");

// Sleeps while *word == value (returns at once if it already differs; may return early, so
// callers re-check in a loop).
inline void futex_wait(std::atomic<int>* word, int value) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<int*>(word), FUTEX_WAIT_PRIVATE, value, nullptr, nullptr,
          0);
#else
  if (word->load(std::memory_order_acquire) == value) std::this_thread::yield();
#endif
}

// Wakes every thread sleeping in futex_wait on word.
inline void futex_wake_all(std::atomic<int>* word) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<int*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
          nullptr, 0);
#else
  (void)word;
#endif
}

}  // namespace densitron
