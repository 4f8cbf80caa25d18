// The number of threads the kernels use. Defaults to OpenMP's (omp_get_max_threads(), which
// honours OMP_NUM_THREADS) read at first use; set_num_threads overrides it for the process.
// GNU OpenMP's thread pool does not survive fork(): a child process that entered a parallel
// region would hang. So a forked child runs everything on its one thread (every parallel region
// here is entered only with more than one thread).
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include "cpu/openmp.h"
#include "densitron/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define DENSITRON_HAS_MXCSR 1
#endif

namespace densitron {
namespace {
std::atomic<int> g_num_threads{0};  // 0: not read yet
std::atomic<bool> g_forked{false};

void on_fork_child() {
  g_forked.store(true, std::memory_order_relaxed);
  g_num_threads.store(1, std::memory_order_relaxed);
}

const int g_atfork_registered = pthread_atfork(nullptr, nullptr, on_fork_child);
}  // namespace

bool built_with_openmp() {
#if defined(_OPENMP)
  return true;
#else
  return false;
#endif
}

int get_num_threads() {
#if !defined(_OPENMP)
  return 1;  // built without OpenMP: one thread, whatever was asked
#endif
  int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  n = omp_get_max_threads();
  if (n < 1) n = 1;
  int expected = 0;
  g_num_threads.compare_exchange_strong(expected, n, std::memory_order_relaxed);
  return g_num_threads.load(std::memory_order_relaxed);
}

void set_num_threads(int n) {
  if (n < 1) {
    throw std::invalid_argument("num_threads must be >= 1. Received: num_threads=" +
                                std::to_string(n));
  }
  if (g_forked.load(std::memory_order_relaxed)) return;  // a forked child stays on one thread
  g_num_threads.store(n, std::memory_order_relaxed);
  omp_set_num_threads(n);
}

namespace {
// Split runs are judged a window of kJudgedSeconds of them at a time: a thread off its core
// while runnable for more than kSplitOffCore of the window (on a quiet machine well under 1%;
// beside two busy processes on two cores 40-70%) marks it busy, and two busy windows in a row
// find the machine oversubscribed (one is often a passing burst: another library's threads
// spinning down after its last call, as OpenBLAS's do for up to ~0.1 s). One-thread runs
// then follow; once `solo_seconds` of them are pooled with their thread off its core less
// than kSoloOffCore of the time, split runs are tried again. A retry that finds the machine
// still oversubscribed doubles the one-thread time before the next (up to kMaxSoloSeconds),
// so a machine with one core to spare does not alternate between the two every window.
constexpr double kJudgedSeconds = 0.05;
constexpr int kBusyWindows = 2;
constexpr double kSplitOffCore = 0.2;
constexpr double kSoloOffCore = 0.1;
constexpr double kFirstSoloSeconds = 0.05;
constexpr double kMaxSoloSeconds = 8.0;

struct Contention {
  std::mutex mutex;
  bool split = true;  // the kind of runs pooled
  double wall = 0.0, off_core = 0.0;
  int busy_windows = 0;  // split windows in a row found busy
  double solo_seconds = kFirstSoloSeconds;
};
Contention g_contention;
std::atomic<int> g_adaptive{-1};  // -1: DENSITRON_ADAPTIVE_THREADS not read yet
std::atomic<bool> g_oversubscribed{false};
}  // namespace

bool adaptive_threads() {
  int on = g_adaptive.load(std::memory_order_relaxed);
  if (on < 0) {
    const char* env = std::getenv("DENSITRON_ADAPTIVE_THREADS");
    const bool off = env != nullptr && (std::strcmp(env, "0") == 0 ||
                                        std::strcmp(env, "false") == 0);
    int expected = -1;
    g_adaptive.compare_exchange_strong(expected, off ? 0 : 1, std::memory_order_relaxed);
    on = g_adaptive.load(std::memory_order_relaxed);
  }
  return on == 1;
}

void set_adaptive_threads(bool on) {
  g_adaptive.store(on ? 1 : 0, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(g_contention.mutex);
  g_oversubscribed.store(false, std::memory_order_relaxed);
  g_contention.split = true;
  g_contention.wall = g_contention.off_core = 0.0;
  g_contention.busy_windows = 0;
  g_contention.solo_seconds = kFirstSoloSeconds;
}

bool machine_oversubscribed() {
  return g_oversubscribed.load(std::memory_order_relaxed) && adaptive_threads();
}

void note_run(double wall, double off_core, int threads) {
  if (!adaptive_threads() || !(wall > 0.0)) return;
  Contention& c = g_contention;
  std::lock_guard<std::mutex> lock(c.mutex);
  const bool split = threads > 1;
  if (split != c.split) {  // runs of the other kind start a new pool
    c.split = split;
    c.wall = c.off_core = 0.0;
    c.busy_windows = 0;
  }
  c.wall += wall;
  c.off_core += off_core;
  if (c.wall < (split ? kJudgedSeconds : c.solo_seconds)) return;
  const double share = c.off_core / c.wall;
  const int windows = static_cast<int>(c.wall / kJudgedSeconds);  // (a long run: several)
  c.wall = c.off_core = 0.0;
  if (split && share > kSplitOffCore) {
    c.busy_windows += windows;
    if (c.busy_windows >= kBusyWindows) {
      g_oversubscribed.store(true, std::memory_order_relaxed);
      c.busy_windows = 0;
    }
  } else if (split) {
    c.busy_windows = 0;
    c.solo_seconds = kFirstSoloSeconds;
  } else if (share < kSoloOffCore) {
    g_oversubscribed.store(false, std::memory_order_relaxed);
    c.solo_seconds = std::min(2.0 * c.solo_seconds, kMaxSoloSeconds);
  }
}

namespace {
#if defined(__linux__)
// The calling thread's /proc/thread-self/schedstat, opened once (pread at 0 reads it anew).
struct SchedStat {
  int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
  ~SchedStat() {
    if (fd >= 0) close(fd);
  }
};
#endif
}  // namespace

double thread_wait_seconds() {
#if defined(__linux__)
  thread_local SchedStat stat;
  if (stat.fd < 0) return -1.0;
  char buf[128];
  const ssize_t n = pread(stat.fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return -1.0;
  buf[n] = '\0';
  char* end = nullptr;
  std::strtoull(buf, &end, 10);  // time on a CPU, then time runnable on a run queue (ns)
  char* after = nullptr;
  const unsigned long long wait = std::strtoull(end, &after, 10);
  if (after == end) return -1.0;
  return 1e-9 * static_cast<double>(wait);
#else
  return -1.0;
#endif
}

double thread_cpu_seconds() {
#if defined(CLOCK_THREAD_CPUTIME_ID)
  timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
#endif
  return 0.0;
}

#ifdef DENSITRON_HAS_MXCSR
constexpr unsigned kFlushToZero = 0x8000u, kDenormalsAreZero = 0x0040u;
FlushDenormals::FlushDenormals() : saved_(_mm_getcsr()) {
  _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero);
}
FlushDenormals::~FlushDenormals() { _mm_setcsr(saved_); }
#elif defined(__aarch64__)
// FPCR's FZ bit: subnormal inputs and results of float operations are zero.
constexpr unsigned long long kFpcrFlushToZero = 1ull << 24;
unsigned long long read_fpcr() {
  unsigned long long r;
  __asm__ __volatile__("mrs %0, fpcr" : "=r"(r));
  return r;
}
void write_fpcr(unsigned long long r) { __asm__ __volatile__("msr fpcr, %0" : : "r"(r)); }
FlushDenormals::FlushDenormals() : saved_(read_fpcr()) { write_fpcr(saved_ | kFpcrFlushToZero); }
FlushDenormals::~FlushDenormals() { write_fpcr(saved_); }
#else
FlushDenormals::FlushDenormals() = default;
FlushDenormals::~FlushDenormals() = default;
#endif

}  // namespace densitron
