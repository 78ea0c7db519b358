/// Block sizes of the packed float32 GEMM (BLIS-style loops).
///
/// The micro-kernel computes an `mr x nr` tile of C from an `mr`-row panel of A and an `nr`-column panel of B,
/// both packed k-major. K is cut into blocks of at most `maxKC` (the B micro-panel stays in L1), M into blocks of
/// `mc` rows (the packed A block stays in L2), N into blocks of `nc` columns (the packed B block stays in L2).
enum GEMMBlocking {
    static let mr = 6
    static let nr = 16
    static let maxKC = 256
    static let mc = 144
    static let nc = 1024

    /// K is cut into `kBlockCount(k)` near-equal blocks of at most `maxKC` (K = 288 gives 144 + 144, not
    /// 256 + 32). Prepacked operands and the driver use the same split.
    @inline(__always) static func kBlockCount(_ k: Int) -> Int { (k + maxKC - 1) / maxKC }

    /// Start and size of K block `b`.
    @inline(__always) static func kBlock(_ b: Int, of k: Int) -> (start: Int, size: Int) {
        let count = kBlockCount(k)
        let base = k / count
        let extra = k % count
        return (b * base + min(b, extra), base + (b < extra ? 1 : 0))
    }

    @inline(__always) static func roundUp(_ x: Int, _ m: Int) -> Int { (x + m - 1) / m * m }

    /// Floats of scratch one thread needs: a packed B block, a packed A block and a tile for edges (6x32 for the
    /// AVX-512 kernel).
    static var scratchPerThread: Int { maxKC * nc + mc * maxKC + 2 * mr * nr + 64 }
}
