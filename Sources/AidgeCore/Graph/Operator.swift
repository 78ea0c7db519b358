/// What a node does: an operator type (ONNX's names), its attributes, and for a `Producer` the tensor it holds.
///
/// Operators are data: they never compute. A backend supplies the kernel for each type.
public struct Operator: Sendable {
    public var type: String
    public var attributes: Attributes
    /// The ONNX domain ("" for the default one).
    public var domain: String

    public init(_ type: String, attributes: Attributes = [:], domain: String = "") {
        self.type = type
        self.attributes = attributes
        self.domain = domain
    }

    /// The schema of this type, or nil for a generic (unknown) operator.
    public var schema: OperatorSchema? { OperatorSchema.registry[type] }
}

/// What the scheduler knows about a value while planning: its dtype, shape, and the tensor itself when it is
/// known before running (weights, constants, shapes).
public struct ValueInfo: Sendable {
    public var dtype: DType
    public var shape: [Int]
    public var value: Tensor?

    public init(dtype: DType, shape: [Int], value: Tensor? = nil) {
        self.dtype = dtype
        self.shape = shape
        self.value = value
    }

    public init(_ value: Tensor) {
        self.init(dtype: value.dtype, shape: value.shape, value: value)
    }

    public var count: Int { ShapeUtil.count(shape) }
}

/// The facts an operator declares before anything runs: its inputs, and how output dtypes and shapes follow from
/// the inputs'.
public struct OperatorSchema: Sendable {
    public typealias Inference = @Sendable (_ attributes: Attributes, _ inputs: [ValueInfo?]) throws -> [ValueInfo]

    public let type: String
    /// Input names in order (for access by name); inputs past `minInputs` are optional.
    public let inputNames: [String]
    public let minInputs: Int
    /// nil: variadic (Concat, Sum, ...).
    public let maxInputs: Int?
    public let outputCount: Int
    /// Whether the planner may evaluate the node ahead of time when all its inputs are known.
    public let isDeterministic: Bool
    /// Float inputs that get no gradient (running statistics, bounds, rates); integer and bool inputs never do.
    public let nonDifferentiable: Set<Int>
    /// Float inputs that a training-mode run updates in place (BatchNormalization's running statistics).
    public let stateInputs: Set<Int>
    /// Whether the operator computes differently in training mode (BatchNormalization, Dropout): its training
    /// forward is then required, not only its backward.
    public let hasTrainingForm: Bool
    /// Where output 0 lies in input 0 when it is a contiguous window of it (its first element's index; nil: it
    /// is not, for these inputs): the planner then places output 0 inside input 0's buffer and runs no kernel.
    /// Reshape, Flatten, Squeeze and Unsqueeze always are (at 0); Gather of one known index along the leading
    /// non-trivial axis is too.
    public let window: Window?
    public typealias Window = @Sendable (_ attributes: Attributes, _ inputs: [ValueInfo?]) -> Int?
    /// The window rule of the operators whose output 0 is input 0's bytes.
    public static let wholeInput: Window = { _, _ in 0 }
    public let infer: Inference

    public init(
        _ type: String, inputs: [String], minInputs: Int? = nil, variadic: Bool = false, outputs: Int = 1,
        deterministic: Bool = true, nonDifferentiable: Set<Int> = [], stateInputs: Set<Int> = [],
        trainingForm: Bool = false, window: Window? = nil, infer: @escaping Inference
    ) {
        self.type = type
        self.inputNames = inputs
        self.minInputs = minInputs ?? inputs.count
        self.maxInputs = variadic ? nil : inputs.count
        self.outputCount = outputs
        self.isDeterministic = deterministic
        self.nonDifferentiable = nonDifferentiable.union(stateInputs)
        self.stateInputs = stateInputs
        self.hasTrainingForm = trainingForm
        self.window = window
        self.infer = infer
    }

    /// Whether input `index` of dtype `dtype` gets a gradient.
    public func isDifferentiable(input index: Int, dtype: DType) -> Bool {
        dtype.isFloatingPoint && !nonDifferentiable.contains(index)
    }

    /// Checks arity, then infers the outputs; errors name the operator.
    public func outputs(_ attributes: Attributes, _ inputs: [ValueInfo?]) throws -> [ValueInfo] {
        let given = inputs.lastIndex(where: { $0 != nil }).map { $0 + 1 } ?? 0
        if given < minInputs || inputs.prefix(minInputs).contains(where: { $0 == nil }) {
            throw AidgeError.invalidModel("\(type) needs at least \(minInputs) inputs, got \(given)")
        }
        if let maxInputs, given > maxInputs {
            throw AidgeError.invalidModel("\(type) takes at most \(maxInputs) inputs, got \(given)")
        }
        return try infer(attributes, inputs)
    }

    /// Every operator the core defines, by type.
    public static let registry: [String: OperatorSchema] = {
        var all: [String: OperatorSchema] = [:]
        for family in OperatorSchema.families {
            for schema in family { all[schema.type] = schema }
        }
        return all
    }()
}
