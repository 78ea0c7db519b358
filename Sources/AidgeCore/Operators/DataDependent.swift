/// Operators whose output shapes depend on their inputs' values: NonZero, Compress, Unique and
/// NonMaxSuppression. Planning computes them once those values are known (the scheduler splits a graph before
/// such a node when they are computed by the graph itself), so their outputs are known values of the plan.
extension OperatorSchema {
    static let dataDependentSchemas: [OperatorSchema] = [
        OperatorSchema("NonZero", inputs: ["X"]) { _, inputs in
            [ValueInfo(try DataDependentOperators.nonZero(try known(inputs, 0, "NonZero input")))]
        },
        OperatorSchema("Compress", inputs: ["input", "condition"]) { attributes, inputs in
            let axis = attributes.has("axis") ? try attributes.int("axis") : nil
            let x = try known(inputs, 0, "Compress input")
            return [ValueInfo(try DataDependentOperators.compress(x, try known(inputs, 1, "Compress condition"), axis: axis))]
        },
        OperatorSchema("Unique", inputs: ["X"], outputs: 4) { attributes, inputs in
            let axis = attributes.has("axis") ? try attributes.int("axis") : nil
            let sorted = try attributes.int("sorted", default: 1) != 0
            return try DataDependentOperators.unique(try known(inputs, 0, "Unique input"), axis: axis, sorted: sorted)
                .map { ValueInfo($0) }
        },
        OperatorSchema(
            "NonMaxSuppression",
            inputs: ["boxes", "scores", "max_output_boxes_per_class", "iou_threshold", "score_threshold"], minInputs: 2
        ) { attributes, inputs in
            let values = try (0..<inputs.count).map { inputs[$0] == nil ? nil : try known(inputs, $0, "NonMaxSuppression input \($0)") }
            return [ValueInfo(try DataDependentOperators.nonMaxSuppression(values, centerPointBox: try attributes.int("center_point_box", default: 0) != 0))]
        },
    ]

    /// The value of input `i`, which decides the output shape.
    private static func known(_ inputs: [ValueInfo?], _ i: Int, _ what: String) throws -> Tensor {
        try inputs.constant(i, what)
    }
}

/// The computations of the data-dependent operators, on known tensors.
public enum DataDependentOperators {
    /// The indices (int64, rank x count) of the non-zero elements, in row-major order.
    public static func nonZero(_ x: Tensor) throws -> Tensor {
        let values = x.dtype == .bool ? x.converted(to: UInt8.self).map { Double($0) } : x.doubles()
        let positions = values.indices.filter { values[$0] != 0 }
        let strides = ShapeUtil.contiguousStrides(x.shape)
        let rank = x.shape.count
        var result = [Int64](repeating: 0, count: rank * positions.count)
        for (k, position) in positions.enumerated() {
            var rest = position
            for d in 0..<rank {
                result[d * positions.count + k] = Int64(rest / strides[d])
                rest %= strides[d]
            }
        }
        return try Tensor(result).reshaped([rank, positions.count])
    }

    /// The slices of `x` along `axis` (or its elements, flattened) where `condition` is true.
    public static func compress(_ x: Tensor, _ condition: Tensor, axis rawAxis: Int?) throws -> Tensor {
        guard condition.shape.count == 1 else {
            throw AidgeError.shapeMismatch("Compress condition must be 1-D, got shape \(condition.shape)")
        }
        let flat = rawAxis == nil ? try x.contiguous().reshaped([x.count]) : x.contiguous()
        let axis = try ShapeUtil.axis(rawAxis ?? 0, rank: flat.shape.count, context: "Compress axis")
        let length = flat.shape[axis]
        let keep = condition.converted(to: UInt8.self).prefix(length).enumerated().filter { $0.element != 0 }.map(\.offset)
        var shape = flat.shape
        shape[axis] = keep.count
        let out = Tensor(zeros: shape, dtype: x.dtype)
        let inner = ShapeUtil.count(Array(flat.shape[(axis + 1)...])) * x.dtype.byteSize
        let outer = ShapeUtil.count(Array(flat.shape[..<axis]))
        for o in 0..<outer {
            for (k, i) in keep.enumerated() {
                (out.rawPointer + (o * keep.count + k) * inner).copyMemory(
                    from: flat.rawPointer + (o * length + i) * inner, byteCount: inner)
            }
        }
        return out
    }

    /// NumPy's `unique` with all its outputs: the unique values (or slices along `axis`), sorted or in order of
    /// first occurrence, the index of each one's first occurrence, each element's unique index, and the counts.
    public static func unique(_ x: Tensor, axis rawAxis: Int?, sorted: Bool) throws -> [Tensor] {
        let flat = rawAxis == nil ? try x.contiguous().reshaped([x.count]) : x.contiguous()
        let axis = try ShapeUtil.axis(rawAxis ?? 0, rank: flat.shape.count, context: "Unique axis")
        let length = flat.shape[axis]
        let inner = ShapeUtil.count(Array(flat.shape[(axis + 1)...]))
        let outer = ShapeUtil.count(Array(flat.shape[..<axis]))
        // Each slice's elements, compared in order (integers exactly, floats as doubles).
        func slices<V>(_ values: [V]) -> [[V]] {
            (0..<length).map { (i: Int) -> [V] in
                var slice: [V] = []
                for o in 0..<outer {
                    let start = (o * length + i) * inner
                    slice += values[start..<(start + inner)]
                }
                return slice
            }
        }
        let keys: [[Double]]
        let integerKeys: [[Int]]?
        if x.dtype.isFloatingPoint {
            keys = slices(flat.doubles())
            integerKeys = nil
        } else {
            integerKeys = slices(x.dtype == .bool ? flat.converted(to: UInt8.self).map { Int($0) } : flat.integers())
            keys = []
        }
        func less(_ a: Int, _ b: Int) -> Bool {
            if let integerKeys { return integerKeys[a].lexicographicallyPrecedes(integerKeys[b]) }
            return keys[a].lexicographicallyPrecedes(keys[b])
        }
        func same(_ a: Int, _ b: Int) -> Bool { !less(a, b) && !less(b, a) }
        let order = (0..<length).sorted { less($0, $1) || (same($0, $1) && $0 < $1) }
        // Groups of equal slices, each led by its first occurrence.
        var groups: [[Int]] = []
        for i in order {
            if let last = groups.last?.first, same(last, i) { groups[groups.count - 1].append(i) } else { groups.append([i]) }
        }
        if !sorted { groups.sort { $0[0] < $1[0] } }
        var inverse = [Int64](repeating: 0, count: length)
        for (g, members) in groups.enumerated() { for i in members { inverse[i] = Int64(g) } }
        let firsts = groups.map { Int64($0[0]) }
        var shape = flat.shape
        shape[axis] = groups.count
        let y = Tensor(zeros: shape, dtype: x.dtype)
        let bytes = inner * x.dtype.byteSize
        for o in 0..<outer {
            for (g, first) in firsts.enumerated() {
                (y.rawPointer + (o * groups.count + g) * bytes).copyMemory(
                    from: flat.rawPointer + (o * length + Int(first)) * bytes, byteCount: bytes)
            }
        }
        return [y, Tensor(firsts), Tensor(inverse), Tensor(groups.map { Int64($0.count) })]
    }

    /// The (batch, class, box) indices (int64, n x 3) that greedy non-maximum suppression keeps, per batch and
    /// class by decreasing score (ties to the lower box index), as ONNX defines it.
    public static func nonMaxSuppression(_ inputs: [Tensor?], centerPointBox: Bool) throws -> Tensor {
        guard let boxesTensor = inputs.first ?? nil, let scoresTensor = inputs.count > 1 ? inputs[1] : nil else {
            throw AidgeError.invalidModel("NonMaxSuppression needs boxes and scores")
        }
        let b = boxesTensor.shape
        let s = scoresTensor.shape
        guard b.count == 3, b[2] == 4, s.count == 3, s[0] == b[0], s[2] == b[1] else {
            throw AidgeError.shapeMismatch(
                "NonMaxSuppression needs boxes (batches, boxes, 4) and scores (batches, classes, boxes), got \(b) and \(s)")
        }
        func scalar(_ i: Int) -> Double? { i < inputs.count ? inputs[i]?.doubles().first : nil }
        let maxPerClass = max(Int(exactly: (scalar(2) ?? 0).rounded()) ?? 0, 0)
        let iouThreshold = scalar(3) ?? 0
        let scoreThreshold = scalar(4)
        let boxes = boxesTensor.doubles()
        let scores = scoresTensor.doubles()
        let (batches, count, classes) = (b[0], b[1], s[1])
        // Corners (x1, y1, x2, y2) of each box, ordered.
        func corners(_ batch: Int, _ i: Int) -> (Double, Double, Double, Double) {
            let p = (batch * count + i) * 4
            if centerPointBox {
                let (w, h) = (boxes[p + 2] / 2, boxes[p + 3] / 2)
                return (boxes[p] - w, boxes[p + 1] - h, boxes[p] + w, boxes[p + 1] + h)
            }
            return (min(boxes[p + 1], boxes[p + 3]), min(boxes[p], boxes[p + 2]), max(boxes[p + 1], boxes[p + 3]),
                    max(boxes[p], boxes[p + 2]))
        }
        func suppresses(_ batch: Int, _ i: Int, _ j: Int) -> Bool {
            let a = corners(batch, i)
            let c = corners(batch, j)
            let width = min(a.2, c.2) - max(a.0, c.0)
            let height = min(a.3, c.3) - max(a.1, c.1)
            guard width > 0, height > 0 else { return false }
            let intersection = width * height
            let areaA = (a.2 - a.0) * (a.3 - a.1)
            let areaC = (c.2 - c.0) * (c.3 - c.1)
            let union = areaA + areaC - intersection
            guard areaA > 0, areaC > 0, union > 0 else { return false }
            return intersection / union > iouThreshold
        }
        var selected: [Int64] = []
        for batch in 0..<batches {
            for cls in 0..<classes {
                let row = (batch * classes + cls) * count
                let candidates = (0..<count).filter { (i: Int) -> Bool in
                    guard let threshold = scoreThreshold else { return true }
                    return scores[row + i] > threshold
                }.sorted { (i: Int, j: Int) -> Bool in
                    let (a, c) = (scores[row + i], scores[row + j])
                    return a > c || (a == c && i < j)
                }
                var kept: [Int] = []
                for i in candidates where kept.count < maxPerClass {
                    if kept.allSatisfy({ !suppresses(batch, i, $0) }) {
                        kept.append(i)
                        selected += [Int64(batch), Int64(cls), Int64(i)]
                    }
                }
            }
        }
        return try Tensor(selected).reshaped([selected.count / 3, 3])
    }
}
