/// What a graph value holds when it runs: a tensor, or one of ONNX's containers of tensors.
///
/// Containers have lengths that only running decides, so a graph that holds them runs node by node
/// (`ValueRunner`) rather than from a static plan; its tensor operators still run through plans.
public enum Value: Sendable {
    case tensor(Tensor)
    case sequence(TensorSequence)
    /// An optional that holds nothing. An optional that holds a value is that value.
    case absent

    /// The tensor this value holds; `what` names it in the error when it holds something else.
    public func tensor(_ what: @autoclosure () -> String) throws -> Tensor {
        switch self {
        case .tensor(let t): return t
        case .sequence: throw AidgeError.invalidArgument("\(what()) is a sequence where a tensor is expected")
        case .absent: throw AidgeError.invalidArgument("\(what()) is an empty optional where a tensor is expected")
        }
    }

    /// The sequence this value holds; `what` names it in the error when it holds something else.
    public func sequence(_ what: @autoclosure () -> String) throws -> TensorSequence {
        switch self {
        case .sequence(let s): return s
        case .tensor: throw AidgeError.invalidArgument("\(what()) is a tensor where a sequence is expected")
        case .absent: throw AidgeError.invalidArgument("\(what()) is an empty optional where a sequence is expected")
        }
    }

    /// A short description of what the value holds, for messages.
    public var summary: String {
        switch self {
        case .tensor(let t): return "a \(t.dtype) tensor of shape \(ShapeUtil.text(t.shape))"
        case .sequence(let s): return "a sequence of \(s.tensors.count) \(s.dtype) tensors"
        case .absent: return "an empty optional"
        }
    }
}

/// ONNX's sequence: tensors of one dtype, each of its own shape. The dtype is kept for empty sequences.
public struct TensorSequence: Sendable {
    public let dtype: DType
    public var tensors: [Tensor]

    /// A sequence of `tensors`, which must all hold `dtype`.
    public init(dtype: DType, _ tensors: [Tensor] = []) throws {
        if let other = tensors.first(where: { $0.dtype != dtype }) {
            throw AidgeError.unsupportedType("a sequence of \(dtype) tensors cannot hold a \(other.dtype) tensor")
        }
        self.dtype = dtype
        self.tensors = tensors
    }

    public var count: Int { tensors.count }

    /// The position `position` (negative counts from the end) checked against `0..<count + extra`.
    public func index(_ position: Int, extra: Int = 0, _ what: String) throws -> Int {
        let n = tensors.count + extra
        let k = position < 0 ? position + tensors.count : position
        guard k >= 0, k < n else {
            throw AidgeError.invalidArgument(
                "\(what) position \(position) is outside a sequence of \(tensors.count) tensors")
        }
        return k
    }
}

/// What a graph input or output is declared to hold: a tensor, or ONNX's containers around one.
public indirect enum ValueKind: Sendable, Hashable, CustomStringConvertible {
    case tensor
    case sequence(ValueKind)
    case optional(ValueKind)

    public var description: String {
        switch self {
        case .tensor: return "tensor"
        case .sequence(let e): return "sequence(\(e))"
        case .optional(let e): return "optional(\(e))"
        }
    }
}
