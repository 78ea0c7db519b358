/// Builds a `Plan`: infers every value's dtype and shape, evaluates ahead of time what depends only on known
/// values (shape arithmetic), places intermediate tensors in an arena, and prepares each kernel.
struct PlanBuilder {
    let graph: GraphView
    let backend: String
    let foldLimit: Int
    let mode: PlanMode

    private struct Pending {
        let node: Node
        let request: KernelRequest
        let inputs: [Value?]
        let outputs: [OutputRef]
    }

    private typealias Value = ValueID

    /// Plans for graph inputs of these shapes; `known` gives the values of those inputs that decide shapes.
    func build(_ shapes: [[Int]], known: [Int: Tensor] = [:]) throws -> Plan {
        let infos = graph.inputs.enumerated().map { k, input in
            known[k].map { ValueInfo($0) } ?? ValueInfo(dtype: input.dtype, shape: k < shapes.count ? shapes[k] : [])
        }
        return try build(infos: infos)
    }

    /// Plans for graph inputs of these dtypes and shapes (and values, where known).
    func build(infos inputInfos: [ValueInfo]) throws -> Plan {
        try PlanningContext.$backend.withValue(backend) { try plan(inputInfos) }
    }

    private func plan(_ inputInfos: [ValueInfo]) throws -> Plan {
        let deviceMemory = DeviceMemories.shared.memory(backend: backend)
        // Values known ahead of time are computed on the host, whatever the backend.
        let foldBackend = deviceMemory == nil ? backend : "cpu"
        let order = try graph.topologicalOrder()
        var inputOf: [OutputRef: Int] = [:]  // (consumer node, input index) -> graph input
        guard inputInfos.count == graph.inputs.count else {
            throw AidgeError.invalidArgument("the graph takes \(graph.inputs.count) inputs, got \(inputInfos.count)")
        }
        for (k, input) in graph.inputs.enumerated() {
            for c in input.consumers { inputOf[OutputRef(node: ObjectIdentifier(c.node), index: c.index)] = k }
        }

        var infos: [OutputRef: ValueInfo] = [:]
        var pending: [Pending] = []
        let variable = mode.variableParameters ? graph.variableProducers() : []
        var parameterNodes: [Node] = []
        var parameterIndex: [OutputRef: Int] = [:]
        func producerInfo(_ node: Node) {
            guard let tensor = node.producedTensor else { return }
            let ref = OutputRef(node: ObjectIdentifier(node), index: 0)
            guard infos[ref] == nil else { return }
            // A tensor on a device is read where it is, at each run (never folded on the host).
            if variable.contains(ObjectIdentifier(node)) || !tensor.isOnHost {
                infos[ref] = ValueInfo(dtype: tensor.dtype, shape: tensor.shape)
                parameterIndex[ref] = parameterNodes.count
                parameterNodes.append(node)
            } else {
                infos[ref] = ValueInfo(tensor.contiguous())
            }
        }
        for node in order {
            let id = ObjectIdentifier(node)
            if node.producedTensor != nil {
                producerInfo(node)
                continue
            }
            for source in node.inputs.compactMap({ $0 }) where source.node.type == "Producer" {
                producerInfo(source.node)
            }
            var inputs: [Value?] = []
            for (i, source) in node.inputs.enumerated() {
                if let source, graph.contains(source.node) || source.node.type == "Producer" {
                    inputs.append(.output(OutputRef(node: ObjectIdentifier(source.node), index: source.index)))
                } else if let k = inputOf[OutputRef(node: id, index: i)] {
                    inputs.append(.graphInput(k))
                } else {
                    inputs.append(nil)
                }
            }
            func info(_ v: Value?) -> ValueInfo? {
                switch v {
                case .output(let ref): return infos[ref]
                case .graphInput(let k): return inputInfos[k]
                case nil: return nil
                }
            }
            if let producerMissing = inputs.firstIndex(where: { v in
                if case .output(let ref) = v { return infos[ref] == nil }
                return false
            }) {
                throw AidgeError.invalidModel(
                    "input \(producerMissing) of node \(node.name) comes from a node outside the graph")
            }
            let inputInfo = inputs.map(info)
            guard let schema = node.op.schema else {
                throw AidgeError.unsupported("operator \(node.type) (node \(node.name)) is not supported")
            }
            var outputs: [ValueInfo]
            do {
                outputs = try schema.outputs(node.op.attributes, inputInfo)
            } catch AidgeError.unknownValue(let message)
                where !inputInfo.allSatisfy({ $0 == nil || $0?.value != nil })
            {
                throw ValuesNeeded(
                    node: id, error: AidgeError.unknownValue(message).aidgePrefixed("\(node.type) node \(node.name)"))
            } catch {
                throw error.aidgePrefixed("\(node.type) node \(node.name)")
            }
            let refs = (0..<node.outputCount).map { OutputRef(node: id, index: $0) }
            let request = KernelRequest(op: node.op, nodeName: node.name, inputs: inputInfo, outputs: outputs)
            let known = inputInfo.allSatisfy { $0 == nil || $0?.value != nil }
            if outputs.allSatisfy({ $0.value != nil }) {
                // Inference computed the values (Shape, Size, ...).
            } else if known && schema.isDeterministic && !(mode.training && schema.hasTrainingForm)
                && outputs.reduce(0, { $0 + $1.count }) <= foldLimit
            {
                let kernel = try KernelRegistry.shared.makeKernel(request, backend: foldBackend)
                let results = outputs.map { Tensor(zeros: $0.shape, dtype: $0.dtype) }
                do {
                    try kernel.run(inputInfo.map { $0?.value }, results)
                } catch {
                    throw error.aidgePrefixed("\(node.type) node \(node.name)")
                }
                for i in outputs.indices { outputs[i].value = results[i] }
            } else {
                pending.append(Pending(node: node, request: request, inputs: inputs, outputs: refs))
            }
            for (ref, out) in zip(refs, outputs) { infos[ref] = out }
        }

        // Graph outputs: fresh tensors when a step computes them, else a copy of what is already known.
        var outputSlotOf: [OutputRef: Int] = [:]
        var outputInfos: [ValueInfo] = []
        var outputSources: [Slot] = []
        var outputValues: [ValueID?] = []
        for (k, output) in graph.outputs.enumerated() {
            let ref = OutputRef(node: ObjectIdentifier(output.node), index: output.index)
            guard let info = infos[ref] else {
                throw AidgeError.invalidModel("graph output '\(output.name)' is not computed by any node of the graph")
            }
            outputInfos.append(ValueInfo(dtype: info.dtype, shape: info.shape))
            outputValues.append(info.value == nil ? .output(ref) : nil)
            if let value = info.value {
                outputSources.append(.constant(try deviceMemory.map { try value.copy(to: $0.device) } ?? value))
            } else if let p = parameterIndex[ref] {
                outputSources.append(.parameter(p))
            } else if let first = outputSlotOf[ref] {
                outputSources.append(.graphOutput(first))  // the same value returned twice: a copy
            } else {
                outputSlotOf[ref] = k
                outputSources.append(.graphOutput(k))
            }
        }

        // Training halves of the kernels, where the mode needs them.
        var gradients: [(any GradientKernel)?] = []
        var gradientErrors: [AidgeError?] = []
        for p in pending {
            var gradient: (any GradientKernel)?
            var failure: AidgeError?
            if mode.training || mode.recording, let factory = KernelRegistry.shared.gradientFactory(p.node.type, backend: backend) {
                do {
                    gradient = try factory(p.request)
                } catch {
                    // Reported by backward, or here when training mode needs the operator's training form.
                    failure = error.aidgePrefixed("backward of \(p.node.type) node \(p.node.name)")
                }
            }
            // An operator whose training form differs (Dropout, BatchNormalization) must have it in training mode:
            // its inference kernel would silently compute something else.
            if mode.training, gradient == nil, p.node.op.schema?.hasTrainingForm ?? false {
                throw failure ?? AidgeError.unsupported(
                    "\(p.node.type) (node \(p.node.name)) has no training form on the \(backend) backend")
            }
            gradients.append(gradient)
            gradientErrors.append(failure)
        }

        // Liveness of the intermediate tensors; a recording keeps what backward reads until the run ends.
        let end = pending.count
        var lastUse: [OutputRef: Int] = [:]
        for (s, p) in pending.enumerated() {
            for case .output(let ref)? in p.inputs { lastUse[ref] = s }
        }
        if mode.recording {
            for (p, gradient) in zip(pending, gradients) {
                guard let gradient else { continue }
                for (i, v) in p.inputs.enumerated() where gradient.readsInput(i) {
                    if case .output(let ref)? = v { lastUse[ref] = end }
                }
                for (i, ref) in p.outputs.enumerated() where gradient.readsOutput(i) { lastUse[ref] = end }
            }
        }
        var memory = MemoryPlanner()
        var bufferOf: [OutputRef: Int] = [:]
        var windowOffset: [OutputRef: Int] = [:]  // elements into the buffer, for windows of other values
        var elided = [Bool](repeating: false, count: pending.count)
        var savedBuffers: [[(buffer: Int, info: ValueInfo)]] = []
        for (s, p) in pending.enumerated() {
            for ref in p.outputs where outputSlotOf[ref] == nil {
                guard let info = infos[ref] else { continue }
                // A window of an arena tensor lies in its buffer, which then lives as long as either is read.
                if ref.index == 0, let window = p.node.op.schema?.window, case .output(let source)? = p.inputs.first,
                    let buffer = bufferOf[source], let sourceInfo = infos[source], sourceInfo.dtype == info.dtype,
                    let start = window(p.node.op.attributes, p.request.inputs), start >= 0,
                    start + info.count <= sourceInfo.count
                {
                    bufferOf[ref] = buffer
                    windowOffset[ref] = (windowOffset[source] ?? 0) + start
                    memory.extend(buffer, through: lastUse[ref] ?? s)
                    elided[s] = p.outputs.count == 1
                    continue
                }
                bufferOf[ref] = memory.add(bytes: info.count * info.dtype.byteSize, first: s, last: lastUse[ref] ?? s)
            }
            savedBuffers.append((gradients[s]?.savedInfos ?? []).map { info in
                (memory.add(bytes: info.count * info.dtype.byteSize, first: s, last: end), info)
            })
        }
        let (offsets, size) = memory.plan()

        // Constants live where the kernels run: uploaded once per plan.
        var placed: [OutputRef: Tensor] = [:]
        func constant(_ ref: OutputRef, _ value: Tensor) throws -> Tensor {
            guard let deviceMemory else { return value }
            if let known = placed[ref] { return known }
            let copy = try value.copy(to: deviceMemory.device)
            placed[ref] = copy
            return copy
        }
        func slot(_ ref: OutputRef) throws -> Slot {
            guard let info = infos[ref] else { throw AidgeError.invalidModel("a value is used before it is computed") }
            if let value = info.value { return .constant(try constant(ref, value)) }
            if let k = parameterIndex[ref] { return .parameter(k) }
            if let k = outputSlotOf[ref] { return .graphOutput(k) }
            guard let b = bufferOf[ref] else { throw AidgeError.invalidModel("a value has no buffer") }
            let byteOffset = offsets[b] + (windowOffset[ref] ?? 0) * info.dtype.byteSize
            return .arena(ArenaView(byteOffset: byteOffset, dtype: info.dtype, shape: info.shape))
        }

        var steps: [Step] = []
        steps.reserveCapacity(pending.count)
        for (s, p) in pending.enumerated() {
            let kernel = try KernelRegistry.shared.makeKernel(p.request, backend: backend)
            let inputs: [Slot?] = try p.inputs.map { v in
                switch v {
                case .output(let ref): return try slot(ref)
                case .graphInput(let k): return .graphInput(k)
                case nil: return nil
                }
            }
            let saved = savedBuffers[s].map { ArenaView(byteOffset: offsets[$0.buffer], dtype: $0.info.dtype, shape: $0.info.shape) }
            steps.append(
                Step(
                    node: p.node, request: p.request, kernel: kernel, elided: elided[s], gradient: gradients[s],
                    gradientError: gradientErrors[s],
                    inputs: inputs, outputs: try p.outputs.map(slot), saved: saved,
                    inputValues: p.inputs, outputValues: p.outputs.map { .output($0) }))
        }
        return try Plan(
            steps: steps, mode: mode, arenaByteCount: size, inputInfos: inputInfos, outputSources: outputSources,
            outputValues: outputValues, outputInfos: outputInfos, parameterNodes: parameterNodes, memory: deviceMemory)
    }
}

extension PlanBuilder {
    /// Planning stopped at a node whose outputs depend on values its inputs hold, which are not known yet.
    struct ValuesNeeded: Error {
        let node: ObjectIdentifier
        let error: AidgeError
    }
}

/// What planning needs to know beyond a node's inputs: the backend whose kernels run it (subgraphs of control
/// flow operators are planned on the same backend as the node).
public enum PlanningContext {
    @TaskLocal public static var backend = "cpu"
}
