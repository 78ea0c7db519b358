import AidgeCore
import XCTest

/// Finite-difference checks (float64) of the reduction backwards over many axis sets, with and without kept
/// dimensions, axes as an input (opset 18) and as an attribute.
final class ReductionGradientTests: XCTestCase {
    override func setUp() { _ = cpuRegistered }

    static let smooth = ["ReduceSum", "ReduceMean", "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp", "ReduceProd"]
    static let axisSets: [[Int]] = [[], [0], [1], [2], [-1], [0, 2], [1, 2], [0, 1, 2]]

    /// Runs `check` for every axis set, keepdims on and off, and the axes given both ways.
    func forEachForm(_ check: (Attributes, [Tensor?], Set<Int>) throws -> Void, _ x: Tensor) throws {
        for axes in Self.axisSets {
            for keepdims in [0, 1] {
                let attributes: Attributes = ["keepdims": .int(keepdims)]
                let axesInput = Tensor(axes.map { Int64($0) })
                try check(attributes, axes.isEmpty ? [x] : [x, axesInput], [1])
                var withAttribute = attributes
                if !axes.isEmpty { withAttribute["axes"] = .ints(axes) }
                try check(withAttribute, [x], [])
            }
        }
    }

    func testSmoothReductions() throws {
        let x = randomTensor([3, 4, 5], seed: 1, scale: 1, shift: 0.2)
        for type in Self.smooth {
            try forEachForm({ attributes, inputs, constants in
                try checkGradients(type, attributes, inputs: inputs, constants: constants)
            }, x)
        }
    }

    func testPositiveAndNonZeroReductions() throws {
        let positive = randomTensor([3, 4, 5], seed: 2, scale: 1, shift: 1.5)
        let nonzero = try Tensor(
            randomTensor([3, 4, 5], seed: 3).doubles().map { $0 < 0 ? $0 - 0.1 : $0 + 0.1 }, shape: [3, 4, 5])
        try forEachForm({ attributes, inputs, constants in
            var fed = inputs
            fed[0] = positive
            try checkGradients("ReduceLogSum", attributes, inputs: fed, constants: constants)
            fed[0] = nonzero
            try checkGradients("ReduceL1", attributes, inputs: fed, constants: constants)
        }, positive)
    }

    func testMaxMin() throws {
        // Distinct values: the extreme of each slice is unique, so the finite difference is exact.
        let x = randomTensor([3, 4, 5], seed: 4)
        for type in ["ReduceMax", "ReduceMin"] {
            try forEachForm({ attributes, inputs, constants in
                try checkGradients(type, attributes, inputs: inputs, constants: constants)
            }, x)
        }
    }

    func testNoopWithEmptyAxes() throws {
        let x = randomTensor([3, 4], seed: 5, scale: 1, shift: 2)
        for type in Reductions.reduceTypes {
            try checkGradients(type, ["noop_with_empty_axes": .int(1)], inputs: [x])
        }
    }

    func testMaxTiesSplitEvenly() throws {
        let x = try Tensor([3.0, 1.0, 3.0, 2.0, 2.0, 2.0], shape: [2, 3])
        let g = try Tensor([6.0, 3.0], shape: [2])
        let (_, max) = try Scheduler.operatorGradients(
            "ReduceMax", ["keepdims": .int(0), "axes": .ints([1])], inputs: [x], outputGradients: [g])
        XCTAssertEqual(try XCTUnwrap(max[0]).doubles(), [3, 0, 3, 1, 1, 1])
        let (_, min) = try Scheduler.operatorGradients(
            "ReduceMin", ["keepdims": .int(0), "axes": .ints([1])], inputs: [x], outputGradients: [g])
        XCTAssertEqual(try XCTUnwrap(min[0]).doubles(), [0, 6, 0, 1, 1, 1])
    }

    func testProdWithZeros() throws {
        // The product is multilinear: finite differences are exact even at zeros.
        let x = try Tensor([2.0, 0.0, 3.0, 0.0, 0.0, 5.0, 1.5, -2.0, 0.5, 4.0, 0.0, -1.0], shape: [4, 3])
        try checkGradients("ReduceProd", ["axes": .ints([1])], inputs: [x])
        try checkGradients("ReduceProd", ["axes": .ints([0])], inputs: [x])
        try checkGradients("ReduceProd", inputs: [x])
        let g = try Tensor([1.0, 1.0, 1.0, 1.0], shape: [4, 1])
        let (_, grads) = try Scheduler.operatorGradients(
            "ReduceProd", ["axes": .ints([1])], inputs: [x], outputGradients: [g])
        XCTAssertEqual(try XCTUnwrap(grads[0]).doubles(), [0, 6, 0, 0, 0, 0, -1, 0.75, -3, 0, -4, 0])
    }

    func testLargeReductions() throws {
        // Enough elements for the parallel paths: rows, columns, and a full reduction split across tasks.
        let x = randomTensor([64, 520], seed: 6)
        let g0 = randomTensor([1, 520], seed: 7)
        let (_, sum) = try Scheduler.operatorGradients(
            "ReduceSum", ["axes": .ints([0])], inputs: [x], outputGradients: [g0])
        let column = g0.doubles()
        for (i, v) in try XCTUnwrap(sum[0]).doubles().enumerated() { XCTAssertEqual(v, column[i % 520]) }
        let (_, ties) = try Scheduler.operatorGradients(
            "ReduceMax", ["keepdims": .int(0)], inputs: [Tensor(zeros: [64, 520], dtype: .float64)],
            outputGradients: [Tensor(scalar: 64.0 * 520)])
        XCTAssertEqual(Set(try XCTUnwrap(ties[0]).doubles()), [1])
        try checkGradients("ReduceLogSumExp", ["axes": .ints([1])], inputs: [randomTensor([3, 300], seed: 8)])
        // A full product split across tasks (partial products): one zero, which gets the product of the others.
        var values = randomDoubles(40000, seed: 9).map { 1 + 1e-5 * $0 }
        values[123] = 0
        let others = values.enumerated().reduce(1.0) { $1.offset == 123 ? $0 : $0 * $1.element }
        let (_, prod) = try Scheduler.operatorGradients(
            "ReduceProd", ["keepdims": .int(0)], inputs: [Tensor(values, shape: [40000])],
            outputGradients: [Tensor(scalar: 2.0)])
        let got = try XCTUnwrap(prod[0]).doubles()
        XCTAssertEqual(got[123], 2 * others, accuracy: 1e-12)
        XCTAssertEqual(got.enumerated().filter { $0.offset != 123 }.map(\.element).max(), 0)
        XCTAssertEqual(got.enumerated().filter { $0.offset != 123 }.map(\.element).min(), 0)
    }

    func testFloat32MatchesFloat64() throws {
        let x = randomTensor([5, 37], seed: 9, scale: 1, shift: 1.2)
        for type in Reductions.reduceTypes {
            for axes in [[0], [1]] {
                let attributes: Attributes = ["axes": .ints(axes)]
                let g = randomTensor(axes == [0] ? [1, 37] : [5, 1], seed: 10)
                let (_, g64) = try Scheduler.operatorGradients(type, attributes, inputs: [x], outputGradients: [g])
                let (_, g32) = try Scheduler.operatorGradients(
                    type, attributes, inputs: [x.cast(to: .float32)], outputGradients: [g.cast(to: .float32)])
                let want = try XCTUnwrap(g64[0]).doubles()
                let got = try XCTUnwrap(g32[0]).doubles()
                let scale = want.map(abs).max() ?? 1
                for (u, v) in zip(got, want) {
                    XCTAssertEqual(u, v, accuracy: 1e-5 * scale + 1e-4 * abs(v), "\(type) axes \(axes)")
                }
            }
        }
    }
}
