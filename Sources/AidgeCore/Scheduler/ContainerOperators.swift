/// ONNX's sequence and optional operators. They move tensors between containers (`Value`); the only element work,
/// in ConcatFromSequence and SplitToSequence, is data movement.
public enum ContainerOperators {
    /// The operators that take or make containers: those this file runs, and SequenceMap (`ValueRunner`).
    public static let types: Set<String> = [
        "SequenceEmpty", "SequenceConstruct", "SequenceInsert", "SequenceErase", "SequenceAt", "SequenceLength",
        "ConcatFromSequence", "SplitToSequence", "Optional", "OptionalHasElement", "OptionalGetElement", "SequenceMap",
    ]

    /// The outputs of the container operator `op` on `inputs` (nil for an absent optional input).
    static func run(_ op: Operator, _ inputs: [Value?]) throws -> [Value] {
        let a = op.attributes
        func input(_ i: Int) throws -> Value {
            guard i < inputs.count, let v = inputs[i] else { throw AidgeError.invalidModel("input \(i) is missing") }
            return v
        }
        func sequence(_ i: Int) throws -> TensorSequence { try input(i).sequence("input \(i)") }
        func position(_ i: Int) throws -> Int? {
            guard i < inputs.count, let v = inputs[i] else { return nil }
            let t = try v.tensor("the position")
            guard t.count == 1, !t.dtype.isFloatingPoint else {
                throw AidgeError.invalidArgument("the position must be one integer, got \(t.dtype) \(ShapeUtil.text(t.shape))")
            }
            return t.integers()[0]
        }
        switch op.type {
        case "SequenceEmpty":
            let code = try a.int("dtype", default: 1)
            guard let dtype = DType(onnx: code) else {
                throw AidgeError.unsupportedType("SequenceEmpty of ONNX data type \(code) is not supported")
            }
            return [.sequence(try TensorSequence(dtype: dtype))]
        case "SequenceConstruct":
            let tensors = try inputs.indices.map { try input($0).tensor("input \($0)") }
            guard let first = tensors.first else { throw AidgeError.invalidModel("SequenceConstruct needs a tensor") }
            return [.sequence(try TensorSequence(dtype: first.dtype, tensors))]
        case "SequenceInsert":
            var s = try sequence(0)
            let t = try input(1).tensor("the inserted value")
            guard t.dtype == s.dtype else {
                throw AidgeError.unsupportedType("cannot insert a \(t.dtype) tensor into a sequence of \(s.dtype) tensors")
            }
            let k = try position(2).map { try s.index($0, extra: 1, "SequenceInsert") } ?? s.count
            s.tensors.insert(t, at: k)
            return [.sequence(s)]
        case "SequenceErase":
            var s = try sequence(0)
            s.tensors.remove(at: try s.index(try position(1) ?? -1, "SequenceErase"))
            return [.sequence(s)]
        case "SequenceAt":
            let s = try sequence(0)
            guard let p = try position(1) else { throw AidgeError.invalidModel("SequenceAt needs a position") }
            return [.tensor(s.tensors[try s.index(p, "SequenceAt")])]
        case "SequenceLength":
            return [.tensor(Tensor(scalar: Int64(try sequence(0).count)))]
        case "ConcatFromSequence":
            return [.tensor(try concatenate(try sequence(0), axis: try a.int("axis"), newAxis: try a.int("new_axis", default: 0) != 0))]
        case "SplitToSequence":
            let split = try inputs.count > 1 ? inputs[1].map { try $0.tensor("split") } : nil
            return [.sequence(try SequenceSplit(
                try input(0).tensor("the split tensor"), split: split, axis: try a.int("axis", default: 0),
                keepDims: try a.int("keepdims", default: 1) != 0).run())]
        case "Optional":
            return [inputs.first.flatMap { $0 } ?? .absent]
        case "OptionalHasElement":
            switch inputs.first ?? nil {
            case nil, .absent?: return [.tensor(Tensor.bool(false))]
            default: return [.tensor(Tensor.bool(true))]
            }
        case "OptionalGetElement":
            let v = try input(0)
            if case .absent = v { throw AidgeError.invalidArgument("OptionalGetElement of an empty optional") }
            return [v]
        default:
            throw AidgeError.unsupported("\(op.type) is not a sequence or optional operator")
        }
    }

    /// The tensors of `s` joined along `axis`, or stacked along a new `axis` when `newAxis`.
    private static func concatenate(_ s: TensorSequence, axis: Int, newAxis: Bool) throws -> Tensor {
        guard let first = s.tensors.first else {
            throw AidgeError.invalidArgument("ConcatFromSequence of an empty sequence")
        }
        let rank = first.rank + (newAxis ? 1 : 0)
        guard axis >= -rank, axis < rank else {
            throw AidgeError.invalidArgument("ConcatFromSequence axis \(axis) is outside rank \(rank)")
        }
        let a = axis < 0 ? axis + rank : axis
        let parts = try s.tensors.map { t -> Tensor in
            guard newAxis else { return t }
            var shape = t.shape
            guard a <= shape.count else {
                throw AidgeError.shapeMismatch("ConcatFromSequence stacks tensors of different ranks")
            }
            shape.insert(1, at: a)
            return try t.reshaped(shape)
        }
        guard let reference = parts.first?.shape, parts.allSatisfy({ p in
            p.rank == reference.count && (0..<p.rank).allSatisfy { $0 == a || p.shape[$0] == reference[$0] }
        }) else {
            throw AidgeError.shapeMismatch(
                "ConcatFromSequence: shapes \(parts.map { ShapeUtil.text($0.shape) }) differ outside axis \(a)")
        }
        var shape = reference
        shape[a] = parts.reduce(0) { $0 + $1.shape[a] }
        let out = Tensor(zeros: shape, dtype: s.dtype)
        let outer = ShapeUtil.count(Array(reference[..<a]))
        let inner = ShapeUtil.count(Array(reference[(a + 1)...])) * s.dtype.byteSize
        let rowBytes = shape[a] * inner
        var start = 0
        for part in parts {
            let p = part.contiguous()
            let bytes = p.shape[a] * inner
            for o in 0..<outer {
                (out.rawPointer + o * rowBytes + start).copyMemory(from: p.rawPointer + o * bytes, byteCount: bytes)
            }
            start += bytes
        }
        return out
    }
}

/// SplitToSequence: pieces of a tensor along an axis, of the sizes `split` gives (one size: equal pieces, the last
/// one shorter; none: pieces of one, squeezed unless `keepDims`).
private struct SequenceSplit {
    let x: Tensor
    let axis: Int
    let sizes: [Int]
    let squeeze: Bool

    init(_ x: Tensor, split: Tensor?, axis: Int, keepDims: Bool) throws {
        guard axis >= -x.rank, axis < x.rank else {
            throw AidgeError.invalidArgument("SplitToSequence axis \(axis) is outside rank \(x.rank)")
        }
        let a = axis < 0 ? axis + x.rank : axis
        let length = x.shape[a]
        self.x = x.contiguous()
        self.axis = a
        guard let split else {
            sizes = Array(repeating: 1, count: length)
            squeeze = !keepDims
            return
        }
        squeeze = false
        guard !split.dtype.isFloatingPoint else { throw AidgeError.unsupportedType("SplitToSequence split must be integers") }
        let values = split.integers()
        if split.rank == 0 {
            guard let n = values.first, n > 0 else {
                throw AidgeError.invalidArgument("SplitToSequence split must be positive, got \(values)")
            }
            sizes = stride(from: 0, to: length, by: n).map { min(n, length - $0) }
        } else {
            guard values.allSatisfy({ $0 >= 0 }), values.reduce(0, +) == length else {
                throw AidgeError.invalidArgument(
                    "SplitToSequence split \(values) does not add up to \(length), the length of axis \(a)")
            }
            sizes = values
        }
    }

    func run() throws -> TensorSequence {
        let outer = ShapeUtil.count(Array(x.shape[..<axis]))
        let inner = ShapeUtil.count(Array(x.shape[(axis + 1)...])) * x.dtype.byteSize
        let rowBytes = x.shape[axis] * inner
        var start = 0
        var pieces: [Tensor] = []
        for size in sizes {
            var shape = x.shape
            shape[axis] = size
            let piece = Tensor(zeros: shape, dtype: x.dtype)
            let bytes = size * inner
            for o in 0..<outer {
                (piece.rawPointer + o * bytes).copyMemory(from: x.rawPointer + o * rowBytes + start, byteCount: bytes)
            }
            start += bytes
            if squeeze { shape.remove(at: axis) }
            pieces.append(squeeze ? try piece.reshaped(shape) : piece)
        }
        return try TensorSequence(dtype: x.dtype, pieces)
    }
}
