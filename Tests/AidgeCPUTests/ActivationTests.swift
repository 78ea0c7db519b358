import AidgeCPU
import AidgeCore
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// MARK: - References in float64, from the ONNX definitions

private func sigmoid(_ x: Double) -> Double { 1 / (1 + Glibc.exp(-x)) }
private func geluTanh(_ x: Double) -> Double {
    0.5 * x * (1 + Glibc.tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
}
private let seluAlpha = 1.67326319217681884765625
private let seluGamma = 1.05070102214813232421875

/// Edge values, then values spread over the range where the functions bend, then random ones.
private let sampleValues: [Float] =
    [0, -0.0, 1e-7, -1e-7, 0.5, -0.5, 0.625, -0.625, 1, -1, 3, -3, 6, -6, 9, -9, 20, -20, 50, -50, 100, -100]
    + (0..<400).map { Float($0 - 200) / 25 } + randomFloats(1001, seed: 9).map { $0 * 12 }

private func expectThrows(
    _ message: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void
) {
    do {
        try body()
        XCTFail("expected an error", file: file, line: line)
    } catch {
        for part in message where !"\(error)".contains(part) {
            XCTFail("error '\(error)' does not mention '\(part)'", file: file, line: line)
        }
    }
}

/// The largest error of `actual` in units in the last place of the float32 reference.
private func worstUlps(_ actual: [Float], _ exact: [Double]) -> Double {
    var worst = 0.0
    for (a, e) in zip(actual, exact) {
        let r = Float(e)
        if r.isInfinite || e.isNaN {
            if !(a == r || (a.isNaN && e.isNaN)) { return .infinity }
            continue
        }
        if abs(e) < Double(Float.leastNormalMagnitude) {
            // Zero and subnormal results carry few significant bits: only their absolute error is meaningful.
            if abs(Double(a) - e) > 1e-43 { return .infinity }
            continue
        }
        worst = max(worst, abs(Double(a) - e) / Double(r.ulp))
    }
    return worst
}

final class ActivationTests: XCTestCase {
    func testElementwiseActivationsFloat32AndFloat64() throws {
        let refs: [(String, Attributes, (Double) -> Double)] = [
            ("Relu", [:], { $0 < 0 ? 0 : $0 }),
            // Attributes are float32, as in ONNX: the default alpha is Float(0.01).
            ("LeakyRelu", [:], { $0 < 0 ? Double(Float(0.01)) * $0 : $0 }),
            ("LeakyRelu", ["alpha": .float(0.2)], { $0 < 0 ? Double(Float(0.2)) * $0 : $0 }),
            ("Sigmoid", [:], sigmoid),
            ("Tanh", [:], { Glibc.tanh($0) }),
            ("HardSigmoid", [:], { max(0, min(1, Double(Float(0.2)) * $0 + 0.5)) }),
            ("HardSigmoid", ["alpha": .float(0.5), "beta": .float(0.25)], { max(0, min(1, 0.5 * $0 + 0.25)) }),
            ("HardSwish", [:], { $0 * max(0, min(1, $0 / 6 + 0.5)) }),
            ("Gelu", [:], { 0.5 * $0 * (1 + Glibc.erf($0 / 2.0.squareRoot())) }),
            ("Gelu", ["approximate": .string("tanh")], geluTanh),
            ("Elu", [:], { $0 < 0 ? Glibc.exp($0) - 1 : $0 }),
            ("Elu", ["alpha": .float(0.5)], { $0 < 0 ? 0.5 * (Glibc.exp($0) - 1) : $0 }),
            ("Selu", [:], { seluGamma * ($0 <= 0 ? seluAlpha * (Glibc.exp($0) - 1) : $0) }),
            ("Softplus", [:], { Glibc.log(1 + Glibc.exp($0)) }),
        ]
        let x = Tensor(sampleValues)
        for (type, attributes, f) in refs {
            let expected = sampleValues.map { Float(f(Double($0))) }
            let out = try runOperator(type, attributes, inputs: [x])[0]
            XCTAssertEqual(out.dtype, .float32)
            // Absolute tolerance only where the reference itself cancels (Gelu-tanh's 1 + tanh near -1).
            assertClose(try out.scalars(as: Float.self), expected, atol: 1e-7, rtol: 5e-7, type)
            let d = try runOperator(type, attributes, inputs: [x.cast(to: .float64)])[0]
            XCTAssertEqual(d.dtype, .float64)
            let exact = sampleValues.map { f(Double($0)) }
            let dv = try d.scalars(as: Double.self)
            for (i, (a, e)) in zip(dv, exact).enumerated() where abs(a - e) > 1e-12 + 1e-9 * abs(e) {
                XCTFail("\(type) float64 element \(i) (x = \(sampleValues[i])): \(a) vs \(e)")
                break
            }
            let h = try runOperator(type, attributes, inputs: [Tensor(sampleValues.prefix(40).map { Float16($0) })])[0]
            XCTAssertEqual(h.dtype, .float16)
            assertClose(
                try h.scalars(as: Float16.self).map { Float($0) },
                sampleValues.prefix(40).map { Float(Float16(f(Double(Float16($0))))) }, atol: 1e-3, rtol: 2e-3,
                "\(type) float16")
        }
    }

    /// Sigmoid, Tanh and Gelu keep their relative accuracy in both tails (within 2-3 ulp of float64 values).
    func testVectorisedActivationAccuracy() throws {
        let values = (0..<20001).map { Float($0 - 10000) / 400 } + [-87, -88, -89, -95, -103, 87, 88, 89, 100]
        let x = Tensor(values)
        let cases: [(String, Attributes, (Double) -> Double, Double)] = [
            ("Sigmoid", [:], sigmoid, 3),
            ("Tanh", [:], { Glibc.tanh($0) }, 3),
            ("Gelu", [:], { 0.5 * $0 * Glibc.erfc(-$0 / 2.0.squareRoot()) }, 4),
        ]
        for (type, attributes, f, limit) in cases {
            let out = try runOperator(type, attributes, inputs: [x])[0].scalars(as: Float.self)
            let worst = worstUlps(out, values.map { f(Double($0)) })
            XCTAssertLessThanOrEqual(worst, limit, "\(type) \(attributes.values.keys.sorted())")
        }
        let nan = try runOperator("Tanh", inputs: [Tensor([Float.nan, .infinity, -.infinity])])[0].scalars(as: Float.self)
        XCTAssert(nan[0].isNaN)
        XCTAssertEqual(Array(nan[1...]), [1, -1])
        let s = try runOperator("Sigmoid", inputs: [Tensor([Float.nan, .infinity, -.infinity])])[0].scalars(as: Float.self)
        XCTAssert(s[0].isNaN)
        XCTAssertEqual(Array(s[1...]), [1, 0])
        let r = try runOperator("Relu", inputs: [Tensor([Float.nan, -1, 2])])[0].scalars(as: Float.self)
        XCTAssert(r[0].isNaN)
        XCTAssertEqual(Array(r[1...]), [0, 2])
        let g = try runOperator("Gelu", inputs: [Tensor([Float.infinity, -.infinity])])[0].scalars(as: Float.self)
        XCTAssertEqual(g, [.infinity, 0])
    }

    func testLargeActivationRunsInParallel() throws {
        let values = randomFloats(150_011, seed: 3).map { $0 * 8 }
        let out = try runOperator("Sigmoid", inputs: [Tensor(values)])[0].scalars(as: Float.self)
        assertClose(out, values.map { Float(sigmoid(Double($0))) }, atol: 0, rtol: 3e-7)
        let relu = try runOperator("Relu", inputs: [Tensor(values)])[0].scalars(as: Float.self)
        XCTAssertEqual(relu, values.map { $0 < 0 ? 0 : $0 })
    }

    func testReluOnIntegers() throws {
        let out = try runOperator("Relu", inputs: [Tensor([-3, 0, 7, Int32.min] as [Int32])])[0]
        XCTAssertEqual(try out.scalars(as: Int32.self), [0, 0, 7, 0])
        let i64 = try runOperator("Relu", inputs: [Tensor([-3, 5] as [Int64])])[0]
        XCTAssertEqual(try i64.scalars(as: Int64.self), [0, 5])
        expectThrows(["Sigmoid", "int32"]) { _ = try runOperator("Sigmoid", inputs: [Tensor([Int32(1)])]) }
    }

    func testClip() throws {
        let values: [Float] = [-3, -1, 0, 0.5, 2, 7, .nan] + randomFloats(37, seed: 4).map { $0 * 5 }
        let x = Tensor(values)
        func clip(_ lo: Float?, _ hi: Float?) -> [Float] {
            values.map { v in
                if v.isNaN { return v }
                var r = v
                if let lo, r < lo { r = lo }
                if let hi, r > hi { r = hi }
                return r
            }
        }
        func check(_ out: Tensor, _ expected: [Float], _ message: String, line: UInt = #line) throws {
            let a = try out.scalars(as: Float.self)
            XCTAssertEqual(a.count, expected.count, message, line: line)
            for (u, v) in zip(a, expected) where !(u == v || (u.isNaN && v.isNaN)) {
                return XCTFail("\(message): \(a) vs \(expected)", line: line)
            }
        }
        let lo = Tensor(scalar: Float(-1))
        let hi = Tensor(scalar: Float(2))
        try check(runOperator("Clip", inputs: [x, lo, hi], constants: [1, 2])[0], clip(-1, 2), "both")
        try check(runOperator("Clip", inputs: [x, lo, hi])[0], clip(-1, 2), "bounds as graph inputs")
        try check(runOperator("Clip", inputs: [x, nil, hi], constants: [2])[0], clip(nil, 2), "max only")
        try check(runOperator("Clip", inputs: [x, lo], constants: [1])[0], clip(-1, nil), "min only")
        try check(runOperator("Clip", inputs: [x])[0], values, "no bounds")
        // min > max: everything becomes max.
        try check(runOperator("Clip", inputs: [x, Tensor(scalar: Float(3)), Tensor(scalar: Float(1))])[0],
            values.map { $0.isNaN ? $0 : 1 }, "min > max")
        // A one-element 1-D bound is accepted too.
        try check(runOperator("Clip", inputs: [x, Tensor([Float(0)]), nil])[0], clip(0, nil), "1-D bound")
        let ints = try runOperator("Clip", inputs: [Tensor([-5, 3, 10] as [Int64]), Tensor(scalar: Int64(0)), Tensor(scalar: Int64(6))])[0]
        XCTAssertEqual(try ints.scalars(as: Int64.self), [0, 3, 6])
        let d = try runOperator("Clip", inputs: [Tensor([-5.0, 3, 10]), Tensor(scalar: Float(0))])[0]
        XCTAssertEqual(try d.scalars(as: Double.self), [0, 3, 10])
        expectThrows(["min", "[2]"]) { _ = try runOperator("Clip", inputs: [x, Tensor([Float(0), 1])]) }
    }

    func testPRelu() throws {
        let xv = randomFloats(2 * 3 * 4 * 5, seed: 6)
        let sv: [Float] = [0.1, 0.2, 0.3]
        let out = try runOperator("PRelu", inputs: [try Tensor(xv, shape: [2, 3, 4, 5]), try Tensor(sv, shape: [3, 1, 1])])[0]
        XCTAssertEqual(out.shape, [2, 3, 4, 5])
        let expected = xv.enumerated().map { i, v in v < 0 ? Float(Double(v) * Double(sv[(i / 20) % 3])) : v }
        XCTAssertEqual(try out.scalars(as: Float.self), expected)
        let scalar = try runOperator("PRelu", inputs: [Tensor([-2, 3] as [Float]), Tensor(scalar: Float(0.5))])[0]
        XCTAssertEqual(try scalar.scalars(as: Float.self), [-1, 3])
        let ints = try runOperator("PRelu", inputs: [Tensor([-2, 3] as [Int32]), Tensor([3, 3] as [Int32])])[0]
        XCTAssertEqual(try ints.scalars(as: Int32.self), [-6, 3])
        let d = try runOperator("PRelu", inputs: [Tensor([-2.0, 3]), Tensor([0.25])])[0]
        XCTAssertEqual(try d.scalars(as: Double.self), [-0.5, 3])
        expectThrows(["[5]", "[2, 3]"]) { _ = try runOperator("PRelu", inputs: [Tensor(zeros: [2, 3]), Tensor(zeros: [5])]) }
        // The slope may not grow the output.
        expectThrows(["[2, 3]", "[3]"]) { _ = try runOperator("PRelu", inputs: [Tensor(zeros: [3]), Tensor(zeros: [2, 3])]) }
    }

    /// Softmax / LogSoftmax along `axis` of a row-major tensor, in float64.
    private func referenceSoftmax(_ x: [Float], _ shape: [Int], axis: Int, log: Bool) -> [Double] {
        let a = axis < 0 ? axis + shape.count : axis
        let n = shape[a]
        let inner = shape[(a + 1)...].reduce(1, *)
        let outer = shape[..<a].reduce(1, *)
        var out = [Double](repeating: 0, count: x.count)
        for o in 0..<outer {
            for j in 0..<inner {
                let idx = (0..<n).map { o * n * inner + $0 * inner + j }
                let m = idx.map { Double(x[$0]) }.max() ?? 0
                let s = idx.map { Glibc.exp(Double(x[$0]) - m) }.reduce(0, +)
                for i in idx { out[i] = log ? Double(x[i]) - m - Glibc.log(s) : Glibc.exp(Double(x[i]) - m) / s }
            }
        }
        return out
    }

    func testSoftmaxAndLogSoftmax() throws {
        let cases: [([Int], Int)] = [
            ([2, 3, 4, 5], -1), ([2, 3, 4, 5], 1), ([2, 3, 4, 5], 0), ([2, 3, 4, 5], 2), ([7, 37], -1), ([4, 1000], 1),
            ([3, 9, 17], 1), ([5], 0), ([6, 1], -1), ([1, 2, 13], -2), ([2, 5, 300], 1), ([3, 260], 0),
        ]
        for (shape, axis) in cases {
            let values = randomFloats(shape.reduce(1, *), seed: UInt64(shape.count * 10 + axis + 5)).map { $0 * 10 }
            let x = try Tensor(values, shape: shape)
            for log in [false, true] {
                let type = log ? "LogSoftmax" : "Softmax"
                let expected = referenceSoftmax(values, shape, axis: axis, log: log)
                let out = try runOperator(type, ["axis": .int(axis)], inputs: [x])[0]
                XCTAssertEqual(out.shape, shape)
                // The float32 sum of exponentials is within ~1e-7 of the exact sum relative to 1, which bounds the
                // absolute error of log-probabilities near 0.
                assertClose(
                    try out.scalars(as: Float.self), expected.map { Float($0) }, atol: log ? 4e-7 : 1e-7, rtol: 2e-6,
                    "\(type) \(shape) axis \(axis)")
                let d = try runOperator(type, ["axis": .int(axis)], inputs: [x.cast(to: .float64)])[0].scalars(as: Double.self)
                for (a, e) in zip(d, expected) where abs(a - e) > 1e-13 + 1e-12 * abs(e) {
                    XCTFail("\(type) float64 \(shape) axis \(axis): \(a) vs \(e)")
                    break
                }
            }
        }
        // The default axis is the last one.
        let x = try Tensor(randomFloats(12, seed: 1), shape: [3, 4])
        XCTAssertEqual(
            try runOperator("Softmax", inputs: [x])[0].scalars(as: Float.self),
            try runOperator("Softmax", ["axis": .int(1)], inputs: [x])[0].scalars(as: Float.self))
    }

    func testSoftmaxIsStableForLargeValues() throws {
        let x = try Tensor([1000, 1001, 1002, -1000, 0, 1e30] as [Float], shape: [2, 3])
        let out = try runOperator("Softmax", inputs: [x])[0].scalars(as: Float.self)
        let e = [Glibc.exp(-2.0), Glibc.exp(-1.0), 1]
        let s = e.reduce(0, +)
        assertClose(Array(out[0..<3]), e.map { Float($0 / s) }, atol: 1e-7, rtol: 1e-6)
        XCTAssertEqual(Array(out[3...]), [0, 0, 1])
        let log = try runOperator("LogSoftmax", inputs: [x])[0].scalars(as: Float.self)
        assertClose(Array(log[0..<3]), e.map { Float(Glibc.log($0 / s)) }, atol: 1e-6, rtol: 1e-6)
        XCTAssertEqual(log[5], 0)
        XCTAssertEqual(log[3], -1e30)
        // Empty axis: nothing to compute.
        XCTAssertEqual(try runOperator("Softmax", inputs: [Tensor(zeros: [3, 0])])[0].shape, [3, 0])
        XCTAssertEqual(try runOperator("Softmax", ["axis": .int(0)], inputs: [Tensor(zeros: [0, 4])])[0].shape, [0, 4])
    }

    func testActivationErrors() throws {
        expectThrows(["approximate"]) { _ = try runOperator("Gelu", ["approximate": .string("fast")], inputs: [Tensor([Float(1)])]) }
        expectThrows(["axis", "2"]) { _ = try runOperator("Softmax", ["axis": .int(2)], inputs: [Tensor(zeros: [2, 3])]) }
        expectThrows(["int64"]) { _ = try runOperator("Softmax", inputs: [Tensor([Int64(1)])]) }
        expectThrows(["int64", "float32"]) { _ = try runOperator("PRelu", inputs: [Tensor([Float(1)]), Tensor([Int64(1)])]) }
    }
}
