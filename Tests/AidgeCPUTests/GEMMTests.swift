import AidgeCPU
import AidgeCore
import XCTest

/// The packed float32 GEMM against a plain triple loop in Double.
final class GEMMTests: XCTestCase {
    private func reference(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], lda: Int, b: [Float], ldb: Int,
        beta: Float, c: [Float], ldc: Int
    ) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(av) * Double(bv)
                }
                let old = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
                out[i * ldc + j] = Float(Double(alpha) * s + old)
            }
        }
        return out
    }

    /// Checks with the AVX-512 tiles (where the processor has them) and with the AVX2 kernels only.
    private func check(
        _ m: Int, _ n: Int, _ k: Int, transA: Bool = false, transB: Bool = false, alpha: Float = 1, beta: Float = 0,
        pad: Int = 0, threads: Int? = nil, file: StaticString = #filePath, line: UInt = #line
    ) {
        let wide = CPUBackend.usesAVX512
        defer { CPUBackend.usesAVX512 = wide }
        for useWide in Set([wide, false]) {
            CPUBackend.usesAVX512 = useWide
            checkOnce(
                m, n, k, transA: transA, transB: transB, alpha: alpha, beta: beta, pad: pad, threads: threads,
                file: file, line: line)
        }
    }

    private func checkOnce(
        _ m: Int, _ n: Int, _ k: Int, transA: Bool = false, transB: Bool = false, alpha: Float = 1, beta: Float = 0,
        pad: Int = 0, threads: Int? = nil, file: StaticString = #filePath, line: UInt = #line
    ) {
        let lda = (transA ? m : k) + pad
        let ldb = (transB ? k : n) + pad
        let ldc = n + pad
        let a = randomFloats((transA ? k : m) * lda, seed: 1)
        let b = randomFloats((transB ? n : k) * ldb, seed: 2)
        var c = randomFloats(m * ldc, seed: 3)
        if beta == 0 {
            // beta = 0 ignores C entirely, NaN included.
            for i in 0..<m { c[i * ldc] = .nan }
        }
        let expected = reference(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
            beta: beta, c: c, ldc: ldc)
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    BLAS.sgemm(
                        transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: ap.baseAddress!, lda: lda,
                        b: bp.baseAddress!, ldb: ldb, beta: beta, c: cp.baseAddress!, ldc: ldc, threads: threads)
                }
            }
        }
        var got: [Float] = []
        var want: [Float] = []
        for i in 0..<m {
            for j in 0..<n {
                got.append(c[i * ldc + j])
                want.append(expected[i * ldc + j])
            }
        }
        assertClose(got, want, atol: 1e-4, rtol: 1e-4, "\(m)x\(n)x\(k) tA=\(transA) tB=\(transB)", file: file, line: line)
        // Padding columns are left alone.
        for i in 0..<m {
            for j in n..<ldc where c[i * ldc + j] != expected[i * ldc + j] {
                XCTFail("padding at \(i),\(j) was written", file: file, line: line)
                return
            }
        }
    }

    func testTileMultiplesAndEdges() {
        for (m, n, k) in [(6, 16, 8), (12, 32, 5), (6, 64, 7), (13, 48, 4), (18, 80, 2), (1, 1, 1), (5, 17, 3), (7, 15, 9), (2, 33, 20), (13, 1, 7), (1, 40, 31)] {
            check(m, n, k)
        }
    }

    func testMediumProductAcrossKBlocksAndThreads() {
        check(67, 129, 93)
        check(67, 129, 93, threads: 1)
        check(61, 70, 300, threads: 2)  // two K blocks of 150
        check(150, 40, 530)  // three K blocks, two M blocks of the driver
        check(3, 1100, 20)  // more columns than one N block
    }

    func testTransposesAlphaBetaAndStrides() {
        for tA in [false, true] {
            for tB in [false, true] {
                check(19, 23, 29, transA: tA, transB: tB, alpha: 0.5, beta: 2, pad: 3)
                check(8, 35, 13, transA: tA, transB: tB, alpha: -1, beta: 0, pad: 1)
            }
        }
        check(40, 50, 60, beta: 1)
        check(24, 96, 40, alpha: 2, beta: 0.5, pad: 5)
    }

    func testEmptyK() {
        check(4, 5, 0, beta: 0.5)
        check(4, 5, 0, beta: 0)
    }
}
