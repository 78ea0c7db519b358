import AidgeCPU
import AidgeCore
import XCTest

/// Row-major coordinates of flat index `i` in `shape`.
private func coordinates(_ i: Int, _ shape: [Int]) -> [Int] {
    var rest = i
    var c = [Int](repeating: 0, count: shape.count)
    for k in stride(from: shape.count - 1, through: 0, by: -1) {
        c[k] = rest % shape[k]
        rest /= shape[k]
    }
    return c
}

/// Naive reference of a reduction: the input elements of each output element, folded by `fold` in Double.
private func referenceReduce(
    _ x: [Double], _ shape: [Int], axes: [Int], keepdims: Bool, _ fold: ([Double]) -> Double
) -> (shape: [Int], values: [Double]) {
    let rank = shape.count
    let axes = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
    let outShape = (0..<rank).compactMap { d -> Int? in axes.contains(d) ? (keepdims ? 1 : nil) : shape[d] }
    let keptShape = (0..<rank).filter { !axes.contains($0) }.map { shape[$0] }
    var buckets = [[Double]](repeating: [], count: ShapeUtil.count(keptShape))
    for i in 0..<x.count {
        let c = coordinates(i, shape)
        var flat = 0
        for d in 0..<rank where !axes.contains(d) { flat = flat * shape[d] + c[d] }
        buckets[flat].append(x[i])
    }
    return (outShape, buckets.map(fold))
}

/// The Double fold of each reduction, from the ONNX definitions.
private let folds: [String: @Sendable ([Double]) -> Double] = [
    "ReduceSum": { $0.reduce(0, +) },
    "ReduceMean": { $0.reduce(0, +) / Double($0.count) },
    "ReduceMax": { $0.reduce(-Double.infinity, max) },
    "ReduceMin": { $0.reduce(Double.infinity, min) },
    "ReduceProd": { $0.reduce(1, *) },
    "ReduceL1": { $0.reduce(0) { $0 + abs($1) } },
    "ReduceL2": { $0.reduce(0) { $0 + $1 * $1 }.squareRoot() },
    "ReduceSumSquare": { $0.reduce(0) { $0 + $1 * $1 } },
    "ReduceLogSum": { log($0.reduce(0, +)) },
    "ReduceLogSumExp": { log($0.reduce(0) { $0 + exp($1) }) },
]

private func int64s(_ v: [Int]) -> Tensor { Tensor(v.map { Int64($0) }) }

/// Runs a reduction with `axes` as a constant input (nil: no axes input).
private func reduce(
    _ type: String, _ x: Tensor, axes: [Int]?, keepdims: Int? = nil, noop: Int? = nil
) throws -> Tensor {
    var attributes: Attributes = [:]
    if let keepdims { attributes["keepdims"] = .int(keepdims) }
    if let noop { attributes["noop_with_empty_axes"] = .int(noop) }
    let inputs: [Tensor?] = axes.map { [x, int64s($0)] } ?? [x]
    return try runOperator(type, attributes, inputs: inputs, constants: [1])[0]
}

final class ReductionTests: XCTestCase {
    func testEveryReductionAgainstReference() throws {
        let shape = [3, 4, 5]
        // Positive values keep ReduceLogSum defined; values near 1 keep ReduceProd in range.
        let raw = randomFloats(60, seed: 7).map { 0.6 + 0.5 * $0 }
        let x = try Tensor(raw, shape: shape)
        let xd = raw.map(Double.init)
        let axesCases: [[Int]] = [[0], [1], [2], [-1], [0, 2], [1, 2], [0, 1], [-3, -1], [0, 1, 2], []]
        for (type, fold) in folds {
            for axes in axesCases {
                for keepdims in [0, 1] {
                    let y = try reduce(type, x, axes: axes, keepdims: keepdims)
                    let reference = referenceReduce(
                        xd, shape, axes: axes.isEmpty ? [0, 1, 2] : axes, keepdims: keepdims == 1, fold)
                    XCTAssertEqual(y.shape, reference.shape, "\(type) axes \(axes) keepdims \(keepdims)")
                    assertClose(
                        try y.scalars(as: Float.self), reference.values.map { Float($0) }, atol: 1e-6, rtol: 1e-5,
                        "\(type) axes \(axes) keepdims \(keepdims)")
                }
            }
        }
    }

    func testLargerShapesExerciseEveryLayout() throws {
        // Column accumulation with a ragged inner size, gathered layouts, and rank 4.
        let shape = [2, 33, 3, 19]
        let raw = randomFloats(ShapeUtil.count(shape), seed: 3)
        let x = try Tensor(raw, shape: shape)
        let xd = raw.map(Double.init)
        for type in ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceLogSumExp", "ReduceMean"] {
            let fold = folds[type] ?? { _ in 0 }
            for axes in [[1], [0], [3], [1, 2], [0, 2], [1, 3], [0, 1, 3], [-2]] {
                let y = try reduce(type, x, axes: axes, keepdims: 0)
                let reference = referenceReduce(xd, shape, axes: axes, keepdims: false, fold)
                XCTAssertEqual(y.shape, reference.shape, "\(type) \(axes)")
                assertClose(
                    try y.scalars(as: Float.self), reference.values.map { Float($0) }, atol: 1e-5, rtol: 1e-5,
                    "\(type) axes \(axes)")
            }
        }
    }

    func testLongSumsStayAccurate() throws {
        // 10^5 positive elements: rows (the innermost axis) and columns (an outer axis), and a split row.
        let n = 100_000
        let raw = randomFloats(n, seed: 11).map { $0 + 1.5 }
        let exact = raw.reduce(0.0) { $0 + Double($1) }
        let row = try reduce("ReduceSum", try Tensor(raw, shape: [n]), axes: nil)
        XCTAssertEqual(Double(try row.scalars(as: Float.self)[0]), exact, accuracy: exact * 1e-6)
        let column = try reduce("ReduceSum", try Tensor(raw, shape: [n, 1]), axes: [0])
        XCTAssertEqual(Double(try column.scalars(as: Float.self)[0]), exact, accuracy: exact * 1e-6)

        let wide = randomFloats(3 * n, seed: 5).map { $0 + 1.5 }
        let columns = try reduce("ReduceSum", try Tensor(wide, shape: [n, 3]), axes: [0], keepdims: 0)
        XCTAssertEqual(columns.shape, [3])
        let sums = try columns.scalars(as: Float.self)
        for c in 0..<3 {
            let e = stride(from: c, to: 3 * n, by: 3).reduce(0.0) { $0 + Double(wide[$1]) }
            XCTAssertEqual(Double(sums[c]), e, accuracy: e * 1e-6, "column \(c)")
        }
        let long = randomFloats(1 << 18, seed: 9).map { $0 + 1.5 }
        let total = try reduce("ReduceMean", try Tensor(long, shape: [1, 1 << 18]), axes: [1])
        let mean = long.reduce(0.0) { $0 + Double($1) } / Double(1 << 18)
        XCTAssertEqual(Double(try total.scalars(as: Float.self)[0]), mean, accuracy: mean * 1e-6)
    }

    func testIntegerAndDoubleTypes() throws {
        let values: [Int64] = [3, -7, 2, 9, 0, -1, 4, 4, -8, 6, 1, 5]
        let x64 = try Tensor(values, shape: [3, 4])
        let x32 = try Tensor(values.map { Int32($0) }, shape: [3, 4])
        let xd = values.map(Double.init)
        for type in ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1", "ReduceMean"] {
            for axes in [[0], [1], [0, 1]] {
                let reference = referenceReduce(xd, [3, 4], axes: axes, keepdims: true, folds[type] ?? { _ in 0 })
                // An integer mean truncates toward zero.
                let expected = reference.values.map { Int64($0.rounded(.towardZero)) }
                let y64 = try reduce(type, x64, axes: axes)
                XCTAssertEqual(y64.dtype, .int64)
                XCTAssertEqual(try y64.scalars(as: Int64.self), expected, "\(type) \(axes)")
                let y32 = try reduce(type, x32, axes: axes)
                XCTAssertEqual(try y32.scalars(as: Int32.self), expected.map { Int32($0) }, "\(type) \(axes)")
            }
        }
        let d = try Tensor(xd.map { $0 / 3 }, shape: [3, 4])
        for (type, fold) in folds where type != "ReduceLogSum" {
            let y = try reduce(type, d, axes: [-1], keepdims: 0)
            XCTAssertEqual(y.dtype, .float64)
            let reference = referenceReduce(xd.map { $0 / 3 }, [3, 4], axes: [1], keepdims: false, fold)
            for (a, e) in zip(try y.scalars(as: Double.self), reference.values) {
                XCTAssertEqual(a, e, accuracy: 1e-12 * max(1, abs(e)), type)
            }
        }
    }

    func testEmptyAxesAndNoop() throws {
        let raw = randomFloats(6, seed: 1)
        let x = try Tensor(raw, shape: [2, 3])
        // Absent and empty axes reduce everything.
        for axes in [nil, [Int]()] {
            let all = try reduce("ReduceSum", x, axes: axes, keepdims: 1)
            XCTAssertEqual(all.shape, [1, 1])
            XCTAssertEqual(try all.scalars(as: Float.self)[0], raw.reduce(0, +), accuracy: 1e-6)
            let scalar = try reduce("ReduceMax", x, axes: axes, keepdims: 0)
            XCTAssertEqual(scalar.shape, [])
            XCTAssertEqual(try scalar.scalars(as: Float.self), [raw.max() ?? 0])
        }
        // noop_with_empty_axes: nothing is folded; the element map still applies (ONNX's reference).
        let same = try reduce("ReduceSum", x, axes: [], noop: 1)
        XCTAssertEqual(same.shape, [2, 3])
        XCTAssertEqual(try same.scalars(as: Float.self), raw)
        let squares = try reduce("ReduceSumSquare", x, axes: nil, noop: 1)
        XCTAssertEqual(try squares.scalars(as: Float.self), raw.map { $0 * $0 })
        let l2 = try reduce("ReduceL2", x, axes: nil, noop: 1)
        assertClose(try l2.scalars(as: Float.self), raw.map { abs($0) })
    }

    func testScalarsAndEmptyTensors() throws {
        let s = try reduce("ReduceSum", Tensor(scalar: Float(2.5)), axes: nil, keepdims: 0)
        XCTAssertEqual(s.shape, [])
        XCTAssertEqual(try s.scalars(as: Float.self), [2.5])
        let l2 = try reduce("ReduceL2", Tensor(scalar: Float(-3)), axes: nil)
        XCTAssertEqual(try l2.scalars(as: Float.self), [3])

        // Folding an empty axis gives the identity of the reduction.
        let empty = Tensor(zeros: [2, 0, 3])
        let expectations: [(String, Float)] = [
            ("ReduceSum", 0), ("ReduceProd", 1), ("ReduceMax", -.infinity), ("ReduceMin", .infinity),
            ("ReduceL2", 0), ("ReduceLogSum", -.infinity), ("ReduceLogSumExp", -.infinity),
        ]
        for (type, value) in expectations {
            let y = try reduce(type, empty, axes: [1], keepdims: 0)
            XCTAssertEqual(y.shape, [2, 3], type)
            XCTAssertEqual(try y.scalars(as: Float.self), [Float](repeating: value, count: 6), type)
        }
        XCTAssertTrue(try reduce("ReduceMean", empty, axes: [1]).scalars(as: Float.self).allSatisfy(\.isNaN))
        // An empty output: nothing to compute.
        let none = try reduce("ReduceSum", empty, axes: [0], keepdims: 0)
        XCTAssertEqual(none.shape, [0, 3])
        let ints = try reduce("ReduceMax", Tensor(zeros: [0], dtype: .int32), axes: [0], keepdims: 0)
        XCTAssertEqual(try ints.scalars(as: Int32.self), [Int32.min])
    }

    func testNaNPropagatesThroughMaxAndMin() throws {
        let x = try Tensor([1, .nan, 3, 4, 5, 6, 7, 8, 9, 10, 11, -2] as [Float], shape: [12])
        XCTAssertTrue(try reduce("ReduceMax", x, axes: nil).scalars(as: Float.self)[0].isNaN)
        XCTAssertTrue(try reduce("ReduceMin", x, axes: nil).scalars(as: Float.self)[0].isNaN)
    }

    func testErrors() throws {
        let x = try Tensor(randomFloats(6), shape: [2, 3])
        XCTAssertThrowsError(try reduce("ReduceSum", Tensor(zeros: [2], dtype: .bool), axes: nil)) { error in
            XCTAssertTrue("\(error)".contains("ReduceSum input has dtype bool"), "\(error)")
        }
        XCTAssertThrowsError(try reduce("ReduceL2", Tensor(zeros: [2], dtype: .int32), axes: nil)) { error in
            XCTAssertTrue("\(error)".contains("no CPU kernel for int32"), "\(error)")
        }
        XCTAssertThrowsError(try reduce("ReduceSum", x, axes: [2])) { error in
            XCTAssertTrue("\(error)".contains("out of range"), "\(error)")
        }
        XCTAssertThrowsError(try reduce("ReduceSum", x, axes: [1, -1])) { error in
            XCTAssertTrue("\(error)".contains("repeat"), "\(error)")
        }
        // Axes fed at run time give what constant axes give.
        XCTAssertEqual(
            try runOperator("ReduceSum", inputs: [x, int64s([0])])[0].doubles(),
            try runOperator("ReduceSum", inputs: [x, int64s([0])], constants: [1])[0].doubles())
        XCTAssertThrowsError(try runOperator("ReduceSum", inputs: [x, Tensor([Float(0)])], constants: [1])) { error in
            XCTAssertTrue("\(error)".contains("axes must be int64"), "\(error)")
        }
    }

    // MARK: ArgMax, ArgMin

    /// Naive ArgMax/ArgMin over `axis` with NumPy's tie rules (first index, or last with `last`).
    private func referenceArg(
        _ x: [Double], _ shape: [Int], axis: Int, max isMax: Bool, last: Bool
    ) -> [Int64] {
        let outer = ShapeUtil.count(Array(shape[..<axis]))
        let n = shape[axis]
        let inner = ShapeUtil.count(Array(shape[(axis + 1)...]))
        var out: [Int64] = []
        for o in 0..<outer {
            for i in 0..<inner {
                var best = 0
                for r in 0..<n {
                    let v = x[(o * n + r) * inner + i]
                    let b = x[(o * n + best) * inner + i]
                    let better = isMax ? (last ? v >= b : v > b) : (last ? v <= b : v < b)
                    if better { best = r }
                }
                out.append(Int64(best))
            }
        }
        return out
    }

    func testArgMaxAndArgMin() throws {
        let shape = [3, 4, 5]
        // Few distinct values: ties decide between the first and the last index.
        let raw = randomFloats(60, seed: 21).map { ($0 * 3).rounded() }
        let xf = try Tensor(raw, shape: shape)
        let xi = try Tensor(raw.map { Int32($0) }, shape: shape)
        let xd = raw.map(Double.init)
        for type in ["ArgMax", "ArgMin"] {
            for axis in [0, 1, 2, -1, -3] {
                for last in [0, 1] {
                    for keepdims in [0, 1] {
                        let a = axis < 0 ? axis + 3 : axis
                        let expected = referenceArg(xd, shape, axis: a, max: type == "ArgMax", last: last == 1)
                        var outShape = shape
                        if keepdims == 1 { outShape[a] = 1 } else { outShape.remove(at: a) }
                        let attributes: Attributes = [
                            "axis": .int(axis), "keepdims": .int(keepdims), "select_last_index": .int(last),
                        ]
                        for x in [xf, xi] {
                            let y = try runOperator(type, attributes, inputs: [x])[0]
                            XCTAssertEqual(y.dtype, .int64)
                            XCTAssertEqual(y.shape, outShape)
                            XCTAssertEqual(
                                try y.scalars(as: Int64.self), expected, "\(type) axis \(axis) last \(last) \(x.dtype)")
                        }
                    }
                }
            }
        }
        // Default axis 0 and keepdims 1; float64 and int64.
        let y = try runOperator("ArgMax", inputs: [try Tensor([1.0, 5.0, 2.0, 0.5], shape: [2, 2])])[0]
        XCTAssertEqual(y.shape, [1, 2])
        XCTAssertEqual(try y.scalars(as: Int64.self), [1, 0])
        let z = try runOperator("ArgMin", ["axis": .int(1)], inputs: [try Tensor([4, 2, 9, 1] as [Int64], shape: [1, 4])])[0]
        XCTAssertEqual(try z.scalars(as: Int64.self), [3])
    }

    func testArgMaxTreatsNaNAsLargestAndSmallest() throws {
        // NumPy's rule: the first NaN wins, along rows and along columns.
        let x = try Tensor([1, .nan, 7, .nan, 2, 3] as [Float], shape: [2, 3])
        let rows = try runOperator("ArgMax", ["axis": .int(1), "keepdims": .int(0)], inputs: [x])[0]
        XCTAssertEqual(try rows.scalars(as: Int64.self), [1, 0])
        let columns = try runOperator("ArgMin", ["axis": .int(0), "keepdims": .int(0)], inputs: [x])[0]
        XCTAssertEqual(try columns.scalars(as: Int64.self), [1, 0, 1])
    }

    func testArgMaxErrors() throws {
        XCTAssertThrowsError(try runOperator("ArgMax", ["axis": .int(2)], inputs: [Tensor(zeros: [2, 3])])) { error in
            XCTAssertTrue("\(error)".contains("out of range"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("ArgMax", inputs: [Tensor(scalar: Float(1))])) { error in
            XCTAssertTrue("\(error)".contains("rank >= 1"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("ArgMin", ["axis": .int(1)], inputs: [Tensor(zeros: [2, 0])])) { error in
            XCTAssertTrue("\(error)".contains("size 0"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("ArgMax", inputs: [Tensor(zeros: [2], dtype: .bool)])) { error in
            XCTAssertTrue("\(error)".contains("dtype bool"), "\(error)")
        }
    }
}
