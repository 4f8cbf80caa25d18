#!/usr/bin/env bash
# Sets up everything on a fresh Debian machine and runs every test: the C++ test and benchmark
# libraries from apt, the package with its test extras from PyPI, then pytest and ctest.
set -euo pipefail
cd "$(dirname "$0")/.."

# On x86-64 also a cross compiler and qemu-user, to build and run the C++ tests for AArch64, and
# SIMDe (header-only) to run the AVX-512 kernels' C++ tests on CPUs without AVX-512.
APT=(libgtest-dev libbenchmark-dev)
[ "$(uname -m)" = x86_64 ] && APT+=(g++-aarch64-linux-gnu qemu-user libsimde-dev)
if ! dpkg -s "${APT[@]}" >/dev/null 2>&1; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT[@]}"
fi

python3 -m pip install -q ".[test]"

python3 -m pytest -q -p no:cacheprovider --rootdir=. tests

# Every test again on the other kernel paths this CPU can run (the first pass ran the one the
# package chose by itself, as the package reports it).
ISAS=$(cd /tmp && env -u DENSITRON_ISA python3 -c "from densitron import _core
info = _core.cpu_info()
print(' '.join(i for i in info['supported_isas'] if i != info['isa']))")
for isa in $ISAS; do
  DENSITRON_ISA=$isa python3 -m pytest -q -p no:cacheprovider --rootdir=. tests
done

# C++ kernel tests (ctest), with the benchmarks compiled so they keep building.
GENERATOR=()
command -v ninja >/dev/null 2>&1 && GENERATOR=(-G Ninja)
cmake -S . -B build/ci "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release -DDENSITRON_BUILD_PYTHON=OFF \
  -DDENSITRON_BUILD_TESTS=ON -DDENSITRON_BUILD_BENCH=ON
cmake --build build/ci -j2
ctest --test-dir build/ci --output-on-failure

# Without AVX-512 here, the C++ tests once more with the AVX-512 kernels compiled for AVX2
# against SIMDe (CMakeLists.txt's DENSITRON_EMULATE_AVX512), so that what the AVX-512 machines
# run by default is checked here too.
if [ "$(uname -m)" = x86_64 ] && ! grep -qw avx512f /proc/cpuinfo && grep -qw avx2 /proc/cpuinfo
then
  cmake -S . -B build/ci-avx512-emulated "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DDENSITRON_BUILD_PYTHON=OFF -DDENSITRON_BUILD_TESTS=ON -DDENSITRON_EMULATE_AVX512=ON
  cmake --build build/ci-avx512-emulated -j2
  ctest --test-dir build/ci-avx512-emulated --output-on-failure
fi

# The engine as a compiler without OpenMP builds it (one thread), and its C++ tests; built too
# with the portable elementwise kernels' scalar form (compilers without vector extensions).
cmake -S . -B build/ci-no-openmp "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DDENSITRON_BUILD_PYTHON=OFF -DDENSITRON_BUILD_TESTS=ON -DCMAKE_DISABLE_FIND_PACKAGE_OpenMP=ON \
  -DCMAKE_CXX_FLAGS=-DDENSITRON_SCALAR_ELEMENTWISE
cmake --build build/ci-no-openmp -j2
ctest --test-dir build/ci-no-openmp --output-on-failure

# The same C++ tests built for AArch64 and run under qemu-user: the portable kernels (the GEMM's
# vector-extension tile, the elementwise loops) and the FPCR flush-to-zero as ARM machines
# compile them, GoogleTest built from Debian's sources for that target.
if [ "$(uname -m)" = x86_64 ]; then
  cmake -S . -B build/ci-aarch64 "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
    -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ \
    "-DCMAKE_CROSSCOMPILING_EMULATOR=qemu-aarch64;-L;/usr/aarch64-linux-gnu" \
    -DDENSITRON_BUILD_PYTHON=OFF -DDENSITRON_BUILD_TESTS=ON \
    -DDENSITRON_GTEST_SOURCE=/usr/src/googletest -Wno-dev -Wno-deprecated
  cmake --build build/ci-aarch64 -j2
  ctest --test-dir build/ci-aarch64 --output-on-failure
fi
