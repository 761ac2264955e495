#!/usr/bin/env bash
# Builds benchmarks/spmm_loop.cpp against the kernel sources (each ISA file with its own flags, as CMake
# does) into $TMPDIR and runs it: bash benchmarks/spmm_loop.sh [threads] [sparsity] [tokens] [isa]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/kernels/csrc"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
flags=(-O3 -std=c++17 -Wall -Wextra -DPRUNEOFA_HAVE_X86 -I"$src")
g++ "${flags[@]}" -c "$src/spmm_dispatch.cpp" -o "$out/dispatch.o"
g++ "${flags[@]}" -c "$src/spmm_scalar.cpp" -o "$out/scalar.o"
g++ "${flags[@]}" -mavx2 -mfma -c "$src/spmm_avx2.cpp" -o "$out/avx2.o"
g++ "${flags[@]}" -mavx512f -mavx2 -mfma -c "$src/spmm_avx512.cpp" -o "$out/avx512.o"
g++ "${flags[@]}" "$root/benchmarks/spmm_loop.cpp" "$out"/*.o -o "$out/spmm_loop" -lpthread
"$out/spmm_loop" "$@"
