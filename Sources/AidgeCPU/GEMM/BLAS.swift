/// BLAS-style entry points of the CPU GEMM engine (row-major), for kernels, tools and benchmarks.
public enum BLAS {
    /// C = alpha * op(A) * op(B) + beta * C, row-major float32; op(X) is X or its transpose.
    ///
    /// op(A) is M x K (A is stored M x K with row stride `lda`, or K x M when `transA`), op(B) is K x N.
    /// `threads`: at most this many threads (default: `Parallel.threads`).
    public static func sgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int? = nil
    ) {
        if m <= 0 || n <= 0 { return }
        if beta != 0 && beta != 1 {
            for i in 0..<m {
                let row = c + i * ldc
                for j in 0..<n { row[j] *= beta }
            }
        }
        let av = transA
            ? StridedMatrix(base: a, rowStride: 1, colStride: lda) : StridedMatrix(base: a, rowStride: lda, colStride: 1)
        let bv = transB
            ? StridedMatrix(base: b, rowStride: 1, colStride: ldb) : StridedMatrix(base: b, rowStride: ldb, colStride: 1)
        SGEMM.multiply(
            m: m, n: n, k: k, a: StridedA(matrix: av, rows: m), b: StridedB(matrix: bv, cols: n), c: c, ldc: ldc,
            epilogue: GEMMEpilogue(alpha: alpha, accumulate: beta != 0), threads: threads ?? Parallel.threads)
    }
}
