import Synchronization

/// The training half of one node at fixed shapes: its backward, and its training-mode forward where that differs
/// from inference (batch statistics, dropout masks) or must keep state for backward.
///
/// Built once per recorded plan, run any number of times; all per-run state lives in the tensors it is given.
public protocol GradientKernel: AnyObject {
    /// Tensors the training forward keeps for backward beyond the node's inputs and outputs (allocated per run).
    var savedInfos: [ValueInfo] { get }
    /// Whether `forward(_:_:saved:)` replaces the inference kernel in a recorded or training-mode run.
    var hasTrainingForward: Bool { get }
    /// Whether backward reads forward input `index` (others may be overwritten once forward is past them).
    func readsInput(_ index: Int) -> Bool
    /// Whether backward reads forward output `index`.
    func readsOutput(_ index: Int) -> Bool
    /// The training-mode forward: like the inference kernel, and writes `saved`.
    func forward(_ inputs: [Tensor?], _ outputs: [Tensor], saved: [Tensor], training: Bool) throws
    /// Adds this node's contribution to the gradients of its inputs.
    func backward(_ pass: BackwardPass) throws
}

extension GradientKernel {
    public var savedInfos: [ValueInfo] { [] }
    public var hasTrainingForward: Bool { false }
    public func readsInput(_ index: Int) -> Bool { true }
    public func readsOutput(_ index: Int) -> Bool { true }
    public func forward(_ inputs: [Tensor?], _ outputs: [Tensor], saved: [Tensor], training: Bool) throws {
        throw AidgeError.unsupported("this operator has no training forward")
    }
}

/// What one backward kernel call sees. All tensors are contiguous.
public struct BackwardPass {
    /// The node's forward inputs (nil for absent optional inputs).
    public let inputs: [Tensor?]
    /// The node's forward outputs.
    public let outputs: [Tensor]
    /// What the training forward saved (`GradientKernel.savedInfos`).
    public let saved: [Tensor]
    /// The gradient of each output; nil where an output does not reach the loss (a zero gradient).
    public let outputGradients: [Tensor?]
    /// Where to add each input's gradient; nil where none is needed. Kernels add (`+=`), never overwrite:
    /// a value read twice gets the sum.
    public let inputGradients: [Tensor?]
    /// Whether the forward ran in training mode.
    public let training: Bool

    public init(
        inputs: [Tensor?], outputs: [Tensor], saved: [Tensor], outputGradients: [Tensor?],
        inputGradients: [Tensor?], training: Bool
    ) {
        self.inputs = inputs
        self.outputs = outputs
        self.saved = saved
        self.outputGradients = outputGradients
        self.inputGradients = inputGradients
        self.training = training
    }

    /// Input `i`, which the forward had.
    public func input(_ i: Int) throws -> Tensor {
        guard i < inputs.count, let t = inputs[i] else { throw AidgeError.invalidModel("backward: missing input \(i)") }
        return t
    }

    /// Where input `i`'s gradient goes, or nil.
    public func inputGradient(_ i: Int) -> Tensor? { i < inputGradients.count ? inputGradients[i] : nil }

    /// The gradient of output `i`, or nil when it is zero.
    public func outputGradient(_ i: Int) -> Tensor? { i < outputGradients.count ? outputGradients[i] : nil }
}

public typealias GradientKernelFactory = @Sendable (KernelRequest) throws -> any GradientKernel

extension KernelRegistry {
    /// Registers the backward (and training forward) of `type` on `backend`.
    public func registerGradient(_ type: String, backend: String, _ factory: @escaping GradientKernelFactory) {
        gradientTable.withLock { $0[backend, default: [:]][type] = factory }
    }

    public func gradientFactory(_ type: String, backend: String) -> GradientKernelFactory? {
        gradientTable.withLock { $0[backend]?[type] }
    }

    /// Operator types with a backward on `backend`, sorted.
    public func gradientTypes(backend: String) -> [String] {
        gradientTable.withLock { ($0[backend].map { Array($0.keys) } ?? []).sorted() }
    }
}
