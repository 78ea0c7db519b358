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

/// Flat row-major index of coordinates `c` in `shape`.
private func flat(_ c: [Int], _ shape: [Int]) -> Int {
    var i = 0
    for (x, d) in zip(c, shape) { i = i * d + x }
    return i
}

/// Naive reference of a data movement: each output coordinate reads the input coordinate `source` gives, or
/// `fill` when it gives nil.
private func reference<T>(_ x: [T], _ shape: [Int], _ outShape: [Int], fill: T, _ source: ([Int]) -> [Int]?) -> [T] {
    (0..<ShapeUtil.count(outShape)).map { i in
        source(coordinates(i, outShape)).map { x[flat($0, shape)] } ?? fill
    }
}

private func int64s(_ v: [Int]) -> Tensor { Tensor(v.map { Int64($0) }) }

private func values(_ n: Int) -> [Float] { (0..<n).map { Float($0) } }

final class ShapeTests: XCTestCase {
    // MARK: Reshape, Flatten, Squeeze, Unsqueeze

    func testReshapeCopiesZeroAndInfersMinusOne() throws {
        let x = try Tensor(values(24), shape: [2, 3, 4])
        let y = try runOperator("Reshape", inputs: [x, int64s([0, -1, 2])], constants: [1])[0]
        XCTAssertEqual(y.shape, [2, 6, 2])
        XCTAssertEqual(try y.scalars(as: Float.self), values(24))
        let z = try runOperator("Reshape", inputs: [x, int64s([-1])], constants: [1])[0]
        XCTAssertEqual(z.shape, [24])
    }

    func testReshapeAllowZeroAndEmpty() throws {
        let x = Tensor(zeros: [0, 3], dtype: .int8)
        let y = try runOperator("Reshape", ["allowzero": .int(1)], inputs: [x, int64s([3, 0])], constants: [1])[0]
        XCTAssertEqual(y.shape, [3, 0])
        XCTAssertEqual(y.dtype, .int8)
    }

    func testReshapeErrors() throws {
        let x = try Tensor(values(6), shape: [2, 3])
        XCTAssertThrowsError(try runOperator("Reshape", inputs: [x, int64s([4, 2])], constants: [1])) { error in
            XCTAssertTrue("\(error)".contains("cannot reshape"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("Reshape", inputs: [x, int64s([-1, -1])], constants: [1])) { error in
            XCTAssertTrue("\(error)".contains("more than one -1"), "\(error)")
        }
        // A target shape fed at run time is checked like a constant one.
        XCTAssertEqual(try runOperator("Reshape", inputs: [x, int64s([3, 2])])[0].shape, [3, 2])
        XCTAssertThrowsError(try runOperator("Reshape", inputs: [x, int64s([4, 2])])) { error in
            XCTAssertTrue("\(error)".contains("cannot reshape"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("Reshape", inputs: [x, Tensor([Float(3), 2])], constants: [1]))
        // Dimensions whose product does not fit: an error, not an overflow.
        XCTAssertThrowsError(
            try runOperator("Reshape", inputs: [x, int64s([1 << 40, 1 << 40, -1])], constants: [1])
        ) { error in
            XCTAssertTrue("\(error)".contains("too many elements"), "\(error)")
        }
        XCTAssertThrowsError(
            try runOperator("Tile", inputs: [x, int64s([1 << 40, 1 << 40])], constants: [1]))
    }

    func testFlatten() throws {
        let x = try Tensor((0..<120).map { Int64($0) }, shape: [2, 3, 4, 5])
        for (axis, shape) in [(0, [1, 120]), (1, [2, 60]), (2, [6, 20]), (-1, [24, 5]), (4, [120, 1]), (-4, [1, 120])] {
            let y = try runOperator("Flatten", ["axis": .int(axis)], inputs: [x])[0]
            XCTAssertEqual(y.shape, shape, "axis \(axis)")
            XCTAssertEqual(try y.scalars(as: Int64.self), (0..<120).map { Int64($0) })
        }
        XCTAssertThrowsError(try runOperator("Flatten", ["axis": .int(5)], inputs: [x]))
    }

    func testSqueezeAndUnsqueeze() throws {
        let x = try Tensor(values(6), shape: [1, 2, 1, 3, 1])
        XCTAssertEqual(try runOperator("Squeeze", inputs: [x])[0].shape, [2, 3])
        XCTAssertEqual(try runOperator("Squeeze", inputs: [x, int64s([])], constants: [1])[0].shape, [2, 3])
        let y = try runOperator("Squeeze", inputs: [x, int64s([0, -1])], constants: [1])[0]
        XCTAssertEqual(y.shape, [2, 1, 3])
        XCTAssertEqual(try y.scalars(as: Float.self), values(6))
        XCTAssertThrowsError(try runOperator("Squeeze", inputs: [x, int64s([1])], constants: [1])) { error in
            XCTAssertTrue("\(error)".contains("not 1"), "\(error)")
        }
        let v = try Tensor(values(6), shape: [2, 3])
        let u = try runOperator("Unsqueeze", inputs: [v, int64s([0, -1, 2])], constants: [1])[0]
        XCTAssertEqual(u.shape, [1, 2, 1, 3, 1])
        XCTAssertEqual(try u.scalars(as: Float.self), values(6))
        let s = try runOperator("Unsqueeze", inputs: [Tensor(scalar: Int64(7)), int64s([0])], constants: [1])[0]
        XCTAssertEqual(s.shape, [1])
        XCTAssertThrowsError(try runOperator("Unsqueeze", inputs: [v, int64s([1, 1])], constants: [1])) { error in
            XCTAssertTrue("\(error)".contains("repeat"), "\(error)")
        }
    }

    // MARK: Transpose

    func testTransposeAllPermutationsOf4D() throws {
        let shape = [2, 3, 4, 5]
        let data = randomFloats(120)
        let x = try Tensor(data, shape: shape)
        func permutations(_ a: [Int]) -> [[Int]] {
            a.count <= 1 ? [a] : a.flatMap { e in permutations(a.filter { $0 != e }).map { [e] + $0 } }
        }
        for perm in permutations([0, 1, 2, 3]) {
            let y = try runOperator("Transpose", ["perm": .ints(perm)], inputs: [x])[0]
            let outShape = perm.map { shape[$0] }
            XCTAssertEqual(y.shape, outShape)
            let expected = reference(data, shape, outShape, fill: 0) { c in
                var i = [Int](repeating: 0, count: 4)
                for k in 0..<4 { i[perm[k]] = c[k] }
                return i
            }
            XCTAssertEqual(try y.scalars(as: Float.self), expected, "perm \(perm)")
        }
    }

    func testTransposeTiledSizesAndDTypes() throws {
        // Sizes that are not multiples of the tile, several element sizes, the default (reversed) perm.
        for (shape, perm) in [([67, 45], [1, 0]), ([3, 50, 41], [0, 2, 1]), ([2, 3, 33, 35], [0, 2, 3, 1]),
            ([2, 19, 5, 37], [0, 3, 1, 2]), ([5, 7, 9], [2, 1, 0]), ([600, 21], [1, 0]), ([1, 9, 11, 70], [0, 3, 1, 2])]
        {
            let n = ShapeUtil.count(shape)
            let outShape = perm.map { shape[$0] }
            let source: ([Int]) -> [Int]? = { c in
                var i = [Int](repeating: 0, count: shape.count)
                for k in shape.indices { i[perm[k]] = c[k] }
                return i
            }
            let ints = (0..<n).map { Int64($0 * 7 + 1) }
            let y64 = try runOperator("Transpose", ["perm": .ints(perm)], inputs: [Tensor(ints, shape: shape)])[0]
            XCTAssertEqual(try y64.scalars(as: Int64.self), reference(ints, shape, outShape, fill: 0, source))
            let floats = (0..<n).map { Float($0) }
            let y32 = try runOperator("Transpose", ["perm": .ints(perm)], inputs: [Tensor(floats, shape: shape)])[0]
            XCTAssertEqual(try y32.scalars(as: Float.self), reference(floats, shape, outShape, fill: 0, source))
            let bytes = (0..<n).map { Int8(truncatingIfNeeded: $0) }
            let y8 = try runOperator("Transpose", ["perm": .ints(perm)], inputs: [Tensor(bytes, shape: shape)])[0]
            XCTAssertEqual(try y8.scalars(as: Int8.self), reference(bytes, shape, outShape, fill: 0, source))
            let halves = (0..<n).map { Float16(Float($0 % 1000)) }
            let y16 = try runOperator("Transpose", ["perm": .ints(perm)], inputs: [Tensor(halves, shape: shape)])[0]
            XCTAssertEqual(try y16.scalars(as: Float16.self), reference(halves, shape, outShape, fill: 0, source))
        }
        let x = try Tensor(values(6), shape: [2, 3])
        let y = try runOperator("Transpose", inputs: [x])[0]
        XCTAssertEqual(y.shape, [3, 2])
        XCTAssertEqual(try y.scalars(as: Float.self), [0, 3, 1, 4, 2, 5])
        XCTAssertThrowsError(try runOperator("Transpose", ["perm": .ints([0, 0])], inputs: [x]))
    }

    // MARK: Concat and Split

    func testConcat() throws {
        let a = try Tensor(values(6), shape: [2, 3])
        let b = try Tensor((0..<4).map { Float(100 + $0) }, shape: [2, 2])
        let empty = Tensor(zeros: [2, 0])
        let y = try runOperator("Concat", ["axis": .int(-1)], inputs: [a, empty, b])[0]
        XCTAssertEqual(y.shape, [2, 5])
        XCTAssertEqual(try y.scalars(as: Float.self), [0, 1, 2, 100, 101, 3, 4, 5, 102, 103])
        let z = try runOperator("Concat", ["axis": .int(0)], inputs: [a, a], constants: [1])[0]
        XCTAssertEqual(z.shape, [4, 3])
        XCTAssertEqual(try z.scalars(as: Float.self), values(6) + values(6))
        // A larger concat along a middle axis, checked against index arithmetic.
        let p = (0..<(3 * 5 * 7)).map { Int16($0) }
        let q = (0..<(3 * 2 * 7)).map { Int16(-1 - $0) }
        let r = try runOperator(
            "Concat", ["axis": .int(1)], inputs: [Tensor(p, shape: [3, 5, 7]), Tensor(q, shape: [3, 2, 7])])[0]
        XCTAssertEqual(r.shape, [3, 7, 7])
        let expected: [Int16] = (0..<(3 * 7 * 7)).map { i in
            let c = coordinates(i, [3, 7, 7])
            return c[1] < 5 ? p[flat(c, [3, 5, 7])] : q[flat([c[0], c[1] - 5, c[2]], [3, 2, 7])]
        }
        XCTAssertEqual(try r.scalars(as: Int16.self), expected)
    }

    func testConcatErrors() throws {
        let a = try Tensor(values(6), shape: [2, 3])
        let b = try Tensor(values(6), shape: [6])
        XCTAssertThrowsError(try runOperator("Concat", ["axis": .int(0)], inputs: [a, b])) { error in
            XCTAssertTrue("\(error)".contains("one rank"), "\(error)")
        }
        let c = try Tensor(values(4), shape: [2, 2])
        XCTAssertThrowsError(try runOperator("Concat", ["axis": .int(0)], inputs: [a, c])) { error in
            XCTAssertTrue("\(error)".contains("differ outside axis"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("Concat", ["axis": .int(0)], inputs: [a, Tensor(zeros: [2, 3], dtype: .int32)]))
        XCTAssertThrowsError(try runOperator("Concat", ["axis": .int(2)], inputs: [a, a]))
    }

    func testSplit() throws {
        let x = try Tensor(values(14), shape: [2, 7])
        // Equal chunks of ceil(7 / 3) with a smaller last one.
        let parts = try runOperator("Split", ["axis": .int(1), "num_outputs": .int(3)], inputs: [x], outputs: 3)
        XCTAssertEqual(parts.map(\.shape), [[2, 3], [2, 3], [2, 1]])
        XCTAssertEqual(try parts[0].scalars(as: Float.self), [0, 1, 2, 7, 8, 9])
        XCTAssertEqual(try parts[1].scalars(as: Float.self), [3, 4, 5, 10, 11, 12])
        XCTAssertEqual(try parts[2].scalars(as: Float.self), [6, 13])
        let sized = try runOperator(
            "Split", ["axis": .int(-1), "num_outputs": .int(2)], inputs: [x, int64s([5, 2])], constants: [1],
            outputs: 2)
        XCTAssertEqual(sized.map(\.shape), [[2, 5], [2, 2]])
        XCTAssertEqual(try sized[1].scalars(as: Float.self), [5, 6, 12, 13])
        let rows = try runOperator("Split", ["num_outputs": .int(2)], inputs: [x], outputs: 2)
        XCTAssertEqual(try rows[1].scalars(as: Float.self), (7..<14).map { Float($0) })
        XCTAssertThrowsError(
            try runOperator("Split", ["axis": .int(1)], inputs: [x, int64s([3, 3])], constants: [1], outputs: 2)
        ) { error in
            XCTAssertTrue("\(error)".contains("add up"), "\(error)")
        }
    }

    // MARK: Expand, Tile

    func testExpand() throws {
        let x = try Tensor([Float(1), 2, 3], shape: [3, 1])
        let y = try runOperator("Expand", inputs: [x, int64s([2, 1, 4])], constants: [1])[0]
        XCTAssertEqual(y.shape, [2, 3, 4])
        XCTAssertEqual(
            try y.scalars(as: Float.self),
            reference([1, 2, 3], [3, 1], [2, 3, 4], fill: 0) { c in [c[1], 0] })
        // Bidirectional: the input's larger dims win over 1s in the shape.
        let b = try Tensor((0..<4).map { Int64($0) }, shape: [1, 4])
        let z = try runOperator("Expand", inputs: [b, int64s([3, 1])], constants: [1])[0]
        XCTAssertEqual(z.shape, [3, 4])
        XCTAssertEqual(try z.scalars(as: Int64.self), [0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3])
        let s = try runOperator("Expand", inputs: [Tensor(scalar: true), int64s([2, 2])], constants: [1])[0]
        XCTAssertEqual(try s.scalars(as: Bool.self), [true, true, true, true])
        XCTAssertThrowsError(try runOperator("Expand", inputs: [x, int64s([2, 4, 4])], constants: [1])) { error in
            XCTAssertTrue("\(error)".contains("cannot broadcast"), "\(error)")
        }
    }

    func testTile() throws {
        let shape = [2, 3, 2]
        let data = values(12)
        let repeats = [2, 1, 3]
        let y = try runOperator("Tile", inputs: [Tensor(data, shape: shape), int64s(repeats)], constants: [1])[0]
        let outShape = [4, 3, 6]
        XCTAssertEqual(y.shape, outShape)
        XCTAssertEqual(
            try y.scalars(as: Float.self),
            reference(data, shape, outShape, fill: 0) { c in zip(c, shape).map { $0 % $1 } })
        let z = try runOperator("Tile", inputs: [Tensor(data, shape: shape), int64s([1, 0, 2])], constants: [1])[0]
        XCTAssertEqual(z.shape, [2, 0, 4])
        XCTAssertThrowsError(try runOperator("Tile", inputs: [Tensor(data, shape: shape), int64s([2])], constants: [1]))
    }

    // MARK: Slice

    /// ONNX Slice written from the spec with plain loops, for one axis.
    private func sliceIndices(dim: Int, start: Int, end: Int, step: Int) -> [Int] {
        var s = start < 0 ? start + dim : start
        var e = end < 0 ? end + dim : end
        var out: [Int] = []
        if step > 0 {
            s = min(max(s, 0), dim)
            e = min(max(e, 0), dim)
            var i = s
            while i < e {
                out.append(i)
                if e - i <= step { break }
                i += step
            }
        } else {
            s = min(max(s, 0), dim - 1)
            e = min(max(e, -1), dim - 1)
            var i = s
            while i > e {
                out.append(i)
                if i - e <= -step { break }
                i += step
            }
        }
        return out
    }

    func testSliceAgainstReference() throws {
        let shape = [4, 5, 6]
        let data = randomFloats(120, seed: 7)
        let x = try Tensor(data, shape: shape)
        let big = Int(Int64.max)
        let cases: [(starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?)] = [
            ([1, 0], [3, big], [0, 2], nil),
            ([0, 1, 2], [4, 5, 6], nil, [2, 2, 2]),
            ([-1], [-big], [1], [-1]),
            ([4, -2], [0, -100], [-1, 0], [-2, -1]),
            ([10], [20], [2], [1]),
            ([-100], [100], [0], [3]),
            ([2, 3], [2, 1], [0, 1], [1, -1]),
            ([5], [big], [-1], [big]),
        ]
        for (starts, ends, axes, steps) in cases {
            var inputs: [Tensor?] = [x, int64s(starts), int64s(ends)]
            inputs.append(axes.map(int64s))
            if let steps {
                inputs.append(int64s(steps))
            }
            let y = try runOperator("Slice", inputs: inputs, constants: [1, 2, 3, 4])[0]
            var picks = shape.map { Array(0..<$0) }
            for (k, a) in (axes ?? Array(0..<starts.count)).enumerated() {
                let axis = a < 0 ? a + 3 : a
                picks[axis] = sliceIndices(dim: shape[axis], start: starts[k], end: ends[k], step: steps?[k] ?? 1)
            }
            let outShape = picks.map(\.count)
            XCTAssertEqual(y.shape, outShape, "\(starts) \(ends) \(String(describing: axes)) \(String(describing: steps))")
            let expected = reference(data, shape, outShape, fill: 0) { c in (0..<3).map { picks[$0][c[$0]] } }
            XCTAssertEqual(try y.scalars(as: Float.self), expected, "\(starts) \(ends)")
        }
    }

    func testSliceInt32InputsAndErrors() throws {
        let x = try Tensor((0..<10).map { UInt8($0) }, shape: [10])
        let y = try runOperator(
            "Slice", inputs: [x, Tensor([Int32(8)]), Tensor([Int32(1)]), nil, Tensor([Int32(-3)])],
            constants: [1, 2, 4])[0]
        XCTAssertEqual(try y.scalars(as: UInt8.self), [8, 5, 2])
        XCTAssertThrowsError(
            try runOperator("Slice", inputs: [x, int64s([0]), int64s([5]), int64s([0]), int64s([0])], constants: [1, 2, 3, 4])
        ) { error in
            XCTAssertTrue("\(error)".contains("step is 0"), "\(error)")
        }
        XCTAssertThrowsError(
            try runOperator("Slice", inputs: [x, int64s([0, 1]), int64s([5])], constants: [1, 2]))
        XCTAssertThrowsError(
            try runOperator("Slice", inputs: [x, int64s([0]), int64s([5]), int64s([1])], constants: [1, 2, 3]))
    }

    // MARK: Pad

    private func padSource(_ i: Int, _ n: Int, _ mode: String) -> Int? {
        if i >= 0 && i < n { return i }
        switch mode {
        case "edge": return min(max(i, 0), n - 1)
        case "wrap":
            var j = i
            while j < 0 { j += n }
            return j % n
        case "reflect":
            // Reflect back and forth without repeating the edge.
            var j = i
            while j < 0 || j >= n {
                if j < 0 { j = -j }
                if j >= n { j = 2 * (n - 1) - j }
            }
            return j
        default: return nil
        }
    }

    func testPadModesAgainstReference() throws {
        let shape = [3, 4]
        let data = values(12)
        let x = try Tensor(data, shape: shape)
        let padsCases: [[Int]] = [[1, 2, 2, 3], [0, 3, 0, 3], [2, 0, 1, 1], [-1, 1, 0, -2], [0, 0, 0, 0], [5, 7, 4, 6], [0, -1, 0, 2], [1, 2, -1, -1]]
        for mode in ["constant", "reflect", "edge", "wrap"] {
            for pads in padsCases {
                let outShape = [3 + pads[0] + pads[2], 4 + pads[1] + pads[3]]
                let inputs: [Tensor?] = [x, int64s(pads), Tensor(scalar: Float(-9))]
                let y = try runOperator("Pad", ["mode": .string(mode)], inputs: inputs, constants: [1])[0]
                XCTAssertEqual(y.shape, outShape, "\(mode) \(pads)")
                // Negative pads crop first (as ONNX Runtime does), then the positive ones pad what is left.
                let first = [max(-pads[0], 0), max(-pads[1], 0)]
                let croppedShape = [3 - first[0] - max(-pads[2], 0), 4 - first[1] - max(-pads[3], 0)]
                let cropped = reference(data, shape, croppedShape, fill: 0) { c in [c[0] + first[0], c[1] + first[1]] }
                let begin = [max(pads[0], 0), max(pads[1], 0)]
                let expected = reference(cropped, croppedShape, outShape, fill: -9) { c in
                    guard let i = self.padSource(c[0] - begin[0], croppedShape[0], mode),
                        let j = self.padSource(c[1] - begin[1], croppedShape[1], mode)
                    else { return nil }
                    return [i, j]
                }
                XCTAssertEqual(try y.scalars(as: Float.self), expected, "\(mode) \(pads)")
            }
        }
    }

    func testPadAxesAndDefaults() throws {
        let x = try Tensor((0..<6).map { Int64($0) }, shape: [1, 2, 3])
        // Pads only the last axis; no constant value: 0.
        let y = try runOperator("Pad", inputs: [x, int64s([1, 2]), nil, int64s([-1])], constants: [1, 3])[0]
        XCTAssertEqual(y.shape, [1, 2, 6])
        XCTAssertEqual(try y.scalars(as: Int64.self), [0, 0, 1, 2, 0, 0, 0, 3, 4, 5, 0, 0])
        XCTAssertThrowsError(try runOperator("Pad", inputs: [x, int64s([1, 2])], constants: [1])) { error in
            XCTAssertTrue("\(error)".contains("pads"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("Pad", inputs: [x, int64s([0, 0, -4, 0, 0, 0])], constants: [1]))
        XCTAssertThrowsError(
            try runOperator("Pad", ["mode": .string("mirror")], inputs: [x, int64s([0, 0, 0, 0, 0, 0])], constants: [1]))
    }
}
