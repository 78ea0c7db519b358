#!/usr/bin/env bash
# Build the CPU emulator of the CUDA driver API, NVRTC, cuBLAS and cuDNN (Tests/CUDAEmulator) that lets the CUDA
# backend and its kernel sources run without a GPU: build/cuda-emulator/libaidge_cuda_emulator.so. Rebuilds only when
# a source is newer than the library; prints the library's path.
#
# Usage: bash scripts/build_cuda_emulator.sh
# Env:   CXX   the C++ compiler (default: c++, else clang++, else g++); the emulator compiles kernel sources with it
#              too, unless AIDGE_EMULATOR_CXX names another
# Then:  AIDGE_CUDA_EMULATOR=<printed path> makes the backend load it instead of libcuda, libnvrtc, libcublas and
#        libcudnn.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

sources=Tests/CUDAEmulator
out=build/cuda-emulator
library="${out}/libaidge_cuda_emulator.so"

cxx="${CXX:-}"
if [[ -z "${cxx}" ]]; then
    for candidate in c++ clang++ g++; do
        if command -v "${candidate}" >/dev/null 2>&1; then
            cxx="${candidate}"
            break
        fi
    done
fi
if [[ -z "${cxx}" ]]; then
    echo "build_cuda_emulator: no C++ compiler (c++, clang++, g++); set CXX" >&2
    exit 1
fi

if [[ ! -f "${library}" || -n "$(find "${sources}" scripts/build_cuda_emulator.sh -newer "${library}" -type f)" ]]; then
    mkdir -p "${out}"
    # emulation.h is embedded in the library as a raw string literal: the library writes it next to the kernel
    # sources it compiles, wherever it is installed.
    { printf 'R"AIDGE_EMU_H('; cat "${sources}/emulation.h"; printf ')AIDGE_EMU_H"\n'; } > "${out}/emulation_h.inc"
    # shellcheck disable=SC2086  # CXX may be a command with arguments, such as "ccache g++"
    ${cxx} -std=c++17 -O2 -shared -fPIC -fvisibility=hidden -pthread -Wall -Wextra \
        -DAIDGE_EMU_DEFAULT_CXX="\"${cxx}\"" -I "${out}" -o "${library}.tmp" "${sources}"/*.cpp -ldl
    mv "${library}.tmp" "${library}"
fi
echo "$(pwd)/${library}"
