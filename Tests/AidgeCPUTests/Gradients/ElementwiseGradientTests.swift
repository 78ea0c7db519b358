import AidgeCore
import XCTest

/// Finite-difference checks (float64) of the element-wise backwards, with broadcasting in every position.
final class ElementwiseGradientTests: XCTestCase {
    override func setUp() { _ = cpuRegistered }

    /// Shape pairs covering same shapes, trailing and middle broadcasting, both sides broadcast, and scalars.
    static let shapePairs: [([Int], [Int])] = [
        ([3, 4], [3, 4]), ([3, 4], [4]), ([4], [3, 4]), ([2, 1, 5], [3, 1]), ([4, 1], [1, 3]), ([], [2, 3]),
        ([2, 3], []), ([2, 3, 4], [1, 3, 1]), ([1], [1]),
    ]

    /// `randomTensor` with values at least `gap` away from zero (for kinks and poles at 0).
    func awayFromZero(_ shape: [Int], seed: UInt64, gap: Double = 0.2) throws -> Tensor {
        let v = randomTensor(shape, seed: seed).doubles().map { $0 < 0 ? $0 - gap : $0 + gap }
        return try Tensor(v, shape: shape)
    }

    func testAddSubMulDiv() throws {
        for (k, (sa, sb)) in Self.shapePairs.enumerated() {
            let a = randomTensor(sa, seed: UInt64(k))
            let b = randomTensor(sb, seed: UInt64(k + 50))
            try checkGradients("Add", inputs: [a, b])
            try checkGradients("Sub", inputs: [a, b])
            try checkGradients("Mul", inputs: [a, b])
            try checkGradients("Div", inputs: [a, try awayFromZero(sb, seed: UInt64(k + 50), gap: 0.5)])
        }
    }

    func testSameValueTwice() throws {
        // Mul(x, x): both inputs are one value, so its gradient is the sum of both terms (2 x g).
        let x = randomTensor([5, 3], seed: 3)
        let (_, grads) = try Scheduler.operatorGradients(
            "Mul", inputs: [x, x], outputGradients: [Tensor(Array(repeating: 1.0, count: 15), shape: [5, 3])])
        let expected = x.doubles()
        for (g, v) in zip(try XCTUnwrap(grads[0]).doubles(), expected) { XCTAssertEqual(g, v, accuracy: 1e-12) }
    }

    func testLargeBroadcastSplitsAcrossTasks() throws {
        // Sizes for the parallel paths (too many elements for finite differences): a bias-like operand folded from
        // many rows and a scalar (partial sums per task), a row operand (column blocks), a middle broadcast dimension and
        // a column,
        // against sums written out here.
        let cases: [([Int], [Int])] = [
            ([16384, 3], [3]), ([40000], []), ([40, 1100], [1, 1100]), ([3, 700, 9], [3, 1, 9]), ([300, 120], [300, 1]),
        ]
        for (k, (sa, sb)) in cases.enumerated() {
            let a = randomTensor(sa, seed: UInt64(k))
            let b = randomTensor(sb, seed: UInt64(k + 10))
            let g = randomTensor(sa, seed: UInt64(k + 20))
            let (_, grads) = try Scheduler.operatorGradients("Mul", inputs: [a, b], outputGradients: [g])
            // b's element for each element of a: its flat index with a's coordinates wrapped to b's shape.
            let padded = [Int](repeating: 1, count: sa.count - sb.count) + sb
            let strides = ShapeUtil.contiguousStrides(padded)
            let (av, bv, gv) = (a.doubles(), b.doubles(), g.doubles())
            var expectedB = [Double](repeating: 0, count: b.count)
            var expectedA = [Double](repeating: 0, count: a.count)
            for i in 0..<a.count {
                var rest = i
                var j = 0
                for d in stride(from: sa.count - 1, through: 0, by: -1) {
                    let coordinate = rest % sa[d]
                    rest /= sa[d]
                    if padded[d] != 1 { j += coordinate * strides[d] }
                }
                expectedA[i] = gv[i] * bv[j]
                expectedB[j] += gv[i] * av[i]
            }
            XCTAssertEqual(try XCTUnwrap(grads[0]).doubles(), expectedA)
            for (u, v) in zip(try XCTUnwrap(grads[1]).doubles(), expectedB) { XCTAssertEqual(u, v, accuracy: 1e-9) }
        }
    }

    func testPow() throws {
        for (k, (sa, sb)) in Self.shapePairs.enumerated() {
            let base = randomTensor(sa, seed: UInt64(k), scale: 1, shift: 2)  // positive: log(base) is defined
            try checkGradients("Pow", inputs: [base, randomTensor(sb, seed: UInt64(k + 9), scale: 2)])
        }
        // Negative bases with integer exponents: only the base has a gradient where the exponent is an integer.
        let base = try awayFromZero([3, 4], seed: 5)
        try checkGradients("Pow", inputs: [base, try Tensor([2.0, 3.0, 1.0, 0.0], shape: [4])], constants: [1])
        try checkGradients("Pow", inputs: [base, try Tensor([Int64(3)], shape: [1])])
        // An exponent of another float dtype: its gradient is computed in the base's and added converted.
        let positive = randomTensor([3, 4], seed: 6, scale: 1, shift: 2)
        let exponent = randomTensor([4], seed: 7)
        let g = randomTensor([3, 4], seed: 8)
        let (_, same) = try Scheduler.operatorGradients("Pow", inputs: [positive, exponent], outputGradients: [g])
        let (_, mixed) = try Scheduler.operatorGradients(
            "Pow", inputs: [positive, exponent.cast(to: .float32)], outputGradients: [g])
        let mixedExponent = try XCTUnwrap(mixed[1])
        XCTAssertEqual(mixedExponent.dtype, .float32)
        for (u, v) in zip(mixedExponent.doubles(), try XCTUnwrap(same[1]).doubles()) {
            XCTAssertEqual(u, v, accuracy: 1e-5 * max(1, abs(v)))
        }
    }

    func testVariadicSumMean() throws {
        let inputs = [randomTensor([2, 3, 4], seed: 1), randomTensor([3, 1], seed: 2), randomTensor([4], seed: 3)]
        for type in ["Sum", "Mean"] {
            try checkGradients(type, inputs: [inputs[0]])
            try checkGradients(type, inputs: Array(inputs.prefix(2)))
            try checkGradients(type, inputs: inputs)
        }
    }

    func testVariadicMaxMin() throws {
        // Distinct values (no ties): the finite difference is exact.
        let inputs = [randomTensor([2, 3, 4], seed: 1), randomTensor([3, 1], seed: 2), randomTensor([4], seed: 3)]
        for type in ["Max", "Min"] {
            try checkGradients(type, inputs: [inputs[0]])
            try checkGradients(type, inputs: Array(inputs.prefix(2)))
            try checkGradients(type, inputs: inputs)
        }
    }

    func testMaxMinTiesSplitEvenly() throws {
        let a = try Tensor([1.0, 2.0, 3.0, 4.0], shape: [4])
        let b = try Tensor([1.0, 5.0, 3.0, 0.0], shape: [4])
        let c = try Tensor([1.0, 5.0, 0.0, 4.0], shape: [4])
        let g = try Tensor([6.0, 6.0, 6.0, 6.0], shape: [4])
        let (_, two) = try Scheduler.operatorGradients("Max", inputs: [a, b], outputGradients: [g])
        XCTAssertEqual(try XCTUnwrap(two[0]).doubles(), [3, 0, 3, 6])
        XCTAssertEqual(try XCTUnwrap(two[1]).doubles(), [3, 6, 3, 0])
        let (_, three) = try Scheduler.operatorGradients("Max", inputs: [a, b, c], outputGradients: [g])
        XCTAssertEqual(try XCTUnwrap(three[0]).doubles(), [2, 0, 3, 3])
        XCTAssertEqual(try XCTUnwrap(three[1]).doubles(), [2, 3, 3, 0])
        XCTAssertEqual(try XCTUnwrap(three[2]).doubles(), [2, 3, 0, 3])
        let (_, low) = try Scheduler.operatorGradients("Min", inputs: [a, b, c], outputGradients: [g])
        XCTAssertEqual(try XCTUnwrap(low[0]).doubles(), [2, 6, 0, 0])
        XCTAssertEqual(try XCTUnwrap(low[2]).doubles(), [2, 0, 6, 0])
    }

    func testWhere() throws {
        let bits = randomDoubles(12, seed: 4).map { $0 > 0 }
        let condition = try Tensor(bits, shape: [3, 4])
        try checkGradients("Where", inputs: [condition, randomTensor([3, 4], seed: 1), randomTensor([3, 4], seed: 2)])
        try checkGradients("Where", inputs: [condition, randomTensor([4], seed: 1), randomTensor([3, 1], seed: 2)])
        try checkGradients("Where", inputs: [condition, randomTensor([], seed: 1), randomTensor([2, 3, 4], seed: 2)])
        let column = try Tensor([true, false, true], shape: [3, 1])
        try checkGradients("Where", inputs: [column, randomTensor([3, 4], seed: 1), randomTensor([4], seed: 2)])
    }

    func testUnaryMath() throws {
        let shape = [3, 5, 7]
        let x = randomTensor(shape, seed: 11, scale: 2)
        let positive = randomTensor(shape, seed: 12, scale: 1, shift: 1.5)
        let nonzero = try awayFromZero(shape, seed: 13)
        for type in ["Neg", "Exp", "Erf", "Sin", "Cos"] { try checkGradients(type, inputs: [x]) }
        for type in ["Sqrt", "Log"] { try checkGradients(type, inputs: [positive]) }
        for type in ["Abs", "Reciprocal"] { try checkGradients(type, inputs: [nonzero]) }
        // Piecewise constant: zero gradient (values away from the steps).
        let steps = try Tensor(x.doubles().map { $0.rounded(.down) + 0.3 }, shape: shape)
        for type in ["Floor", "Ceil", "Round", "Sign"] { try checkGradients(type, inputs: [steps]) }
    }

    func testAbsAtZeroIsZero() throws {
        let x = try Tensor([0.0, -2.0, 3.0], shape: [3])
        let (_, grads) = try Scheduler.operatorGradients(
            "Abs", inputs: [x], outputGradients: [Tensor([1.0, 1.0, 1.0], shape: [3])])
        XCTAssertEqual(try XCTUnwrap(grads[0]).doubles(), [0, -1, 1])
    }

    func testFloat32MatchesFloat64() throws {
        // The float32 kernels (vectorised paths) against the float64 ones, on a size with a partial last vector.
        let shape = [5, 37]
        let x = randomTensor(shape, seed: 21, scale: 2)
        let b = randomTensor([37], seed: 22, scale: 1, shift: 2)
        let g = randomTensor(shape, seed: 23)
        for (type, inputs) in [("Erf", [x]), ("Mul", [x, b]), ("Div", [x, b]), ("Pow", [b, x]), ("Max", [x, b])] {
            let (_, g64) = try Scheduler.operatorGradients(type, inputs: inputs, outputGradients: [g])
            let (_, g32) = try Scheduler.operatorGradients(
                type, inputs: inputs.map { $0.cast(to: .float32) }, outputGradients: [g.cast(to: .float32)])
            for (k, expected) in g64.enumerated() {
                let want = try XCTUnwrap(expected).doubles()
                let got = try XCTUnwrap(g32[k]).doubles()
                let scale = want.map(abs).max() ?? 1
                for (u, v) in zip(got, want) {
                    XCTAssertEqual(u, v, accuracy: 1e-5 * scale + 1e-4 * abs(v), "\(type) input \(k)")
                }
            }
        }
    }
}
