import CAidgePlatform

/// Facts about the processor the engine runs on.
public enum Processor {
    /// Whether the CPU kernels' instruction sets (AVX2, FMA, F16C on x86-64) are present. Checked before any
    /// kernel runs, so a program on an older processor stops with a message instead of an illegal instruction.
    public static var supportsCPUKernels: Bool { aidge_cpu_supports_kernels() != 0 }

    /// Whether the AVX-512 kernels can run (x86-64 with AVX-512 F/VL/DQ/BW and an OS that saves its registers).
    public static var supportsAVX512: Bool { aidge_cpu_supports_avx512() != 0 }

    /// Size in bytes of cache `level` (1, 2, 3), or nil when the system does not say.
    public static func cacheSize(level: Int) -> Int? {
        let n = aidge_cpu_cache_size(Int32(level))
        return n > 0 ? n : nil
    }
}
