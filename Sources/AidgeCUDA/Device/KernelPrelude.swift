/// What every kernel source starts with: index types, 16-bit float conversions (written out, so no CUDA header
/// is needed), and the dynamic shared memory declaration. Under `AIDGE_EMULATION` (the CPU emulator the tests
/// use) the conversions are plain C++.
enum KernelPrelude {
    static let text = """
        typedef long long i64;
        typedef unsigned long long u64;
        #ifndef INFINITY
        #define INFINITY __int_as_float(0x7f800000)
        #endif
        #ifndef AIDGE_EMULATION
        #define AIDGE_DYNAMIC_SHARED(type, name) \\
            extern __shared__ __align__(16) unsigned char aidge_dynamic_shared_[]; \\
            type* name = reinterpret_cast<type*>(aidge_dynamic_shared_)
        #endif
        __device__ __forceinline__ float half_to_float(unsigned short h) {
        #ifdef AIDGE_EMULATION
            unsigned int sign = (h >> 15) & 1u, exponent = (h >> 10) & 31u, mantissa = h & 1023u, bits;
            if (exponent == 31u) {
                bits = (sign << 31) | 0x7f800000u | (mantissa << 13);
            } else if (exponent == 0u) {
                float f = (float)mantissa * (1.0f / 16777216.0f);
                return sign ? -f : f;
            } else {
                bits = (sign << 31) | ((exponent + 112u) << 23) | (mantissa << 13);
            }
            return __uint_as_float(bits);
        #else
            float f;
            asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
            return f;
        #endif
        }
        __device__ __forceinline__ unsigned short float_to_half(float f) {
        #ifdef AIDGE_EMULATION
            unsigned int x = __float_as_uint(f), sign = (x >> 16) & 0x8000u;
            unsigned int magnitude = x & 0x7fffffffu;
            if (magnitude > 0x7f800000u) return (unsigned short)(sign | 0x7e00u);
            if (magnitude >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);
            if (magnitude < 0x38800000u) {
                float scaled = __uint_as_float(magnitude) * 16777216.0f;
                return (unsigned short)(sign | (unsigned int)nearbyintf(scaled));
            }
            unsigned int rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u) - (112u << 23);
            return (unsigned short)(sign | (rounded >> 13));
        #else
            unsigned short h;
            asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
            return h;
        #endif
        }
        __device__ __forceinline__ float bfloat_to_float(unsigned short b) {
            return __uint_as_float(((unsigned int)b) << 16);
        }
        __device__ __forceinline__ unsigned short float_to_bfloat(float f) {
            unsigned int x = __float_as_uint(f);
            if ((x & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((x >> 16) | 0x40u);
            return (unsigned short)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
        }

        """

    /// The names of the `extern "C" __global__` kernels that `source` defines.
    static func kernelNames(in source: String) -> [String] {
        var names: [String] = []
        var rest = source[...]
        while let range = rest.firstRange(of: "__global__") {
            rest = rest[range.upperBound...]
            guard let open = rest.firstIndex(of: "(") else { break }
            let head = rest[..<open].split(whereSeparator: { $0 == " " || $0 == "\n" })
            if let name = head.last, head.contains("void") { names.append(String(name)) }
        }
        return names
    }
}
