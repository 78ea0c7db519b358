/// Runs a graph with static plans: one plan per set of input shapes and mode, built on first use and cached.
///
/// Training (Aidge's model): a recorded `forward` keeps what backward needs; a loss writes the gradient of the
/// outputs; `backward()` runs the backward kernels in reverse order, accumulating into the parameters'
/// gradient cells; an optimizer updates the Producers.
public final class Scheduler {
    public let graph: GraphView
    public let backend: String
    /// Largest output (in elements) that planning evaluates ahead of time when all inputs of a node are known.
    public var foldLimit = 1 << 16
    /// Whether `forward` records for backward even when the graph is in evaluation mode.
    public var recordsGradients = false
    /// The last `forward`'s record, which `backward()` uses (an unrecorded one is replayed recorded).
    public private(set) var lastRecording: Recording?
    private var lastInputs: [Tensor] = []
    /// Set once parameters may have changed (a recorded or training run): plans read them at each run.
    private var parametersVary = false
    private struct PlanKey: Hashable {
        let shapes: [[Int]]
        var dtypes: [DType] = []
        let mode: PlanMode
        /// The bytes of the inputs in `valueInputs`, whose values the plan was built for.
        var values: [[UInt8]] = []
    }
    /// How a run goes: one plan, or two parts when a node's outputs depend on values the graph computes.
    private enum Execution {
        case plan(Plan)
        case split(SplitRun)
    }
    private var plans: [PlanKey: Execution] = [:]
    /// Runs the graph node by node when it holds sequences or optionals (built on first use).
    private var valueRunner: ValueRunner?
    /// Graph inputs whose values decide shapes (axes, a target shape, pads fed as inputs): empty until planning
    /// finds such a value unknown; from then on plans are built, and cached, per value of these inputs.
    private var valueInputs: [Int] = []
    /// Largest graph input (in elements) taken as shape-deciding when planning needs input values.
    private static let valueInputLimit = 64
    /// Most plans kept per value of the shape-deciding inputs.
    private static let planLimit = 32

    /// Whether inputs are checked against the graph's declared dtypes and shapes (a subgraph's inputs that
    /// come from its enclosing graph declare none).
    private let checksDeclaredInputs: Bool

    public init(_ graph: GraphView, backend: String = "cpu") {
        self.graph = graph
        self.backend = backend
        checksDeclaredInputs = true
    }

    /// A scheduler for a control flow operator's subgraph, planned for whatever dtypes it is fed.
    init(subgraph: Subgraph, backend: String) {
        graph = subgraph.graph
        self.backend = backend
        checksDeclaredInputs = false
    }

    /// A scheduler for a part of a split graph, planned per value of `valueInputs` from the start.
    init(part: GraphView, backend: String, valueInputs: [Int]) {
        graph = part
        self.backend = backend
        checksDeclaredInputs = false
        self.valueInputs = valueInputs
    }
    /// The mode `forward` uses: the graph's training flag, recording when training or asked to.
    public var currentMode: PlanMode {
        let recording = recordsGradients || graph.isTraining
        return PlanMode(
            training: graph.isTraining, recording: recording,
            variableParameters: parametersVary || recording || graph.isTraining)
    }

    /// Runs the graph on `inputs` (one per graph input, in order) and returns its outputs. A recorded run (see
    /// `currentMode`) is kept for `backward()`; its outputs carry gradient cells that losses write.
    public func forward(_ inputs: [Tensor]) throws -> [Tensor] {
        if graph.holdsContainers {
            return try zip(graph.outputs, try run(inputs.map(Value.tensor))).map { output, value in
                try value.tensor("output '\(output.name)'")
            }
        }
        let recording = try forward(inputs, mode: currentMode)
        lastRecording = recording
        lastInputs = recording.isRecorded ? [] : inputs
        return recording.outputs
    }

    /// Runs the graph on `inputs`, which may be sequences or optionals where the graph declares them, and returns
    /// its outputs. A graph that holds containers runs node by node (`ValueRunner`), in inference mode only.
    public func run(_ inputs: [Value]) throws -> [Value] {
        guard graph.holdsContainers else {
            let tensors = try inputs.enumerated().map { k, v in
                try v.tensor("input \(k < graph.inputs.count ? "'\(graph.inputs[k].name)'" : "\(k)")")
            }
            return try forward(tensors).map(Value.tensor)
        }
        guard !graph.isTraining, !recordsGradients else {
            throw AidgeError.unsupported("training a graph that holds sequences or optionals is not supported")
        }
        guard DeviceMemories.shared.memory(backend: backend) == nil else {
            throw AidgeError.unsupported("a graph that holds sequences or optionals runs on the host backends only")
        }
        let runner = try valueRunner ?? ValueRunner(graph, backend: backend)
        valueRunner = runner
        return try runner.run(try checked(inputs))
    }

    /// Runs the graph in `mode` and returns the run's record (its outputs, and what backward needs).
    public func forward(_ inputs: [Tensor], mode: PlanMode) throws -> Recording {
        if graph.holdsContainers {
            throw AidgeError.unsupported(
                "a graph that holds sequences or optionals runs with run(values), in inference mode only")
        }
        let inputs = try checked(inputs)
        if mode.training || mode.recording { parametersVary = true }
        switch try execution(for: inputs, mode: mode) {
        case .plan(let plan): return try plan.run(inputs)
        case .split(let split): return try split.run(inputs)
        }
    }

    /// Back-propagates the last recorded forward from the gradients that a loss wrote on its outputs
    /// (Aidge's `backward()`), accumulating into the parameters' gradients.
    ///
    /// After a forward that did not record (evaluation mode), the same inputs are run again recording, and from
    /// then on every forward records (`recordsGradients` becomes true): Aidge's training loop needs no setup.
    public func backward() throws {
        guard var recording = lastRecording else {
            throw AidgeError.invalidArgument("backward() needs a forward first")
        }
        let seeds = recording.outputs.map { $0.gradient?.tensor }
        guard seeds.contains(where: { $0 != nil }) else {
            throw AidgeError.invalidArgument(
                "backward() needs the gradient of an output: compute a loss on the forward's outputs first")
        }
        if !recording.isRecorded {
            recordsGradients = true
            recording = try forward(lastInputs, mode: currentMode)
            lastRecording = recording
            lastInputs = []
        }
        _ = try backward(recording, outputGradients: seeds)
    }

    /// Back-propagates `recording` from `outputGradients` (one per graph output, nil for none). Accumulates into
    /// the parameters' gradient cells and returns the gradient of each graph input listed in `inputs`.
    public func backward(
        _ recording: Recording, outputGradients: [Tensor?], inputs: Set<Int> = []
    ) throws -> [Tensor?] {
        guard recording.isRecorded else {
            throw AidgeError.invalidArgument("backward needs a forward that recorded (training or recording mode)")
        }
        let plan = recording.plan
        guard outputGradients.count == plan.outputInfos.count else {
            throw AidgeError.invalidArgument(
                "backward takes one gradient per output (\(plan.outputInfos.count)), got \(outputGradients.count)")
        }
        for (k, (g, info)) in zip(outputGradients, plan.outputInfos).enumerated() {
            guard let g else { continue }
            guard g.shape == info.shape, g.dtype == info.dtype else {
                throw AidgeError.shapeMismatch(
                    "the gradient of output \(k) has shape \(ShapeUtil.text(g.shape)) (\(g.dtype)); the output has "
                        + "shape \(ShapeUtil.text(info.shape)) (\(info.dtype))")
            }
        }
        if let bad = inputs.first(where: { !(0..<plan.inputInfos.count).contains($0) }) {
            throw AidgeError.invalidArgument("the graph has \(plan.inputInfos.count) inputs, no input \(bad)")
        }
        let key = BackwardPlan.Key(seeded: outputGradients.map { $0 != nil }, inputs: inputs)
        let backwardPlan: BackwardPlan
        if let cached = plan.backwardPlans[key] {
            backwardPlan = cached
        } else {
            backwardPlan = try BackwardPlan(plan, key: key)
            plan.backwardPlans[key] = backwardPlan
        }
        return try backwardPlan.run(recording, outputGradients: outputGradients)
    }

    /// Runs the graph `runs` times on `inputs` and returns each kernel call's mean time, in execution order.
    public func profile(_ inputs: [Tensor], runs: Int) throws -> [(node: Node, seconds: Double)] {
        let inputs = try checked(inputs)
        guard case .plan(let plan) = try execution(for: inputs, mode: currentMode) else {
            throw AidgeError.unsupported("profiling a graph whose shapes depend on the values it computes is not supported")
        }
        var total = [Double](repeating: 0, count: plan.steps.count)
        try total.withUnsafeMutableBufferPointer { buffer in
            for _ in 0..<max(runs, 1) { _ = try plan.run(inputs, stepSeconds: buffer) }
        }
        return zip(plan.steps, total).map { ($0.node, $1 / Double(max(runs, 1))) }
    }

    /// The dtypes and shapes of the outputs on inputs like these, from the plan a run would use (nil when the
    /// graph runs split or node by node, where only running tells).
    func plannedOutputs(for inputs: [Tensor]) throws -> [ValueInfo]? {
        guard !graph.holdsContainers, case .plan(let plan) = try execution(for: try checked(inputs), mode: .inference)
        else { return nil }
        return plan.outputInfos
    }

    /// The plan for these input shapes and mode (built and cached on first use).
    public func plan(for shapes: [[Int]], mode: PlanMode = .inference) throws -> Plan {
        let key = PlanKey(shapes: shapes, mode: mode)
        if case .plan(let plan)? = plans[key] { return plan }
        do {
            let plan = try PlanBuilder(graph: graph, backend: backend, foldLimit: foldLimit, mode: mode).build(shapes)
            plans[key] = .plan(plan)
            return plan
        } catch let stop as PlanBuilder.ValuesNeeded {
            throw stop.error
        }
    }

    /// How to run these inputs: a plan by their shapes, and also by the values of the shape-deciding ones once
    /// planning from shapes alone has failed for want of such a value; or, when a node needs values the graph
    /// computes itself, a split run.
    private func execution(for inputs: [Tensor], mode: PlanMode) throws -> Execution {
        let shapes = inputs.map(\.shape)
        let dtypes = inputs.map(\.dtype)
        let builder = PlanBuilder(graph: graph, backend: backend, foldLimit: foldLimit, mode: mode)
        func infos(_ known: [Int: Tensor]) -> [ValueInfo] {
            inputs.indices.map { k in known[k].map { ValueInfo($0) } ?? ValueInfo(dtype: dtypes[k], shape: shapes[k]) }
        }
        if valueInputs.isEmpty {
            let key = PlanKey(shapes: shapes, dtypes: dtypes, mode: mode)
            if let known = plans[key] { return known }
            do {
                let plan = try builder.build(infos: infos([:]))
                plans[key] = .plan(plan)
                return .plan(plan)
            } catch let stop as PlanBuilder.ValuesNeeded {
                let small = inputs.indices.filter {
                    inputs[$0].rank <= 1 && inputs[$0].count <= Self.valueInputLimit
                }
                let direct = graphInputs(readBy: stop)
                if small.isEmpty && direct.isEmpty { return try split(at: stop, key: key, mode: mode) }
                valueInputs = Array(Set(small + direct)).sorted()
            }
        }
        let values = try valueInputs.map { k in
            let host = try inputs[k].onHost()
            return Array(UnsafeRawBufferPointer(start: host.rawPointer, count: host.byteCount))
        }
        let key = PlanKey(shapes: shapes, dtypes: dtypes, mode: mode, values: values)
        if let known = plans[key] { return known }
        // Plans per value must not grow without bound when such an input varies from run to run.
        if plans.count >= Self.planLimit { plans = [:] }
        var known: [Int: Tensor] = [:]
        for k in valueInputs { known[k] = try inputs[k].copy(to: .cpu) }
        do {
            let plan = try builder.build(infos: infos(known))
            plans[key] = .plan(plan)
            return .plan(plan)
        } catch let stop as PlanBuilder.ValuesNeeded {
            // A node that reads graph inputs directly is planned per value of those inputs too.
            let direct = graphInputs(readBy: stop).filter { !valueInputs.contains($0) }
            guard direct.isEmpty else {
                valueInputs = (valueInputs + direct).sorted()
                plans = [:]
                return try execution(for: inputs, mode: mode)
            }
            return try split(at: stop, key: key, mode: mode)
        }
    }

    /// The graph inputs that the node where planning stopped reads.
    private func graphInputs(readBy stop: PlanBuilder.ValuesNeeded) -> [Int] {
        graph.inputs.indices.filter { k in graph.inputs[k].consumers.contains { ObjectIdentifier($0.node) == stop.node } }
    }

    /// Splits the graph before the node that needs values computed by the nodes before it (see `SplitRun`).
    private func split(at stop: PlanBuilder.ValuesNeeded, key: PlanKey, mode: PlanMode) throws -> Execution {
        guard let node = graph.nodes.first(where: { ObjectIdentifier($0) == stop.node }),
            node.inputs.contains(where: { source in
                guard let source else { return false }
                return graph.contains(source.node) && source.node.type != "Producer"
            }),
            !mode.training, !mode.recording, DeviceMemories.shared.memory(backend: backend) == nil
        else { throw stop.error }
        let execution = Execution.split(try SplitRun(graph, at: node, backend: backend))
        plans[key] = execution
        return execution
    }

    /// Drops cached plans and the last recording (after the graph or its weights were edited).
    public func resetPlans() {
        plans = [:]
        valueRunner = nil
        valueInputs = []
        lastRecording = nil
        lastInputs = []
    }

    /// Checks the kinds of `inputs` against the declared ones, and their tensors as `checked` does.
    private func checked(_ inputs: [Value]) throws -> [Value] {
        guard inputs.count == graph.inputs.count else {
            throw AidgeError.invalidArgument(
                "the graph takes \(graph.inputs.count) inputs (\(graph.inputs.map(\.name).joined(separator: ", "))), "
                    + "got \(inputs.count)")
        }
        return try zip(graph.inputs, inputs).map { declared, value in
            guard checksDeclaredInputs else { return value }
            switch (declared.kind, value) {
            case (.tensor, .tensor(let t)), (.optional(.tensor), .tensor(let t)):
                return .tensor(try checked(t, declared))
            case (.sequence, .sequence(let s)), (.optional(.sequence), .sequence(let s)):
                guard s.dtype == declared.dtype else {
                    throw AidgeError.unsupportedType(
                        "input '\(declared.name)' must be a sequence of \(declared.dtype) tensors, got \(s.dtype) ones")
                }
                return value
            case (.optional, .absent):
                return value
            default:
                throw AidgeError.invalidArgument(
                    "input '\(declared.name)' is declared as \(declared.kind), got \(value.summary)")
            }
        }
    }

    /// Checks count, dtypes and declared shapes of `inputs`; returns them contiguous.
    private func checked(_ inputs: [Tensor]) throws -> [Tensor] {
        guard inputs.count == graph.inputs.count else {
            throw AidgeError.invalidArgument(
                "the graph takes \(graph.inputs.count) inputs (\(graph.inputs.map(\.name).joined(separator: ", "))), "
                    + "got \(inputs.count)")
        }
        return try zip(graph.inputs, inputs).map { try checked($1, $0) }
    }

    /// Checks the device, dtype and declared shape of the tensor fed to `declared`; returns it contiguous.
    private func checked(_ tensor: Tensor, _ declared: GraphInput) throws -> Tensor {
        let memory = DeviceMemories.shared.memory(backend: backend)
        let device = memory?.device ?? .cpu
        guard tensor.isOnHost || tensor.device == device else {
            throw AidgeError.unsupported(
                "input '\(declared.name)' is on \(tensor.device); the \(backend) backend runs on \(device)"
                    + (device == .cpu ? ": run the graph on the CUDA backend, or copy the input to the host" : ""))
        }
        /// Where the kernels read it: contiguous, on the backend's device.
        func placed() throws -> Tensor { tensor.device == device ? try tensor.contiguousOnDevice() : try tensor.copy(to: device) }
        guard checksDeclaredInputs else { return try placed() }
        guard tensor.dtype == declared.dtype else {
            throw AidgeError.unsupportedType(
                "input '\(declared.name)' must be \(declared.dtype), got \(tensor.dtype)")
        }
        if let dims = declared.shape {
            let matches = dims.count == tensor.rank && zip(dims, tensor.shape).allSatisfy { dim, n in
                if case .fixed(let f) = dim { return f == n || f <= 0 }
                return true
            }
            guard matches else {
                throw AidgeError.shapeMismatch(
                    "input '\(declared.name)' has shape \(ShapeUtil.text(tensor.shape)), the model expects "
                        + dims.map(\.description).joined(separator: "x"))
            }
        }
        return try placed()
    }
}
