import AidgeCPU
import AidgeCore
import XCTest

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Naive references (NumPy broadcasting written out with plain index arithmetic)

/// NumPy's broadcast shape, written independently of the engine.
private func numpyShape(_ shapes: [[Int]]) -> [Int]? {
    let rank = shapes.map(\.count).max() ?? 0
    var out = [Int](repeating: 1, count: rank)
    for shape in shapes {
        let padded = [Int](repeating: 1, count: rank - shape.count) + shape
        for d in 0..<rank {
            if padded[d] == out[d] || padded[d] == 1 { continue }
            if out[d] == 1 { out[d] = padded[d] } else { return nil }
        }
    }
    return out
}

/// The flat index in an input of shape `shape` of the output element at `index` (output shape `out`).
private func sourceIndex(_ index: Int, _ out: [Int], _ shape: [Int]) -> Int {
    var coordinates = [Int](repeating: 0, count: out.count)
    var rest = index
    for d in stride(from: out.count - 1, through: 0, by: -1) where out[d] > 0 {
        coordinates[d] = rest % out[d]
        rest /= out[d]
    }
    var flat = 0
    let offset = out.count - shape.count
    for d in 0..<shape.count {
        flat = flat * shape[d] + (shape[d] == 1 ? 0 : coordinates[d + offset])
    }
    return flat
}

/// out[i] = f(a[...], b[...]) with broadcasting.
private func naive<A, B, R>(_ a: [A], _ sa: [Int], _ b: [B], _ sb: [Int], _ f: (A, B) -> R) -> [R] {
    guard let out = numpyShape([sa, sb]) else { return [] }
    return (0..<out.reduce(1, *)).map { i in f(a[sourceIndex(i, out, sa)], b[sourceIndex(i, out, sb)]) }
}

private func floats(_ count: Int, seed: UInt64) -> [Float] {
    randomFloats(count, seed: seed).map { $0 * 4 }
}

/// A float tensor of `shape` with values from `seed`, nonzero (so that it can divide).
private func tensor(_ shape: [Int], seed: UInt64) throws -> (Tensor, [Float]) {
    let values = floats(shape.reduce(1, *), seed: seed).map { $0 == 0 ? 0.5 : $0 }
    return (try Tensor(values, shape: shape), values)
}

private func expectThrows(
    _ message: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void
) {
    do {
        try body()
        XCTFail("expected an error", file: file, line: line)
    } catch {
        let text = "\(error)"
        for part in message where !text.contains(part) {
            XCTFail("error '\(text)' does not mention '\(part)'", file: file, line: line)
        }
    }
}

final class ElementwiseTests: XCTestCase {
    static let broadcastCases: [([Int], [Int])] = [
        ([3, 1], [1, 4]), ([], [2, 3]), ([2, 3], []), ([4], [2, 3, 4]), ([2, 3, 4], [4]), ([2, 1, 4], [3, 1]),
        ([0, 3], [1, 3]), ([2, 3], [2, 3]), ([5, 1, 3, 1], [1, 4, 1, 2]), ([1], [1]), ([2, 3, 4, 5], [1, 3, 1, 1]),
        ([2, 3, 1, 5], [3, 4, 1]), ([17], [17]), ([1, 19], [3, 1]), ([0], []),
    ]

    func testFloatArithmeticBroadcasting() throws {
        let ops: [(String, (Double, Double) -> Double)] = [
            ("Add", { $0 + $1 }), ("Sub", { $0 - $1 }), ("Mul", { $0 * $1 }), ("Div", { $0 / $1 }),
            ("Min", { Swift.min($0, $1) }), ("Max", { Swift.max($0, $1) }),
        ]
        for (k, (sa, sb)) in Self.broadcastCases.enumerated() {
            let (a, av) = try tensor(sa, seed: UInt64(k))
            let (b, bv) = try tensor(sb, seed: UInt64(k + 100))
            for (type, f) in ops {
                let out = try runOperator(type, inputs: [a, b])[0]
                XCTAssertEqual(out.shape, numpyShape([sa, sb]), "\(type) \(sa) \(sb)")
                XCTAssertEqual(out.dtype, .float32)
                let expected = naive(av, sa, bv, sb) { Float(f(Double($0), Double($1))) }
                // + - * / are correctly rounded in float32 and in float64 then float32: the results are identical.
                XCTAssertEqual(try out.scalars(as: Float.self), expected, "\(type) \(sa) \(sb)")
            }
        }
    }

    func testLargeBroadcastRunsInParallelAndMatches() throws {
        // Big enough to be split over cores, with a row length that is not a multiple of 8.
        let (a, av) = try tensor([301, 517], seed: 1)
        let (b, bv) = try tensor([301, 1], seed: 2)
        let (c, cv) = try tensor([517], seed: 3)
        let ab = try runOperator("Mul", inputs: [a, b])[0]
        XCTAssertEqual(try ab.scalars(as: Float.self), naive(av, [301, 517], bv, [301, 1]) { $0 * $1 })
        let ac = try runOperator("Sub", inputs: [c, a])[0]
        XCTAssertEqual(try ac.scalars(as: Float.self), naive(cv, [517], av, [301, 517]) { $0 - $1 })
        let aa = try runOperator("Add", inputs: [a, a])[0]
        XCTAssertEqual(try aa.scalars(as: Float.self), av.map { $0 + $0 })
    }

    func testDoubleAndHalfArithmetic() throws {
        let av: [Double] = [1.5, -2.25, 3, 1e300]
        let bv: [Double] = [0.1, 4, -7, 1e10]
        let a = try Tensor(av, shape: [2, 2])
        let b = try Tensor(bv, shape: [2, 2])
        XCTAssertEqual(try runOperator("Add", inputs: [a, b])[0].scalars(as: Double.self), zip(av, bv).map { $0 + $1 })
        XCTAssertEqual(try runOperator("Div", inputs: [a, b])[0].scalars(as: Double.self), zip(av, bv).map { $0 / $1 })
        let h = Tensor([Float16(1.5), 2, -3, 0.25])
        let out = try runOperator("Mul", inputs: [h, Tensor(scalar: Float16(2))])[0]
        XCTAssertEqual(out.dtype, .float16)
        XCTAssertEqual(try out.scalars(as: Float16.self), [3, 4, -6, 0.5])
    }

    func testIntegerArithmeticTruncatesAndDoesNotTrap() throws {
        let a = Tensor([7, -7, 7, -7, 5, 0, Int64.min, Int64.max] as [Int64])
        let b = Tensor([2, 2, -2, -2, 0, 0, -1, 1] as [Int64])
        XCTAssertEqual(
            try runOperator("Div", inputs: [a, b])[0].scalars(as: Int64.self), [3, -3, -3, 3, 0, 0, Int64.min, Int64.max])
        XCTAssertEqual(
            try runOperator("Add", inputs: [a, b])[0].scalars(as: Int64.self),
            [9, -5, 5, -9, 5, 0, Int64.min &- 1, Int64.max &+ 1])
        XCTAssertEqual(
            try runOperator("Mul", inputs: [a, b])[0].scalars(as: Int64.self), [14, -14, -14, 14, 0, 0, Int64.min, Int64.max])
        let a32 = try Tensor([1, 2, 3, 4, 5, 6] as [Int32], shape: [2, 3])
        let b32 = try Tensor([10, 20] as [Int32], shape: [2, 1])
        XCTAssertEqual(try runOperator("Sub", inputs: [a32, b32])[0].scalars(as: Int32.self), [-9, -8, -7, -16, -15, -14])
        XCTAssertEqual(try runOperator("Max", inputs: [a32, b32])[0].scalars(as: Int32.self), [10, 10, 10, 20, 20, 20])
        let u8 = try runOperator("Add", inputs: [Tensor([UInt8(250), 3]), Tensor(scalar: UInt8(10))])[0]
        XCTAssertEqual(try u8.scalars(as: UInt8.self), [4, 13])
    }

    func testModSignSemantics() throws {
        let a = Tensor([5, -5, 5, -5, 0, 7, Int32.min] as [Int32])
        let b = Tensor([3, 3, -3, -3, 3, 0, -1] as [Int32])
        // fmod = 0: the sign of the divisor (Python's %); a zero divisor gives 0.
        XCTAssertEqual(try runOperator("Mod", inputs: [a, b])[0].scalars(as: Int32.self), [2, 1, -1, -2, 0, 0, 0])
        // fmod = 1: the sign of the dividend (C's fmod).
        XCTAssertEqual(
            try runOperator("Mod", ["fmod": .int(1)], inputs: [a, b])[0].scalars(as: Int32.self), [2, -2, 2, -2, 0, 0, 0])
        let a64 = Tensor([-7, 7, -1] as [Int64])
        XCTAssertEqual(try runOperator("Mod", inputs: [a64, Tensor(scalar: Int64(4))])[0].scalars(as: Int64.self), [1, 3, 3])
        let x = Tensor([5.5, -5.5, 5.5] as [Float])
        let y = Tensor([2, 2, -2] as [Float])
        XCTAssertEqual(try runOperator("Mod", ["fmod": .int(1)], inputs: [x, y])[0].scalars(as: Float.self), [1.5, -1.5, 1.5])
        // Float fmod = 0: NumPy's mod (the divisor's sign; zeros take it too; a zero divisor gives NaN).
        let floorMod = try runOperator(
            "Mod", inputs: [Tensor([5.5, -5.5, 5.5, -4, 4, 1] as [Float]), Tensor([2, 2, -2, 2, -2, 0] as [Float])])[0]
        let values = try floorMod.scalars(as: Float.self)
        XCTAssertEqual(Array(values[..<5]), [1.5, 0.5, -0.5, 0, -0])
        XCTAssertEqual(values[3].sign, .plus)
        XCTAssertEqual(values[4].sign, .minus)
        XCTAssertTrue(values[5].isNaN)
    }

    func testPow() throws {
        let (x, xv) = try tensor([3, 5], seed: 7)
        let positive = try Tensor(xv.map { abs($0) }, shape: [3, 5])
        let (e, ev) = try tensor([5], seed: 8)
        let out = try runOperator("Pow", inputs: [positive, e])[0]
        assertClose(
            try out.scalars(as: Float.self),
            naive(xv.map { abs($0) }, [3, 5], ev, [5]) { Float(Glibc.pow(Double($0), Double($1))) }, atol: 0, rtol: 1e-6)
        // A constant exponent of 2 (LayerNorm's variance) and an int64 exponent.
        let square = try runOperator("Pow", inputs: [x, Tensor(scalar: Float(2))], constants: [1])[0]
        XCTAssertEqual(try square.scalars(as: Float.self), xv.map { $0 * $0 })
        let cube = try runOperator("Pow", inputs: [x, Tensor(scalar: Int64(3))])[0]
        assertClose(try cube.scalars(as: Float.self), xv.map { Float(Double($0) * Double($0) * Double($0)) }, atol: 0, rtol: 1e-6)
        // Other constant exponents with shortcuts, and their edge cases.
        let edges: [Float] = [4, 2.25, 0, -0.0, .infinity, -.infinity, -4, .nan]
        for e in [3, 0.5, -1, 1] as [Float] {
            let values = xv + edges
            for dtype in [DType.float32, .float64] {
                let input = Tensor(values).cast(to: dtype)
                let out = try runOperator("Pow", inputs: [input, Tensor(scalar: e).cast(to: dtype)], constants: [1])[0]
                let got = out.doubles()
                for (v, g) in zip(values, got) {
                    let want = Glibc.pow(Double(v), Double(e))
                    if want.isNaN { XCTAssert(g.isNaN, "\(v)^\(e)"); continue }
                    XCTAssertEqual(g.sign, want.sign, "\(v)^\(e) \(dtype)")
                    XCTAssertEqual(Float(g), Float(want), accuracy: abs(Float(want)) * 3e-7, "\(v)^\(e) \(dtype)")
                }
            }
        }
        // Integer powers, negative exponents, float exponent on an integer base.
        let base = Tensor([2, -3, 1, -1, -1, 0, 5] as [Int64])
        let exps = Tensor([10, 3, -4, -3, -2, 0, -1] as [Int64])
        XCTAssertEqual(try runOperator("Pow", inputs: [base, exps])[0].scalars(as: Int64.self), [1024, -27, 1, -1, 1, 1, 0])
        let ib = Tensor([4, 9, 2] as [Int32])
        let fe = Tensor([0.5, 0.5, 3] as [Float])
        XCTAssertEqual(try runOperator("Pow", inputs: [ib, fe])[0].scalars(as: Int32.self), [2, 3, 8])
        XCTAssertEqual(try runOperator("Pow", inputs: [ib, Tensor(scalar: Int32(2))])[0].scalars(as: Int32.self), [16, 81, 4])
        XCTAssertEqual(try runOperator("Pow", inputs: [ib, Tensor(scalar: Int32(2))])[0].dtype, .int32)
    }

    func testVariadicMinMaxSumMean() throws {
        let a = try Tensor([1, 5, -2, 8, 0, 3] as [Float], shape: [2, 3])
        let b = try Tensor([4, -1, 6] as [Float], shape: [3])
        let c = try Tensor([2, 7] as [Float], shape: [2, 1])
        let av: [Float] = [1, 5, -2, 8, 0, 3]
        let bv: [Float] = [4, -1, 6]
        let cv: [Float] = [2, 7]
        func expected(_ f: (Float, Float, Float) -> Float) -> [Float] {
            (0..<6).map { i in f(av[i], bv[i % 3], cv[i / 3]) }
        }
        XCTAssertEqual(try runOperator("Max", inputs: [a, b, c])[0].scalars(as: Float.self), expected { max($0, $1, $2) })
        XCTAssertEqual(try runOperator("Min", inputs: [a, b, c])[0].scalars(as: Float.self), expected { min($0, $1, $2) })
        XCTAssertEqual(try runOperator("Sum", inputs: [a, b, c])[0].scalars(as: Float.self), expected { $0 + $1 + $2 })
        XCTAssertEqual(
            try runOperator("Mean", inputs: [a, b, c])[0].scalars(as: Float.self),
            expected { Float((Double($0) + Double($1) + Double($2)) / 3) })
        // The output shape comes from all inputs, even when the first is the smallest.
        let grown = try runOperator("Max", inputs: [c, a])[0]
        XCTAssertEqual(grown.shape, [2, 3])
        XCTAssertEqual(try grown.scalars(as: Float.self), (0..<6).map { max(cv[$0 / 3], av[$0]) })
        // One input is copied; four inputs fold.
        XCTAssertEqual(try runOperator("Sum", inputs: [a])[0].scalars(as: Float.self), av)
        XCTAssertEqual(try runOperator("Mean", inputs: [a])[0].scalars(as: Float.self), av)
        XCTAssertEqual(
            try runOperator("Sum", inputs: [a, a, a, a])[0].scalars(as: Float.self), av.map { $0 * 4 })
        // NaN propagates through Max and Min, as in NumPy's maximum.
        let nan = Tensor([Float.nan, 1, 2])
        let other = Tensor([0, Float.nan, 1])
        let m = try runOperator("Max", inputs: [nan, other])[0].scalars(as: Float.self)
        XCTAssert(m[0].isNaN && m[1].isNaN && m[2] == 2)
        let m64 = try runOperator("Min", inputs: [nan.cast(to: .float64), other.cast(to: .float64)])[0].scalars(as: Double.self)
        XCTAssert(m64[0].isNaN && m64[1].isNaN && m64[2] == 1)
        // Integers.
        let i = try runOperator("Max", inputs: [Tensor([1, 9, 3] as [Int64]), Tensor([4, 2, 8] as [Int64]), Tensor(scalar: Int64(5))])[0]
        XCTAssertEqual(try i.scalars(as: Int64.self), [5, 9, 8])
        let d = try runOperator("Mean", inputs: [Tensor([1.0, 2.0]), Tensor([2.0, 4.0])])[0]
        XCTAssertEqual(try d.scalars(as: Double.self), [1.5, 3])
        expectThrows(["int64"]) { _ = try runOperator("Mean", inputs: [Tensor([1, 2] as [Int64])]) }
    }

    func testComparisonsGiveBool() throws {
        let av: [Float] = [1, -0.0, .nan, 3, 2, 5]
        let bv: [Float] = [1, 0, 4]
        let a = try Tensor(av, shape: [2, 3])
        let b = Tensor(bv)
        let ops: [(String, (Float, Float) -> Bool)] = [
            ("Equal", { $0 == $1 }), ("Less", { $0 < $1 }), ("Greater", { $0 > $1 }),
            ("LessOrEqual", { $0 <= $1 }), ("GreaterOrEqual", { $0 >= $1 }),
        ]
        for (type, f) in ops {
            let out = try runOperator(type, inputs: [a, b])[0]
            XCTAssertEqual(out.dtype, .bool)
            XCTAssertEqual(out.shape, [2, 3])
            XCTAssertEqual(try out.scalars(as: Bool.self), naive(av, [2, 3], bv, [3], f), type)
        }
        let i = try runOperator("Less", inputs: [Tensor([1, 5, 3] as [Int64]), Tensor(scalar: Int64(3))])[0]
        XCTAssertEqual(try i.scalars(as: Bool.self), [true, false, false])
        let e = try runOperator("Equal", inputs: [Tensor([true, false, true]), Tensor([true, true, true])])[0]
        XCTAssertEqual(try e.scalars(as: Bool.self), [true, false, true])
        let u = try runOperator("Equal", inputs: [Tensor([UInt8(3), 4]), Tensor(scalar: UInt8(4))])[0]
        XCTAssertEqual(try u.scalars(as: Bool.self), [false, true])
        let bf = try runOperator("Equal", inputs: [Tensor([BFloat16(-0.0), BFloat16(1)]), Tensor([BFloat16(0), BFloat16(2)])])[0]
        XCTAssertEqual(try bf.scalars(as: Bool.self), [true, false])
        let h = try runOperator("Greater", inputs: [Tensor([Float16(1), 3]), Tensor(scalar: Float16(2))])[0]
        XCTAssertEqual(try h.scalars(as: Bool.self), [false, true])
        expectThrows(["bool"]) { _ = try runOperator("Less", inputs: [Tensor([true]), Tensor([false])]) }
    }

    func testLogic() throws {
        let a = try Tensor([true, true, false, false], shape: [2, 2])
        let b = try Tensor([true, false], shape: [2, 1])
        let av = [true, true, false, false]
        let bv = [true, false]
        for (type, f) in [("And", { (x: Bool, y: Bool) in x && y }), ("Or", { $0 || $1 }), ("Xor", { $0 != $1 })] {
            let out = try runOperator(type, inputs: [a, b])[0]
            XCTAssertEqual(out.dtype, .bool)
            XCTAssertEqual(try out.scalars(as: Bool.self), naive(av, [2, 2], bv, [2, 1], f), type)
        }
        XCTAssertEqual(try runOperator("Not", inputs: [a])[0].scalars(as: Bool.self), [false, false, true, true])
        expectThrows(["float32"]) { _ = try runOperator("And", inputs: [Tensor([Float(1)]), Tensor([Float(1)])]) }
    }

    func testWhereBroadcastsThreeWays() throws {
        let cv = [true, false, true, false, false, true]
        let condition = try Tensor(cv, shape: [2, 1, 3])
        let xv: [Float] = [10, 20, 30, 40]
        let yv: [Float] = [-1, -2, -3]
        let x = try Tensor(xv, shape: [1, 4, 1])
        let y = try Tensor(yv, shape: [3])
        let out = try runOperator("Where", inputs: [condition, x, y])[0]
        XCTAssertEqual(out.shape, [2, 4, 3])
        let shape = [2, 4, 3]
        let expected = (0..<24).map { i in
            cv[sourceIndex(i, shape, [2, 1, 3])] ? xv[sourceIndex(i, shape, [1, 4, 1])] : yv[sourceIndex(i, shape, [3])]
        }
        XCTAssertEqual(try out.scalars(as: Float.self), expected)
        // A scalar condition, int64 values, and bool values.
        let pick = try runOperator("Where", inputs: [Tensor(scalar: false), Tensor([1, 2] as [Int64]), Tensor([3, 4] as [Int64])])[0]
        XCTAssertEqual(try pick.scalars(as: Int64.self), [3, 4])
        let bools = try runOperator("Where", inputs: [Tensor([true, false]), Tensor([false, false]), Tensor(scalar: true)])[0]
        XCTAssertEqual(try bools.scalars(as: Bool.self), [false, true])
        let h = try runOperator("Where", inputs: [Tensor([true, false]), Tensor([Float16(1), 2]), Tensor(scalar: Float16(9))])[0]
        XCTAssertEqual(try h.scalars(as: Float16.self), [1, 9])
        expectThrows(["condition", "float32"]) { _ = try runOperator("Where", inputs: [Tensor([Float(1)]), Tensor([Float(1)]), Tensor([Float(1)])]) }
        expectThrows(["int64", "float32"]) { _ = try runOperator("Where", inputs: [Tensor([true]), Tensor([Float(1)]), Tensor([Int64(1)])]) }
    }

    func testUnaryFloat() throws {
        let special: [Float] = [0, -0.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1e-3, 3.7, -3.7, 100, .infinity, -.infinity, .nan]
        let values = special + floats(1000, seed: 11)
        let x = Tensor(values)
        let ops: [(String, (Double) -> Double)] = [
            ("Neg", { -$0 }), ("Abs", { Swift.abs($0) }), ("Floor", { $0.rounded(.down) }), ("Ceil", { $0.rounded(.up) }),
            ("Round", { $0.rounded(.toNearestOrEven) }), ("Sqrt", { $0.squareRoot() }), ("Reciprocal", { 1 / $0 }),
            ("Exp", { Glibc.exp($0) }), ("Log", { Glibc.log($0) }), ("Erf", { Glibc.erf($0) }),
            ("Sign", { $0 > 0 ? 1 : $0 < 0 ? -1 : $0 }), ("Sin", { Glibc.sin($0) }), ("Cos", { Glibc.cos($0) }),
        ]
        for (type, f) in ops {
            let expected = values.map { Float(f(Double($0))) }
            let out = try runOperator(type, inputs: [x])[0]
            assertClose(try out.scalars(as: Float.self), expected, atol: 1e-7, rtol: 3e-7, type)
            let d = try runOperator(type, inputs: [x.cast(to: .float64)])[0]
            assertClose(try d.scalars(as: Double.self).map { Float($0) }, expected, atol: 1e-7, rtol: 3e-7, "\(type) f64")
        }
        let rounded = try runOperator("Round", inputs: [Tensor([0.5, 1.5, 2.5, -0.5, -2.5, 2.4999998] as [Float])])[0]
        XCTAssertEqual(try rounded.scalars(as: Float.self), [0, 2, 2, -0.0, -2, 2])
        let h = try runOperator("Sqrt", inputs: [Tensor([Float16(4), 2.25])])[0]
        XCTAssertEqual(try h.scalars(as: Float16.self), [2, 1.5])
        expectThrows(["int64"]) { _ = try runOperator("Exp", inputs: [Tensor([Int64(1)])]) }
    }

    /// The vectorised float32 exp stays within 2 ulp of the exact value over its whole range.
    func testExpAccuracy() throws {
        var values: [Float] = [-104, -103.9, -100, -88, -87.3, -20, -1e-8, 0, 1e-8, 1, 20, 88, 88.72, 88.73, 89, 200]
        values += (0..<20000).map { -104 + Float($0) * 193 / 20000 }
        values += floats(3000, seed: 5).map { $0 / 40 }
        let out = try runOperator("Exp", inputs: [Tensor(values)])[0].scalars(as: Float.self)
        var worst: Float = 0
        for (x, y) in zip(values, out) {
            let exact = Glibc.exp(Double(x))
            let ref = Float(exact)
            if ref.isInfinite || ref == 0 {
                XCTAssertEqual(y, ref, "exp(\(x))")
                continue
            }
            let ulps = Float(abs(Double(y) - exact) / Double(ref.ulp))
            worst = max(worst, ulps)
            XCTAssertLessThanOrEqual(ulps, 2, "exp(\(x)) = \(y), exact \(exact)")
        }
        XCTAssertLessThanOrEqual(worst, 2)
        let edges = try runOperator("Exp", inputs: [Tensor([Float.nan, .infinity, -.infinity])])[0].scalars(as: Float.self)
        XCTAssert(edges[0].isNaN)
        XCTAssertEqual(Array(edges[1...]), [.infinity, 0])
    }

    /// The vectorised float32 erf stays within a few ulp of the exact value.
    func testErfAccuracy() throws {
        let values = (0..<40001).map { Float($0 - 20000) / 4000 } + [1e-30, -1e-30, 0.5, 1, 2, 3.9, 3.92, 4, 10, 1e30]
        let out = try runOperator("Erf", inputs: [Tensor(values)])[0].scalars(as: Float.self)
        var worst = 0.0
        for (x, y) in zip(values, out) {
            let exact = Glibc.erf(Double(x))
            worst = max(worst, abs(Double(y) - exact) / Double(Float(exact).ulp))
        }
        XCTAssertLessThanOrEqual(worst, 2)
        let edges = try runOperator("Erf", inputs: [Tensor([Float.nan, .infinity, -.infinity, -0.0])])[0].scalars(as: Float.self)
        XCTAssert(edges[0].isNaN)
        XCTAssertEqual(Array(edges[1...]), [1, -1, 0])
        XCTAssertEqual(edges[3].sign, .minus)
    }

    func testUnaryInteger() throws {
        let x = Tensor([3, -4, 0, Int32.min] as [Int32])
        XCTAssertEqual(try runOperator("Neg", inputs: [x])[0].scalars(as: Int32.self), [-3, 4, 0, Int32.min])
        XCTAssertEqual(try runOperator("Abs", inputs: [x])[0].scalars(as: Int32.self), [3, 4, 0, Int32.min])
        XCTAssertEqual(try runOperator("Sign", inputs: [x])[0].scalars(as: Int32.self), [1, -1, 0, -1])
        let y = Tensor([7, -9] as [Int64])
        XCTAssertEqual(try runOperator("Abs", inputs: [y])[0].scalars(as: Int64.self), [7, 9])
        XCTAssertEqual(try runOperator("Sign", inputs: [Tensor([UInt8(0), 5])])[0].scalars(as: UInt8.self), [0, 1])
        expectThrows(["Neg", "uint8"]) { _ = try runOperator("Neg", inputs: [Tensor([UInt8(1)])]) }
    }

    func testEmptyAndScalarTensors() throws {
        let empty = Tensor(zeros: [0, 3])
        let row = Tensor([Float(1), 2, 3])
        let sum = try runOperator("Add", inputs: [empty, row])[0]
        XCTAssertEqual(sum.shape, [0, 3])
        XCTAssertEqual(try runOperator("Exp", inputs: [empty])[0].shape, [0, 3])
        XCTAssertEqual(try runOperator("Where", inputs: [Tensor(zeros: [0], dtype: .bool), row.reshaped([3, 1]), Tensor(scalar: Float(0))])[0].shape, [3, 0])
        let s = try runOperator("Mul", inputs: [Tensor(scalar: Float(3)), Tensor(scalar: Float(-2))])[0]
        XCTAssertEqual(s.shape, [])
        XCTAssertEqual(try s.scalars(as: Float.self), [-6])
        let big = try runOperator("Equal", inputs: [Tensor(scalar: Int64(4)), Tensor(scalar: Int64(4))])[0]
        XCTAssertEqual(try big.scalars(as: Bool.self), [true])
    }

    func testShapeAndTypeErrors() throws {
        let a = Tensor(zeros: [2, 3])
        let b = Tensor(zeros: [4])
        expectThrows(["[2, 3]", "[4]", "broadcast"]) { _ = try runOperator("Add", inputs: [a, b]) }
        expectThrows(["[2, 3]", "[4]"]) { _ = try runOperator("Max", inputs: [a, a, b]) }
        expectThrows(["float32", "int64"]) { _ = try runOperator("Add", inputs: [a, Tensor([Int64(1)])]) }
        expectThrows(["float32", "int64"]) { _ = try runOperator("Equal", inputs: [a, Tensor([Int64(1)])]) }
        do {
            _ = try runOperator("Mul", inputs: [a, b])
        } catch let error as AidgeError {
            guard case .shapeMismatch = error else { return XCTFail("expected a shape mismatch, got \(error)") }
        }
        do {
            _ = try runOperator("Sub", inputs: [a, Tensor([Int32(1)])])
        } catch let error as AidgeError {
            guard case .unsupportedType = error else { return XCTFail("expected an unsupported type, got \(error)") }
        }
    }
}
