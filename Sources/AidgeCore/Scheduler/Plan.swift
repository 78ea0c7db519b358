/// A value of a plan: the output of a node, or a graph input.
enum ValueID: Hashable {
    case output(OutputRef)
    case graphInput(Int)
}

/// A contiguous tensor at a fixed place of an arena.
struct ArenaView {
    let offset: Int  // in elements
    let dtype: DType
    let shape: [Int]
    let strides: [Int]

    init(byteOffset: Int, dtype: DType, shape: [Int]) {
        offset = byteOffset / dtype.byteSize
        self.dtype = dtype
        self.shape = shape
        strides = ShapeUtil.contiguousStrides(shape)
    }

    func tensor(in arena: Storage) -> Tensor {
        Tensor(unchecked: arena, dtype: dtype, shape: shape, strides: strides, offset: offset)
    }
}

/// Where a kernel finds one of its tensors when a plan runs.
enum Slot {
    case constant(Tensor)
    /// The k-th variable Producer of the plan, read when a run starts.
    case parameter(Int)
    case graphInput(Int)
    case arena(ArenaView)
    case graphOutput(Int)
}

/// One kernel call of a plan.
struct Step {
    let node: Node
    /// What the kernels were built for: the operator and the inputs' and outputs' dtypes and shapes.
    let request: KernelRequest
    let kernel: any Kernel
    /// Whether the output is a window of the input's buffer (`OperatorSchema.window`): the forward has nothing
    /// to compute.
    let elided: Bool
    /// The node's backward and training forward, in plans that record or train (nil: the operator has none).
    let gradient: (any GradientKernel)?
    /// Why building `gradient` failed, reported when backward needs it.
    let gradientError: AidgeError?
    let inputs: [Slot?]
    let outputs: [Slot]
    let saved: [ArenaView]
    let inputValues: [ValueID?]
    let outputValues: [ValueID]
}

/// How a plan runs its operators.
public struct PlanMode: Hashable, Sendable {
    /// BatchNormalization uses batch statistics (and updates its running ones), Dropout drops.
    public var training: Bool
    /// The forward keeps what backward needs.
    public var recording: Bool
    /// Variable Producers (weights, running statistics) are read at every run instead of being planned as
    /// constants: set whenever they may change between runs.
    public var variableParameters: Bool

    public init(training: Bool = false, recording: Bool = false, variableParameters: Bool? = nil) {
        self.training = training
        self.recording = recording
        self.variableParameters = variableParameters ?? (training || recording)
    }

    public static let inference = PlanMode()
}

/// A static plan for one set of input shapes: kernels in topological order, intermediate tensors placed in one
/// arena by liveness. Running it allocates only the returned outputs (and, when recording, the arena that the
/// recording keeps).
public final class Plan {
    let steps: [Step]
    let mode: PlanMode
    let arenaByteCount: Int
    /// The arena of non-recording runs (allocated once).
    let sharedArena: Storage?
    let inputInfos: [ValueInfo]
    let outputSources: [Slot]
    let outputValues: [ValueID?]
    let outputInfos: [ValueInfo]
    /// Variable Producers, in `Slot.parameter` order.
    let parameterNodes: [Node]
    /// The device memory the kernels use (nil: the host).
    let memory: (any DeviceMemory)?
    let arenas = StoragePool()
    var backwardPlans: [BackwardPlan.Key: BackwardPlan] = [:]

    init(
        steps: [Step], mode: PlanMode, arenaByteCount: Int, inputInfos: [ValueInfo], outputSources: [Slot],
        outputValues: [ValueID?], outputInfos: [ValueInfo], parameterNodes: [Node], memory: (any DeviceMemory)?
    ) throws {
        self.steps = steps
        self.mode = mode
        self.arenaByteCount = arenaByteCount
        self.memory = memory
        self.sharedArena = mode.recording ? nil : try Plan.allocate(arenaByteCount, on: memory)
        self.inputInfos = inputInfos
        self.outputSources = outputSources
        self.outputValues = outputValues
        self.outputInfos = outputInfos
        self.parameterNodes = parameterNodes
    }

    /// Bytes of the arena that holds every intermediate tensor.
    public var arenaBytes: Int { arenaByteCount }
    /// Number of kernel calls per run.
    public var stepCount: Int { steps.count }
    /// Node names in execution order.
    public var order: [String] { steps.map(\.node.name) }
    /// Shapes and dtypes of the outputs.
    public var outputs: [ValueInfo] { outputInfos }

    /// A storage of `byteCount` bytes on `memory`'s device, or on the host.
    static func allocate(_ byteCount: Int, on memory: (any DeviceMemory)?) throws -> Storage {
        try memory?.allocate(byteCount: byteCount) ?? Storage(byteCount: byteCount)
    }

    /// A new zero-filled contiguous tensor where the kernels run.
    func zeros(_ info: ValueInfo) throws -> Tensor {
        let t = try fresh(info)
        if memory != nil { try Gradients.zero(t) }
        return t
    }

    /// A new contiguous tensor where the kernels run (zero-filled on the host, undefined on a device).
    func fresh(_ info: ValueInfo) throws -> Tensor {
        guard let memory else { return Tensor(zeros: info.shape, dtype: info.dtype) }
        return try Tensor(
            storage: memory.allocate(byteCount: info.count * info.dtype.byteSize), dtype: info.dtype, shape: info.shape)
    }

    /// The current tensors of the variable Producers (contiguous, where the kernels run), and the ones they were
    /// copied from (strided, or elsewhere), which a training run writes back.
    func currentParameters() throws -> (tensors: [Tensor], strided: [(copy: Tensor, original: Tensor)]) {
        var strided: [(Tensor, Tensor)] = []
        let tensors = try parameterNodes.map { node in
            guard let t = node.producedTensor else {
                throw AidgeError.invalidModel("Producer \(node.name) holds no tensor")
            }
            if let memory {
                if t.device == memory.device && t.isContiguous { return t }
                let copy = try t.copy(to: memory.device)
                strided.append((copy, t))
                return copy
            }
            guard t.isOnHost else {
                throw AidgeError.unsupported("Producer \(node.name) is on \(t.device): a host backend cannot read it")
            }
            if t.isContiguous { return t }
            let copy = t.copy()
            strided.append((copy, t))
            return copy
        }
        return (tensors, strided)
    }

    /// Runs every step on `inputs` (contiguous, already checked). With `stepSeconds` (one entry per step), each
    /// step's wall time is added to its entry. A recording plan returns the record that `backward` needs.
    func run(_ inputs: [Tensor], stepSeconds: UnsafeMutableBufferPointer<Double>? = nil) throws -> Recording {
        let arena = try sharedArena ?? arenas.take(byteCount: arenaByteCount, on: memory)
        let (parameters, strided) = try currentParameters()
        let fresh = try outputInfos.map(fresh)
        let context = RunContext(inputs: inputs, parameters: parameters, outputs: fresh, arena: arena)
        let trainingForward = mode.training || mode.recording
        for (k, step) in steps.enumerated() where !step.elided {
            let ins = step.inputs.map { $0.map(context.resolve) }
            let outs = step.outputs.map(context.resolve)
            let start = stepSeconds == nil ? 0 : Clock.seconds()
            do {
                if trainingForward, let gradient = step.gradient, gradient.hasTrainingForward {
                    try gradient.forward(ins, outs, saved: step.saved.map { $0.tensor(in: arena) }, training: mode.training)
                } else {
                    try step.kernel.run(ins, outs)
                }
            } catch {
                throw error.aidgePrefixed("\(step.node.type) node \(step.node.name)")
            }
            if let stepSeconds { stepSeconds[k] += Clock.seconds() - start }
        }
        // A training run updates state (running statistics) in place: copied Producers get their copy back.
        if mode.training {
            for (copy, original) in strided {
                if let memory { try memory.copy(copy, into: original) } else { copyElements(from: copy, to: original) }
            }
        }
        let outputs = try outputSources.enumerated().map { i, slot in
            if case .graphOutput(let j) = slot, j == i { return fresh[i] }
            let value = context.resolve(slot)
            return try value.copy(to: value.device)
        }
        return Recording(plan: self, context: context, outputs: outputs)
    }
}

/// The tensors of one run: what its slots resolve to.
struct RunContext {
    let inputs: [Tensor]
    let parameters: [Tensor]
    let outputs: [Tensor]
    let arena: Storage

    func resolve(_ slot: Slot) -> Tensor {
        switch slot {
        case .constant(let t): return t
        case .parameter(let k): return parameters[k]
        case .graphInput(let i): return inputs[i]
        case .arena(let view): return view.tensor(in: arena)
        case .graphOutput(let i): return outputs[i]
        }
    }
}

/// What a forward run leaves for backward: its arena (activations and saved state), inputs, parameters and
/// outputs. Each recorded forward has its own, so several forwards can be back-propagated in any order.
public final class Recording {
    let plan: Plan
    let context: RunContext
    /// The graph's outputs of this run, each with a gradient cell for losses to write.
    public let outputs: [Tensor]

    init(plan: Plan, context: RunContext, outputs: [Tensor]) {
        self.plan = plan
        self.context = context
        self.outputs = outputs.map { $0.withGradient() }
    }

    /// Whether this run kept what backward needs.
    public var isRecorded: Bool { plan.mode.recording }

    deinit {
        if plan.sharedArena == nil { plan.arenas.give(context.arena) }
    }
}
