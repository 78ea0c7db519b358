import AidgeCPU
import AidgeCore
import XCTest

/// Gemm and MatMul against naive loops written from the ONNX specification.
final class LinearTests: XCTestCase {
    // MARK: Gemm

    /// Y = alpha * op(A) * op(B) + beta * C, C broadcast to M x N.
    private func gemmReference(
        _ a: [Double], _ aShape: [Int], _ b: [Double], _ bShape: [Int], _ c: [Double]?, _ cShape: [Int],
        transA: Bool, transB: Bool, alpha: Double, beta: Double
    ) -> [Double] {
        let m = transA ? aShape[1] : aShape[0]
        let k = transA ? aShape[0] : aShape[1]
        let n = transB ? bShape[0] : bShape[1]
        var y = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * aShape[1] + i] : a[i * aShape[1] + p]
                    let bv = transB ? b[j * bShape[1] + p] : b[p * bShape[1] + j]
                    s += av * bv
                }
                var v = alpha * s
                if let c {
                    let cr = cShape.count == 2 ? cShape[0] : 1
                    let cc = cShape.last ?? 1
                    let ci = (cr == 1 ? 0 : i) * cc + (cc == 1 ? 0 : j)
                    v += beta * c[ci]
                }
                y[i * n + j] = v
            }
        }
        return y
    }

    private func checkGemm(
        m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false, alpha: Float = 1, beta: Float = 1,
        cShape: [Int]?, constants: Set<Int>, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let aShape = transA ? [k, m] : [m, k]
        let bShape = transB ? [n, k] : [k, n]
        let a = randomFloats(m * k, seed: 11)
        let b = randomFloats(k * n, seed: 12)
        let c = cShape.map { randomFloats(ShapeUtil.count($0), seed: 13) }
        var attributes: Attributes = ["transA": .int(transA ? 1 : 0), "transB": .int(transB ? 1 : 0)]
        if alpha != 1 { attributes["alpha"] = .float(alpha) }
        if beta != 1 { attributes["beta"] = .float(beta) }
        var inputs: [Tensor?] = [try Tensor(a, shape: aShape), try Tensor(b, shape: bShape)]
        if let c, let cShape { inputs.append(try Tensor(c, shape: cShape)) }
        let out = try runOperator("Gemm", attributes, inputs: inputs, constants: constants)
        XCTAssertEqual(out[0].shape, [m, n], file: file, line: line)
        let expected = gemmReference(
            a.map(Double.init), aShape, b.map(Double.init), bShape, c?.map(Double.init), cShape ?? [],
            transA: transA, transB: transB, alpha: Double(alpha), beta: Double(beta))
        assertClose(
            try out[0].scalars(as: Float.self), expected.map { Float($0) }, atol: 1e-4, rtol: 1e-4,
            "Gemm \(m)x\(n)x\(k) C \(cShape ?? [])", file: file, line: line)
    }

    func testGemmFullyConnectedWithPrepackedWeights() throws {
        // The classifier of ResNet: Y = X * W^T + b with constant W and b.
        try checkGemm(m: 1, n: 37, k: 64, transB: true, cShape: [37], constants: [1, 2])
        try checkGemm(m: 5, n: 37, k: 64, transB: true, cShape: [1, 37], constants: [1, 2])
        try checkGemm(m: 67, n: 93, k: 129, transB: true, cShape: [93], constants: [1, 2])
    }

    func testGemmRuntimeOperandsAndBroadcasts() throws {
        for tA in [false, true] {
            for tB in [false, true] {
                try checkGemm(m: 7, n: 19, k: 11, transA: tA, transB: tB, alpha: 0.5, beta: 2, cShape: [7, 19], constants: [])
                try checkGemm(m: 7, n: 19, k: 11, transA: tA, transB: tB, cShape: [19], constants: [])
                try checkGemm(m: 7, n: 19, k: 11, transA: tA, transB: tB, alpha: 2, cShape: [7, 1], constants: [1])
            }
        }
        try checkGemm(m: 4, n: 6, k: 3, beta: 0.25, cShape: [], constants: [2])
        try checkGemm(m: 4, n: 6, k: 3, beta: -1, cShape: [7 - 6, 1], constants: [])
        try checkGemm(m: 4, n: 6, k: 3, cShape: nil, constants: [1])
        try checkGemm(m: 4, n: 6, k: 3, beta: 3, cShape: [4, 1], constants: [2])
        try checkGemm(m: 4, n: 6, k: 3, beta: 3, cShape: [4, 6], constants: [2])
    }

    func testGemmFusedActivation() throws {
        let a = randomFloats(7 * 33, seed: 41)
        let b = randomFloats(33 * 20, seed: 42)
        let c = randomFloats(20, seed: 43)
        let expected = gemmReference(
            a.map(Double.init), [7, 33], b.map(Double.init), [20, 33], c.map(Double.init), [20], transA: false,
            transB: true, alpha: 1, beta: 1)
        for constants in [Set<Int>([1, 2]), []] {
            let relu = try runOperator(
                "Gemm", ["transB": .int(1), "activation": .string("Relu")],
                inputs: [try Tensor(a, shape: [7, 33]), try Tensor(b, shape: [20, 33]), try Tensor(c, shape: [20])],
                constants: constants)
            assertClose(try relu[0].scalars(as: Float.self), expected.map { Float(max($0, 0)) }, atol: 1e-4)
            let clip = try runOperator(
                "Gemm", ["transB": .int(1), "activation": .string("Clip"), "activation_params": .floats([-0.5, 1])],
                inputs: [try Tensor(a, shape: [7, 33]), try Tensor(b, shape: [20, 33]), try Tensor(c, shape: [20])],
                constants: constants)
            assertClose(try clip[0].scalars(as: Float.self), expected.map { Float(min(max($0, -0.5), 1)) }, atol: 1e-4)
        }
    }

    func testGemmFloat64() throws {
        let a: [Double] = [1, 2, 3, 4, 5, 6]
        let b: [Double] = [1, 0, -1, 2, 0.5, 3]
        let c: [Double] = [10, 20]
        let out = try runOperator(
            "Gemm", ["transB": .int(1), "alpha": .float(2), "beta": .float(0.5)],
            inputs: [try Tensor(a, shape: [2, 3]), try Tensor(b, shape: [2, 3]), try Tensor(c, shape: [2])])
        let expected = gemmReference(a, [2, 3], b, [2, 3], c, [2], transA: false, transB: true, alpha: 2, beta: 0.5)
        XCTAssertEqual(try out[0].scalars(as: Double.self), expected)
    }

    func testGemmShapeErrors() {
        let a = Tensor(zeros: [3, 4])
        XCTAssertThrowsError(try runOperator("Gemm", inputs: [a, Tensor(zeros: [5, 2])])) { error in
            XCTAssertTrue("\(error)".contains("3x4") && "\(error)".contains("5x2"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("Gemm", inputs: [a, Tensor(zeros: [4, 2]), Tensor(zeros: [2, 3])]))
        XCTAssertThrowsError(try runOperator("Gemm", inputs: [a, Tensor(zeros: [4, 2], dtype: .float64)]))
        XCTAssertThrowsError(try runOperator("Gemm", inputs: [Tensor(zeros: [3, 4], dtype: .bool), Tensor(zeros: [4, 2], dtype: .bool)]))
    }

    // MARK: MatMul

    /// NumPy matmul with Double accumulation.
    private func matMulReference(_ a: [Double], _ aShape: [Int], _ b: [Double], _ bShape: [Int]) -> ([Double], [Int]) {
        let a2 = aShape.count == 1 ? [1, aShape[0]] : aShape
        let b2 = bShape.count == 1 ? [bShape[0], 1] : bShape
        let m = a2[a2.count - 2], k = a2[a2.count - 1], n = b2[b2.count - 1]
        let ba = Array(a2.dropLast(2)), bb = Array(b2.dropLast(2))
        let rank = max(ba.count, bb.count)
        let pa = [Int](repeating: 1, count: rank - ba.count) + ba
        let pb = [Int](repeating: 1, count: rank - bb.count) + bb
        let batch = zip(pa, pb).map { max($0, $1) }
        let count = batch.reduce(1, *)
        var out = [Double](repeating: 0, count: count * m * n)
        for t in 0..<count {
            var rest = t, ia = 0, ib = 0, sa = 1, sb = 1
            for d in stride(from: rank - 1, through: 0, by: -1) {
                let x = rest % batch[d]
                rest /= batch[d]
                ia += (pa[d] == 1 ? 0 : x) * sa
                ib += (pb[d] == 1 ? 0 : x) * sb
                sa *= pa[d]
                sb *= pb[d]
            }
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0
                    for p in 0..<k { s += a[ia * m * k + i * k + p] * b[ib * k * n + p * n + j] }
                    out[t * m * n + i * n + j] = s
                }
            }
        }
        var shape = batch
        if aShape.count > 1 { shape.append(m) }
        if bShape.count > 1 { shape.append(n) }
        return (out, shape)
    }

    private func checkMatMul(
        _ aShape: [Int], _ bShape: [Int], constants: Set<Int> = [], file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let a = randomFloats(ShapeUtil.count(aShape), seed: 21)
        let b = randomFloats(ShapeUtil.count(bShape), seed: 22)
        let out = try runOperator(
            "MatMul", inputs: [try Tensor(a, shape: aShape), try Tensor(b, shape: bShape)], constants: constants)
        let (expected, shape) = matMulReference(a.map(Double.init), aShape, b.map(Double.init), bShape)
        XCTAssertEqual(out[0].shape, shape, "\(aShape) x \(bShape)", file: file, line: line)
        assertClose(
            try out[0].scalars(as: Float.self), expected.map { Float($0) }, atol: 1e-4, rtol: 1e-4,
            "\(aShape) x \(bShape)", file: file, line: line)
    }

    func testMatMul2DAndVectors() throws {
        try checkMatMul([67, 129], [129, 93])
        try checkMatMul([67, 129], [129, 93], constants: [1])
        try checkMatMul([5], [5, 7])
        try checkMatMul([4, 5], [5])
        try checkMatMul([5], [5])
        try checkMatMul([1, 300], [300, 20], constants: [1])
    }

    func testMatMulBatchedWithBroadcast() throws {
        try checkMatMul([2, 3, 7, 5], [5, 9], constants: [1])  // batches stacked into one product
        try checkMatMul([2, 3, 7, 5], [3, 5, 9])
        try checkMatMul([2, 1, 7, 5], [1, 4, 5, 9], constants: [1])
        try checkMatMul([7, 5], [3, 5, 9])
        try checkMatMul([3, 5], [2, 5, 40])
        try checkMatMul([6, 40, 64], [6, 64, 40])  // products large enough for the threaded path
        try checkMatMul([3, 1, 5], [5])
        try checkMatMul([5], [2, 5, 3])
    }

    func testMatMulOtherTypes() throws {
        let a: [Int64] = [1, 2, 3, 4, 5, 6]
        let b: [Int64] = [7, 8, 9, 10, 11, 12]
        let out = try runOperator("MatMul", inputs: [try Tensor(a, shape: [2, 3]), try Tensor(b, shape: [3, 2])])
        XCTAssertEqual(try out[0].scalars(as: Int64.self), [58, 64, 139, 154])
        let ai = a.map { Int32($0) }, bi = b.map { Int32($0) }
        let outI = try runOperator("MatMul", inputs: [try Tensor(ai, shape: [1, 2, 3]), try Tensor(bi, shape: [3, 2])])
        XCTAssertEqual(try outI[0].scalars(as: Int32.self), [58, 64, 139, 154])
        let ad = a.map { Double($0) / 2 }, bd = b.map { Double($0) }
        let outD = try runOperator("MatMul", inputs: [try Tensor(ad, shape: [2, 3]), try Tensor(bd, shape: [3, 2])])
        XCTAssertEqual(try outD[0].scalars(as: Double.self), [29, 32, 69.5, 77])
    }

    func testMatMulShapeErrors() {
        XCTAssertThrowsError(try runOperator("MatMul", inputs: [Tensor(zeros: [2, 3]), Tensor(zeros: [4, 2])])) { error in
            XCTAssertTrue("\(error)".contains("2x3") && "\(error)".contains("4x2"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("MatMul", inputs: [Tensor(zeros: [2, 2, 3]), Tensor(zeros: [3, 3, 2])]))
        XCTAssertThrowsError(try runOperator("MatMul", inputs: [Tensor(zeros: []), Tensor(zeros: [3])]))
    }
}
