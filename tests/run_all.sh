#!/usr/bin/env bash
# Sets up everything on a fresh Debian machine and runs every test: the C++ test and benchmark
# libraries from apt, the package with its test extras from PyPI, then pytest and ctest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! dpkg -s libgtest-dev libbenchmark-dev >/dev/null 2>&1; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libgtest-dev libbenchmark-dev
fi

python3 -m pip install -q ".[test]"

python3 -m pytest -q -p no:cacheprovider --rootdir=. tests

# Every test again on the other kernel paths this CPU can run.
for isa in generic avx2; do
  if [ "$isa" = generic ] || grep -qw avx2 /proc/cpuinfo; then
    DENSITRON_ISA=$isa python3 -m pytest -q -p no:cacheprovider --rootdir=. tests
  fi
done

# C++ kernel tests (ctest), with the benchmarks compiled so they keep building.
GENERATOR=()
command -v ninja >/dev/null 2>&1 && GENERATOR=(-G Ninja)
cmake -S . -B build/ci "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release -DDENSITRON_BUILD_PYTHON=OFF \
  -DDENSITRON_BUILD_TESTS=ON -DDENSITRON_BUILD_BENCH=ON
cmake --build build/ci -j2
ctest --test-dir build/ci --output-on-failure
