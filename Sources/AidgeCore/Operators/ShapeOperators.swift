/// Operators that rearrange elements: Reshape, Flatten, Transpose, Concat, Split, Squeeze, Unsqueeze, Expand,
/// Slice, Pad and Tile. Inputs that decide the output shape (shape, axes, pads, repeats, ...) must be known when
/// planning.

extension Array where Element == ValueInfo? {
    /// The integers of input `i` (an int64/int32 tensor known when planning), for shapes, axes, pads and the like.
    func shapeOperatorIntegers(_ i: Int, _ what: String) throws -> [Int] {
        let info = try required(i)
        guard info.dtype == .int64 || info.dtype == .int32 else {
            throw AidgeError.unsupportedType("\(what) must be int64 or int32, got \(info.dtype)")
        }
        guard info.shape.count <= 1 else {
            throw AidgeError.shapeMismatch("\(what) must be 1-D, got shape \(info.shape)")
        }
        return try constant(i, what).integers()
    }
}

/// Shape arithmetic of the shape operators, shared by their schemas and their kernels.
public enum ShapeOperators {
    /// The number of elements of `shape`, or an error when it is negative or does not fit in an `Int`.
    public static func checkedCount(_ shape: [Int], _ context: String) throws -> Int {
        var n = 1
        for d in shape {
            guard d >= 0 else { throw AidgeError.invalidArgument("\(context): negative dimension in shape \(shape)") }
            let (m, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow else { throw AidgeError.invalidArgument("\(context): shape \(shape) has too many elements") }
            n = m
        }
        return n
    }

    /// CenterCropPad's output shape: `target` on `axes` (default: every axis), the input's elsewhere.
    public static func centerCropPad(_ input: [Int], target: [Int], _ attributes: Attributes) throws -> [Int] {
        let axes = try attributes.ints("axes", default: Array(input.indices)).map {
            try ShapeUtil.axis($0, rank: input.count, context: "CenterCropPad axes")
        }
        guard axes.count == target.count, Set(axes).count == axes.count, target.allSatisfy({ $0 >= 0 }) else {
            throw AidgeError.shapeMismatch("CenterCropPad shape \(target) does not match axes \(axes)")
        }
        var shape = input
        for (axis, size) in zip(axes, target) { shape[axis] = size }
        return shape
    }

    /// ReverseSequence's batch and time axes: 0 and 1 in either order, on an input of rank 2 or more.
    public static func sequenceAxes(_ attributes: Attributes, rank: Int) throws -> (batch: Int, time: Int) {
        let batch = try attributes.int("batch_axis", default: 1)
        let time = try attributes.int("time_axis", default: 0)
        guard rank >= 2, Set([batch, time]) == [0, 1] else {
            throw AidgeError.invalidModel(
                "ReverseSequence needs batch_axis and time_axis 0 and 1 on an input of rank >= 2, got \(batch), \(time)")
        }
        return (batch, time)
    }

    /// DepthToSpace and SpaceToDepth: the NCHW dimensions of `shape` and the checked `blocksize`; `mode` must be
    /// DCR or CRD.
    public static func blockShape(_ type: String, _ shape: [Int], _ attributes: Attributes) throws
        -> (Int, Int, Int, Int, Int)
    {
        guard shape.count == 4 else { throw AidgeError.shapeMismatch("\(type) needs a 4-D input, got shape \(shape)") }
        let block = try attributes.int("blocksize")
        guard block > 0 else { throw AidgeError.invalidModel("\(type) blocksize must be positive, got \(block)") }
        let mode = try attributes.string("mode", default: "DCR")
        guard mode == "DCR" || mode == "CRD" else {
            throw AidgeError.invalidModel("\(type) mode must be \"DCR\" or \"CRD\", got \"\(mode)\"")
        }
        return (shape[0], shape[1], shape[2], shape[3], block)
    }

    /// DepthToSpace (or, with `toDepth`, SpaceToDepth) as a permutation of a 6-D view of the input: the view's
    /// shape and the permutation that gives the output's order.
    public static func blockPermutation(
        _ shape: [Int], block: Int, crd: Bool, toDepth: Bool
    ) -> (view: [Int], perm: [Int]) {
        let (b, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        if toDepth {
            return ([b, c, h / block, block, w / block, block], crd ? [0, 1, 3, 5, 2, 4] : [0, 3, 5, 1, 2, 4])
        }
        let depth = c / (block * block)
        return crd
            ? ([b, depth, block, block, h, w], [0, 1, 4, 2, 5, 3])
            : ([b, block, block, depth, h, w], [0, 3, 4, 1, 5, 2])
    }

    /// Reshape's output shape: 0 copies the input dimension (unless `allowZero`), one -1 is inferred.
    public static func reshape(_ input: [Int], to requested: [Int], allowZero: Bool) throws -> [Int] {
        var out = requested
        var inferred: Int? = nil
        for (k, d) in requested.enumerated() {
            if d == -1 {
                guard inferred == nil else {
                    throw AidgeError.invalidArgument("Reshape shape \(requested) has more than one -1")
                }
                inferred = k
            } else if d == 0 && !allowZero {
                guard k < input.count else {
                    throw AidgeError.shapeMismatch(
                        "Reshape shape \(requested) copies dimension \(k) (0) of an input of rank \(input.count)")
                }
                out[k] = input[k]
            } else if d < 0 {
                throw AidgeError.invalidArgument("Reshape shape \(requested) has a negative dimension \(d)")
            }
        }
        let total = ShapeUtil.count(input)
        if let k = inferred {
            var rest = out
            rest[k] = 1
            let known = try checkedCount(rest, "Reshape")
            guard known != 0, total % known == 0 else {
                throw AidgeError.shapeMismatch(
                    "cannot reshape \(total) elements (shape \(input)) to \(requested): the -1 cannot be inferred")
            }
            out[k] = total / known
        }
        let count = try checkedCount(out, "Reshape")
        guard count == total else {
            throw AidgeError.shapeMismatch(
                "cannot reshape \(total) elements (shape \(input)) to \(requested) (\(count) elements)")
        }
        return out
    }

    /// Normalised, distinct axes (negative ones count from the end) for a tensor of rank `rank`.
    public static func axes(_ axes: [Int], rank: Int, context: String) throws -> [Int] {
        var seen = Set<Int>()
        return try axes.map { a in
            let n = try ShapeUtil.axis(a, rank: rank, context: "\(context) axis")
            guard seen.insert(n).inserted else {
                throw AidgeError.invalidArgument("\(context) axes \(axes) repeat axis \(a)")
            }
            return n
        }
    }

    /// One sliced axis: the first index, the step and the number of elements taken.
    public struct SliceAxis: Sendable, Equatable {
        public var start: Int
        public var step: Int
        public var count: Int
    }

    /// ONNX Slice on a dimension of size `dim`: negative indices count from the end, then start and end are
    /// clamped to `[0, dim]` (step > 0) or `[-1, dim - 1]` (step < 0).
    public static func slice(dim: Int, start: Int, end: Int, step: Int) throws -> SliceAxis {
        guard step != 0 else { throw AidgeError.invalidArgument("Slice step is 0") }
        var s = start < 0 ? start &+ dim : start
        var e = end < 0 ? end &+ dim : end
        if step > 0 {
            s = min(max(s, 0), dim)
            e = min(max(e, 0), dim)
            return SliceAxis(start: s, step: step, count: e > s ? Int(UInt(e - s - 1) / step.magnitude) + 1 : 0)
        }
        s = min(max(s, 0), dim - 1)
        e = min(max(e, -1), dim - 1)
        return SliceAxis(start: s, step: step, count: s > e ? Int(UInt(s - e - 1) / step.magnitude) + 1 : 0)
    }

    /// Slice of `shape` by starts/ends/axes/steps (ONNX's inputs); one `SliceAxis` per dimension.
    public static func slice(
        _ shape: [Int], starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?
    ) throws -> [SliceAxis] {
        guard starts.count == ends.count else {
            throw AidgeError.invalidArgument("Slice has \(starts.count) starts but \(ends.count) ends")
        }
        let axes = try ShapeOperators.axes(axes ?? Array(0..<starts.count), rank: shape.count, context: "Slice")
        guard axes.count == starts.count else {
            throw AidgeError.invalidArgument("Slice has \(starts.count) starts but \(axes.count) axes")
        }
        let steps = steps ?? Array(repeating: 1, count: starts.count)
        guard steps.count == starts.count else {
            throw AidgeError.invalidArgument("Slice has \(starts.count) starts but \(steps.count) steps")
        }
        var result = shape.map { SliceAxis(start: 0, step: 1, count: $0) }
        for (k, axis) in axes.enumerated() {
            result[axis] = try slice(dim: shape[axis], start: starts[k], end: ends[k], step: steps[k])
        }
        return result
    }

    /// Pad's per-axis begin and end amounts for every dimension, from the `pads` input and optional `axes`.
    public static func pads(rank: Int, pads: [Int], axes: [Int]?) throws -> (begin: [Int], end: [Int]) {
        let axes = try ShapeOperators.axes(axes ?? Array(0..<rank), rank: rank, context: "Pad")
        guard pads.count == 2 * axes.count else {
            throw AidgeError.invalidArgument(
                "Pad needs \(2 * axes.count) pads (begin and end for \(axes.count) axes), got \(pads.count)")
        }
        if let bad = pads.first(where: { $0.magnitude >= 1 << 40 }) {
            throw AidgeError.invalidArgument("Pad amount \(bad) is out of range")
        }
        var begin = [Int](repeating: 0, count: rank)
        var end = [Int](repeating: 0, count: rank)
        for (k, a) in axes.enumerated() {
            begin[a] = pads[k]
            end[a] = pads[k + axes.count]
        }
        return (begin, end)
    }

    /// Split sizes along a dimension of size `dim`: `split` when given, else `outputs` chunks of
    /// `ceil(dim / outputs)` with a smaller last one (opset 18).
    public static func splitSizes(dim: Int, split: [Int]?, outputs: Int) throws -> [Int] {
        if let split {
            guard split.count == outputs else {
                throw AidgeError.invalidArgument("Split has \(outputs) outputs but \(split.count) sizes \(split)")
            }
            guard split.allSatisfy({ $0 >= 0 }), split.reduce(0, +) == dim else {
                throw AidgeError.shapeMismatch("Split sizes \(split) do not add up to the dimension \(dim)")
            }
            return split
        }
        guard outputs > 0 else { throw AidgeError.invalidArgument("Split needs at least one output") }
        let chunk = (dim + outputs - 1) / outputs
        return (0..<outputs).map { k in min(chunk, max(dim - k * chunk, 0)) }
    }
}

extension OperatorSchema {
    static let shapeSchemas: [OperatorSchema] = [
        OperatorSchema("Reshape", inputs: ["data", "shape"], window: wholeInput) { attributes, inputs in
            let x = try inputs.required(0)
            let requested = try inputs.shapeOperatorIntegers(1, "shape")
            let allowZero = try attributes.int("allowzero", default: 0) != 0
            return [ValueInfo(dtype: x.dtype, shape: try ShapeOperators.reshape(x.shape, to: requested, allowZero: allowZero))]
        },

        OperatorSchema("Flatten", inputs: ["input"], window: wholeInput) { attributes, inputs in
            let x = try inputs.required(0)
            let rank = x.shape.count
            let raw = try attributes.int("axis", default: 1)
            let axis = raw < 0 ? raw + rank : raw
            guard axis >= 0, axis <= rank else {
                throw AidgeError.invalidArgument("Flatten axis \(raw) is out of range for rank \(rank)")
            }
            let outer = ShapeUtil.count(Array(x.shape[..<axis]))
            let inner = ShapeUtil.count(Array(x.shape[axis...]))
            return [ValueInfo(dtype: x.dtype, shape: [outer, inner])]
        },

        OperatorSchema("Transpose", inputs: ["data"]) { attributes, inputs in
            let x = try inputs.required(0)
            let perm = try transposePermutation(attributes, rank: x.shape.count)
            return [ValueInfo(dtype: x.dtype, shape: perm.map { x.shape[$0] })]
        },

        OperatorSchema("Concat", inputs: ["inputs"], variadic: true) { attributes, inputs in
            let dtype = try sameDType(inputs)
            guard let first = inputs.first ?? nil else { throw AidgeError.invalidModel("Concat needs inputs") }
            let rank = first.shape.count
            guard rank > 0 else { throw AidgeError.shapeMismatch("Concat cannot join scalars") }
            let axis = try ShapeUtil.axis(try attributes.int("axis"), rank: rank, context: "Concat axis")
            var shape = first.shape
            shape[axis] = 0
            for (i, input) in inputs.enumerated() {
                guard let input else { throw AidgeError.invalidModel("Concat input \(i) is missing") }
                guard input.shape.count == rank else {
                    throw AidgeError.shapeMismatch(
                        "Concat inputs must have one rank: input 0 has shape \(first.shape), input \(i) \(input.shape)")
                }
                for d in 0..<rank where d != axis && input.shape[d] != first.shape[d] {
                    throw AidgeError.shapeMismatch(
                        "Concat inputs differ outside axis \(axis): input 0 has shape \(first.shape), input \(i) "
                            + "\(input.shape)")
                }
                shape[axis] += input.shape[axis]
            }
            return [ValueInfo(dtype: dtype, shape: shape)]
        },

        // The node's output count is the `num_outputs` attribute (the importer always sets it).
        OperatorSchema("Split", inputs: ["input", "split"], minInputs: 1, outputs: 2) { attributes, inputs in
            let x = try inputs.required(0)
            guard !x.shape.isEmpty else { throw AidgeError.shapeMismatch("Split cannot split a scalar") }
            let axis = try ShapeUtil.axis(try attributes.int("axis", default: 0), rank: x.shape.count, context: "Split axis")
            let split = inputs.optional(1) == nil ? nil : try inputs.shapeOperatorIntegers(1, "split")
            let outputs: Int
            if attributes.has("num_outputs") {
                outputs = try attributes.int("num_outputs")
            } else if let split {
                outputs = split.count
            } else {
                throw AidgeError.invalidModel("Split needs the attribute num_outputs or the split input")
            }
            let sizes = try ShapeOperators.splitSizes(dim: x.shape[axis], split: split, outputs: outputs)
            return sizes.map { size in
                var shape = x.shape
                shape[axis] = size
                return ValueInfo(dtype: x.dtype, shape: shape)
            }
        },

        OperatorSchema("Squeeze", inputs: ["data", "axes"], minInputs: 1, window: wholeInput) { _, inputs in
            let x = try inputs.required(0)
            let shape: [Int]
            // Absent or empty axes: every dimension of size 1 (as ONNX Runtime does).
            let raw = inputs.optional(1) == nil ? [] : try inputs.shapeOperatorIntegers(1, "axes")
            if !raw.isEmpty {
                let axes = try ShapeOperators.axes(raw, rank: x.shape.count, context: "Squeeze")
                for a in axes where x.shape[a] != 1 {
                    throw AidgeError.shapeMismatch("Squeeze axis \(a) of shape \(x.shape) is \(x.shape[a]), not 1")
                }
                shape = x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
            } else {
                shape = x.shape.filter { $0 != 1 }
            }
            return [ValueInfo(dtype: x.dtype, shape: shape)]
        },

        OperatorSchema("Unsqueeze", inputs: ["data", "axes"], window: wholeInput) { _, inputs in
            let x = try inputs.required(0)
            let raw = try inputs.shapeOperatorIntegers(1, "axes")
            let rank = x.shape.count + raw.count
            let axes = Set(try ShapeOperators.axes(raw, rank: rank, context: "Unsqueeze"))
            var shape: [Int] = []
            var next = x.shape.makeIterator()
            for d in 0..<rank { shape.append(axes.contains(d) ? 1 : next.next() ?? 1) }
            return [ValueInfo(dtype: x.dtype, shape: shape)]
        },

        OperatorSchema("Expand", inputs: ["input", "shape"]) { _, inputs in
            let x = try inputs.required(0)
            let shape = try inputs.shapeOperatorIntegers(1, "shape")
            if let bad = shape.first(where: { $0 < 0 }) {
                throw AidgeError.invalidArgument("Expand shape \(shape) has a negative dimension \(bad)")
            }
            guard let out = try? ShapeUtil.broadcast(x.shape, shape) else {
                throw AidgeError.shapeMismatch("Expand cannot broadcast shape \(x.shape) to \(shape)")
            }
            _ = try ShapeOperators.checkedCount(out, "Expand")
            return [ValueInfo(dtype: x.dtype, shape: out)]
        },

        OperatorSchema("Slice", inputs: ["data", "starts", "ends", "axes", "steps"], minInputs: 3) { _, inputs in
            let x = try inputs.required(0)
            guard !x.shape.isEmpty else { throw AidgeError.shapeMismatch("Slice cannot slice a scalar") }
            let axes = try sliceAxes(x.shape, inputs)
            return [ValueInfo(dtype: x.dtype, shape: axes.map(\.count))]
        },

        OperatorSchema("Pad", inputs: ["data", "pads", "constant_value", "axes"], minInputs: 2, nonDifferentiable: [2]) { attributes, inputs in
            let x = try inputs.required(0)
            let mode = try attributes.string("mode", default: "constant")
            guard ["constant", "reflect", "edge", "wrap"].contains(mode) else {
                throw AidgeError.unsupported("Pad mode '\(mode)' (expected constant, reflect, edge or wrap)")
            }
            if let value = inputs.optional(2) {
                guard value.dtype == x.dtype else {
                    throw AidgeError.unsupportedType("Pad constant_value is \(value.dtype), the data \(x.dtype)")
                }
                guard value.count == 1 else {
                    throw AidgeError.shapeMismatch("Pad constant_value must be a scalar, got shape \(value.shape)")
                }
            }
            let (begin, end) = try padAmounts(x.shape.count, inputs)
            var shape = x.shape
            for d in shape.indices {
                shape[d] += begin[d] + end[d]
                guard shape[d] >= 0 else {
                    throw AidgeError.shapeMismatch(
                        "Pad crops more than dimension \(d) of shape \(x.shape) holds (pads \(begin[d]), \(end[d]))")
                }
                // Negative pads crop first; the other modes need something left to repeat.
                let kept = x.shape[d] - max(-begin[d], 0) - max(-end[d], 0)
                if mode != "constant" && kept <= 0 && shape[d] > 0 {
                    throw AidgeError.invalidArgument("Pad mode '\(mode)' cannot pad dimension \(d), which is empty")
                }
            }
            return [ValueInfo(dtype: x.dtype, shape: shape)]
        },

        // The upper (or lower) triangle of the last two dimensions from the k-th diagonal on, zeros elsewhere;
        // k, when given, is read when the kernel runs (it does not change the shape).
        OperatorSchema("Trilu", inputs: ["input", "k"], minInputs: 1, nonDifferentiable: [1]) { attributes, inputs in
            let x = try inputs.required(0)
            guard x.shape.count >= 2 else {
                throw AidgeError.shapeMismatch("Trilu needs an input of rank 2 or more, got shape \(x.shape)")
            }
            if let k = inputs.optional(1) {
                try expect(k, in: [.int64], "k")
                guard k.count == 1 else { throw AidgeError.shapeMismatch("Trilu k must be a scalar, got shape \(k.shape)") }
            }
            let upper = try attributes.int("upper", default: 1)
            guard upper == 0 || upper == 1 else { throw AidgeError.invalidModel("Trilu upper must be 0 or 1, got \(upper)") }
            return [ValueInfo(dtype: x.dtype, shape: x.shape)]
        },

        OperatorSchema("DepthToSpace", inputs: ["input"]) { attributes, inputs in
            let x = try inputs.required(0)
            let (b, c, h, w, block) = try ShapeOperators.blockShape("DepthToSpace", x.shape, attributes)
            guard c % (block * block) == 0 else {
                throw AidgeError.shapeMismatch(
                    "DepthToSpace needs channels (\(c)) divisible by blocksize² (\(block * block))")
            }
            return [ValueInfo(dtype: x.dtype, shape: [b, c / (block * block), h * block, w * block])]
        },

        OperatorSchema("SpaceToDepth", inputs: ["input"]) { attributes, inputs in
            let x = try inputs.required(0)
            let (b, c, h, w, block) = try ShapeOperators.blockShape("SpaceToDepth", x.shape, attributes)
            guard h % block == 0, w % block == 0 else {
                throw AidgeError.shapeMismatch("SpaceToDepth needs height and width divisible by blocksize \(block), got \(x.shape)")
            }
            return [ValueInfo(dtype: x.dtype, shape: [b, c * block * block, h / block, w / block])]
        },

        // Crops or zero-pads `axes` (default: all) to `shape`, centred (an odd difference leaves the extra element
        // at the end).
        OperatorSchema("CenterCropPad", inputs: ["input_data", "shape"], nonDifferentiable: [1]) { attributes, inputs in
            let x = try inputs.required(0)
            let target = try inputs.shapeOperatorIntegers(1, "CenterCropPad shape")
            let shape = try ShapeOperators.centerCropPad(x.shape, target: target, attributes)
            return [ValueInfo(dtype: x.dtype, shape: shape)]
        },

        // The first sequence_lens[b] steps along time_axis reversed, for each batch entry b along batch_axis.
        OperatorSchema("ReverseSequence", inputs: ["input", "sequence_lens"], nonDifferentiable: [1]) {
            attributes, inputs in
            let x = try inputs.required(0)
            let lengths = try inputs.required(1)
            try expect(lengths, in: [.int64], "sequence_lens")
            let (batch, _) = try ShapeOperators.sequenceAxes(attributes, rank: x.shape.count)
            guard lengths.shape == [x.shape[batch]] else {
                throw AidgeError.shapeMismatch(
                    "ReverseSequence sequence_lens must have shape [\(x.shape[batch])], got \(lengths.shape)")
            }
            return [ValueInfo(dtype: x.dtype, shape: x.shape)]
        },

        OperatorSchema("Tile", inputs: ["input", "repeats"]) { _, inputs in
            let x = try inputs.required(0)
            let repeats = try inputs.shapeOperatorIntegers(1, "repeats")
            guard repeats.count == x.shape.count else {
                throw AidgeError.shapeMismatch("Tile has \(repeats.count) repeats for an input of rank \(x.shape.count)")
            }
            if let bad = repeats.first(where: { $0 < 0 }) {
                throw AidgeError.invalidArgument("Tile repeats \(repeats) has a negative value \(bad)")
            }
            let shape = try zip(x.shape, repeats).map { d, r in
                let (n, overflow) = d.multipliedReportingOverflow(by: r)
                guard !overflow else { throw AidgeError.invalidArgument("Tile repeats \(repeats) overflow shape \(x.shape)") }
                return n
            }
            _ = try ShapeOperators.checkedCount(shape, "Tile")
            return [ValueInfo(dtype: x.dtype, shape: shape)]
        },
    ]

    /// Transpose's `perm` (default: reversed dimensions), checked to be a permutation.
    public static func transposePermutation(_ attributes: Attributes, rank: Int) throws -> [Int] {
        let perm = try attributes.ints("perm", default: Array((0..<rank).reversed()))
        guard perm.count == rank, Set(perm) == Set(0..<rank) else {
            throw AidgeError.invalidArgument("Transpose perm \(perm) is not a permutation of 0..<\(rank)")
        }
        return perm
    }

    /// Slice's per-dimension start, step and count from its constant inputs.
    public static func sliceAxes(_ shape: [Int], _ inputs: [ValueInfo?]) throws -> [ShapeOperators.SliceAxis] {
        let starts = try inputs.shapeOperatorIntegers(1, "starts")
        let ends = try inputs.shapeOperatorIntegers(2, "ends")
        let axes = inputs.optional(3) == nil ? nil : try inputs.shapeOperatorIntegers(3, "axes")
        let steps = inputs.optional(4) == nil ? nil : try inputs.shapeOperatorIntegers(4, "steps")
        return try ShapeOperators.slice(shape, starts: starts, ends: ends, axes: axes, steps: steps)
    }

    /// Pad's begin and end amounts per dimension from its constant inputs.
    public static func padAmounts(_ rank: Int, _ inputs: [ValueInfo?]) throws -> (begin: [Int], end: [Int]) {
        let pads = try inputs.shapeOperatorIntegers(1, "pads")
        let axes = inputs.optional(3) == nil ? nil : try inputs.shapeOperatorIntegers(3, "axes")
        return try ShapeOperators.pads(rank: rank, pads: pads, axes: axes)
    }
}
