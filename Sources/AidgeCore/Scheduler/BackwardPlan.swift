/// The backward of a recorded plan for one choice of seeded outputs and of inputs that want gradients: the
/// steps on a path from a parameter or such an input to a seeded output, in reverse order, with the gradient of
/// every intermediate value placed in an arena by liveness.
final class BackwardPlan {
    struct Key: Hashable {
        let seeded: [Bool]
        let inputs: Set<Int>
    }

    /// Where a gradient is accumulated.
    enum Target {
        case arena(ArenaView)
        case input(Int)
        /// The gradient cell of the plan's k-th variable Producer.
        case parameter(Int)
    }

    struct GradientStep {
        let forward: Int
        let gradient: any GradientKernel
        let inputGradients: [Target?]
        let outputGradients: [Target?]
        /// Buffers this step writes first: zeroed before it runs.
        let zeroes: [ArenaView]
    }

    let steps: [GradientStep]
    /// For each graph output with a gradient, where that gradient goes.
    let seeds: [(output: Int, target: Target)]
    let arenaByteCount: Int
    let inputs: Set<Int>
    private let arenas = StoragePool()

    init(_ plan: Plan, key: Key) throws {
        inputs = key.inputs
        let parameterOf = Dictionary(
            plan.parameterNodes.enumerated().map { (OutputRef(node: ObjectIdentifier($1), index: 0), $0) },
            uniquingKeysWith: { a, _ in a })
        // Values that depend on something wanting a gradient, through differentiable inputs.
        var requires = Set<ValueID>(key.inputs.map { .graphInput($0) })
        for ref in parameterOf.keys { requires.insert(.output(ref)) }
        func differentiable(_ step: Step, _ i: Int) -> Bool {
            guard let schema = step.node.op.schema, i < step.request.inputs.count,
                let info = step.request.inputs[i]
            else { return false }
            return schema.isDifferentiable(input: i, dtype: info.dtype)
        }
        for step in plan.steps {
            let depends = step.inputValues.enumerated().contains { i, v in
                v.map { requires.contains($0) } ?? false && differentiable(step, i)
            }
            if depends { for v in step.outputValues { requires.insert(v) } }
        }
        // Values that reach a seeded output.
        var reaches = Set<ValueID>()
        for (k, seeded) in key.seeded.enumerated() where seeded {
            if let v = plan.outputValues[k] { reaches.insert(v) }
        }
        for step in plan.steps.reversed() where step.outputValues.contains(where: reaches.contains) {
            for (i, v) in step.inputValues.enumerated() where differentiable(step, i) {
                if let v { reaches.insert(v) }
            }
        }
        let active = requires.intersection(reaches)

        // Reverse order; time 0 is the seeding.
        let participating = plan.steps.indices.reversed().filter { s in
            plan.steps[s].outputValues.contains(where: active.contains)
        }
        var memory = MemoryPlanner()
        var bufferOf: [ValueID: (buffer: Int, info: ValueInfo)] = [:]
        var firstWriter: [ValueID: Int] = [:]
        var seededValues = Set<ValueID>()
        for (k, seeded) in key.seeded.enumerated() where seeded {
            if let v = plan.outputValues[k], active.contains(v) { seededValues.insert(v) }
        }
        var lifetimes: [ValueID: (first: Int, last: Int, info: ValueInfo)] = [:]
        for (t, s) in participating.enumerated() {
            let step = plan.steps[s]
            let time = t + 1
            for (j, v) in step.outputValues.enumerated() where active.contains(v) {
                let info = step.request.outputs[j]
                let first = seededValues.contains(v) ? 0 : (lifetimes[v]?.first ?? time)
                lifetimes[v] = (first, time, info)
            }
            for (i, v) in step.inputValues.enumerated() {
                guard let v, active.contains(v), differentiable(step, i), case .output(let ref) = v,
                    parameterOf[ref] == nil, let info = step.request.inputs[i]
                else { continue }
                if lifetimes[v] == nil {
                    lifetimes[v] = (seededValues.contains(v) ? 0 : time, time, info)
                    if !seededValues.contains(v) { firstWriter[v] = time }
                }
            }
        }
        for (v, life) in lifetimes.sorted(by: { $0.value.first < $1.value.first }) {
            let b = memory.add(bytes: life.info.count * life.info.dtype.byteSize, first: life.first, last: life.last)
            bufferOf[v] = (b, life.info)
        }
        let (offsets, size) = memory.plan()
        arenaByteCount = size
        func view(_ v: ValueID) -> ArenaView? {
            guard let (b, info) = bufferOf[v] else { return nil }
            return ArenaView(byteOffset: offsets[b], dtype: info.dtype, shape: info.shape)
        }
        func target(_ v: ValueID) -> Target? {
            guard active.contains(v) else { return nil }
            switch v {
            case .graphInput(let k): return .input(k)
            case .output(let ref):
                if let p = parameterOf[ref] { return .parameter(p) }
                return view(v).map { .arena($0) }
            }
        }

        var steps: [GradientStep] = []
        for (t, s) in participating.enumerated() {
            let step = plan.steps[s]
            guard let gradient = step.gradient else {
                throw step.gradientError
                    ?? AidgeError.unsupported(
                        "backward: operator \(step.node.type) (node \(step.node.name)) has no backward")
            }
            let zeroes = step.inputValues.compactMap { v -> ArenaView? in
                guard let v, firstWriter[v] == t + 1 else { return nil }
                return view(v)
            }
            steps.append(
                GradientStep(
                    forward: s, gradient: gradient,
                    inputGradients: step.inputValues.enumerated().map { i, v in
                        guard let v, differentiable(step, i) else { return nil }
                        return target(v)
                    },
                    outputGradients: step.outputValues.map(target),
                    zeroes: zeroes))
        }
        self.steps = steps
        seeds = key.seeded.enumerated().compactMap { k, seeded in
            guard seeded, let v = plan.outputValues[k], let t = target(v) else { return nil }
            return (k, t)
        }
    }

    /// Runs backward over `recording` from `outputGradients` (one per graph output; nil for none): accumulates
    /// into the parameters' gradient cells and returns the gradients of the inputs in `inputs` (nil elsewhere).
    func run(_ recording: Recording, outputGradients: [Tensor?]) throws -> [Tensor?] {
        let plan = recording.plan
        let context = recording.context
        let arena = try arenas.take(byteCount: arenaByteCount, on: plan.memory)
        defer { arenas.give(arena) }
        let inputGradients: [Tensor?] = try plan.inputInfos.indices.map { k in
            inputs.contains(k) ? try plan.zeros(ValueInfo(dtype: context.inputs[k].dtype, shape: context.inputs[k].shape)) : nil
        }
        var parameterGradients: [Int: Tensor] = [:]
        // Gradients of host parameters computed on a device: summed there, added to the host cell at the end.
        var hostCells: [(device: Tensor, host: Tensor)] = []
        func resolve(_ target: Target) throws -> Tensor? {
            switch target {
            case .arena(let view): return view.tensor(in: arena)
            case .input(let k): return inputGradients[k]
            case .parameter(let p):
                if let g = parameterGradients[p] { return g }
                let node = plan.parameterNodes[p]
                guard var tensor = node.producedTensor else { return nil }
                if tensor.gradient == nil {
                    tensor = tensor.withGradient()
                    node.setProducedTensor(tensor)
                }
                guard let cell = tensor.gradient else { return nil }
                let g: Tensor
                if let memory = plan.memory, tensor.device == memory.device {
                    g = try cell.accumulator(shape: tensor.shape, dtype: tensor.dtype, on: memory)
                } else if plan.memory != nil {
                    g = try plan.zeros(ValueInfo(dtype: tensor.dtype, shape: tensor.shape))
                    hostCells.append((g, cell.accumulator(shape: tensor.shape, dtype: tensor.dtype)))
                } else {
                    g = cell.accumulator(shape: tensor.shape, dtype: tensor.dtype)
                }
                parameterGradients[p] = g
                return g
            }
        }
        // Seeds: arena buffers start at zero, then every seed is added.
        for (_, target) in seeds {
            if case .arena(let view) = target { try Gradients.zero(view.tensor(in: arena)) }
        }
        for (k, target) in seeds {
            guard let g = outputGradients[k], let dst = try resolve(target) else { continue }
            try Gradients.accumulate(g, into: dst)
        }
        for gs in steps {
            let step = plan.steps[gs.forward]
            for view in gs.zeroes { try Gradients.zero(view.tensor(in: arena)) }
            let pass = BackwardPass(
                inputs: step.inputs.map { $0.map(context.resolve) },
                outputs: step.outputs.map(context.resolve),
                saved: step.saved.map { $0.tensor(in: context.arena) },
                outputGradients: try gs.outputGradients.map { try $0.flatMap(resolve) },
                inputGradients: try gs.inputGradients.map { try $0.flatMap(resolve) },
                training: plan.mode.training)
            do {
                try gs.gradient.backward(pass)
            } catch {
                throw error.aidgePrefixed("backward of \(step.node.type) node \(step.node.name)")
            }
        }
        for (device, host) in hostCells { try Gradients.accumulate(device, into: host) }
        return inputGradients
    }
}
