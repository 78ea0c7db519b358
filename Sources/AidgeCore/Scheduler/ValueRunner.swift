/// Runs a graph that holds sequences or optionals (`Value`), node by node in topological order.
///
/// Containers have lengths that only running decides, so such a graph has no static plan. Container operators
/// run here; If, Loop and SequenceMap run their subgraphs with runners of their own, so containers flow through
/// them; every other node runs through a one-node scheduler of its own, planned per input shapes like any graph.
final class ValueRunner {
    let graph: GraphView
    let backend: String
    private let order: [Node]
    /// The graph input that feeds each node input that no node feeds.
    private let fed: [Port: Int]
    /// The one-node schedulers of tensor operators, by node.
    private var calls: [ObjectIdentifier: NodeCall] = [:]
    /// The runners of subgraphs, by node and attribute name.
    private var subgraphs: [SubgraphKey: ValueRunner] = [:]

    private struct SubgraphKey: Hashable {
        let node: ObjectIdentifier
        let name: String
    }

    private struct Port: Hashable {
        let node: ObjectIdentifier
        let index: Int
    }

    init(_ graph: GraphView, backend: String) throws {
        self.graph = graph
        self.backend = backend
        order = try graph.topologicalOrder()
        var fed: [Port: Int] = [:]
        for (k, input) in graph.inputs.enumerated() {
            for consumer in input.consumers { fed[Port(node: ObjectIdentifier(consumer.node), index: consumer.index)] = k }
        }
        self.fed = fed
    }


    /// The graph's outputs on `inputs` (one per graph input).
    func run(_ inputs: [Value]) throws -> [Value] {
        var values: [OutputRef: Value] = [:]
        for node in order {
            let arguments: [Value?] = try node.inputs.indices.map { i in
                if let source = node.inputs[i] {
                    guard let v = values[OutputRef(node: ObjectIdentifier(source.node), index: source.index)] else {
                        throw AidgeError.invalidModel("input \(i) of node \(node.name) comes from outside the graph")
                    }
                    return v
                }
                return fed[Port(node: ObjectIdentifier(node), index: i)].map { inputs[$0] }
            }
            let results: [Value]
            do {
                results = try run(node, arguments)
            } catch {
                throw error.aidgePrefixed("\(node.type) node \(node.name)")
            }
            for (k, v) in results.enumerated() { values[OutputRef(node: ObjectIdentifier(node), index: k)] = v }
        }
        return try graph.outputs.map { output in
            guard let v = values[OutputRef(node: ObjectIdentifier(output.node), index: output.index)] else {
                throw AidgeError.invalidModel("graph output '\(output.name)' is not computed")
            }
            return v
        }
    }

    private func run(_ node: Node, _ inputs: [Value?]) throws -> [Value] {
        switch node.type {
        case "Producer":
            guard let t = node.producedTensor else { throw AidgeError.invalidModel("the Producer holds no tensor") }
            return [.tensor(t)]
        case "Identity":
            return [try present(inputs, 0)]
        case "If":
            guard let condition = try present(inputs, 0).tensor("the condition").boolean else {
                throw AidgeError.invalidArgument("the condition of If must hold one value")
            }
            let branch = condition ? "then_branch" : "else_branch"
            return try subgraph(node, branch).run(try (1..<inputs.count).map { try present(inputs, $0) })
        case "Loop":
            return try loop(node, inputs)
        case "SequenceMap":
            return try sequenceMap(node, inputs)
        case _ where ContainerOperators.types.contains(node.type):
            return try ContainerOperators.run(node.op, inputs)
        case _ where node.holdsContainers:
            throw AidgeError.unsupported("\(node.type) over sequences or optionals is not supported")
        default:
            let tensors = try inputs.enumerated().map { i, v in try v.map { try $0.tensor("input \(i)") } }
            let call: NodeCall
            if let known = calls[ObjectIdentifier(node)] {
                call = known
            } else {
                call = try NodeCall(node, fed: tensors, backend: backend)
                calls[ObjectIdentifier(node)] = call
            }
            return try call.run(tensors).map(Value.tensor)
        }
    }

    private func present(_ inputs: [Value?], _ i: Int) throws -> Value {
        guard i < inputs.count, let v = inputs[i] else { throw AidgeError.invalidModel("input \(i) is absent") }
        return v
    }

    private func subgraph(_ node: Node, _ name: String) throws -> ValueRunner {
        let key = SubgraphKey(node: ObjectIdentifier(node), name: name)
        if let known = subgraphs[key] { return known }
        let runner = try ValueRunner(try node.op.attributes.subgraph(name).graph, backend: backend)
        subgraphs[key] = runner
        return runner
    }

    /// Loop: carried values may be containers; scan outputs are tensors stacked along a new first axis.
    private func loop(_ node: Node, _ inputs: [Value?]) throws -> [Value] {
        let body = try node.op.attributes.subgraph("body")
        let carriedCount = body.formalInputCount - 2
        guard carriedCount >= 0, inputs.count >= 2 + carriedCount else {
            throw AidgeError.invalidModel("Loop takes M, cond and \(max(carriedCount, 0)) carried values")
        }
        let tripCount = try inputs[0].map { v -> Int in
            guard let n = try v.tensor("the trip count M").integers().first else {
                throw AidgeError.invalidArgument("Loop trip count M is empty")
            }
            return n
        }
        let conditionInput = try inputs[1].map { try $0.tensor("the condition") }
        guard tripCount != nil || conditionInput != nil else {
            throw AidgeError.invalidModel("a Loop with neither a trip count nor a condition never ends")
        }
        guard var condition = conditionInput.map({ $0.boolean }) ?? true else {
            throw AidgeError.invalidArgument("Loop condition must hold one value")
        }
        var carried = try (2..<(2 + carriedCount)).map { try present(inputs, $0) }
        let captured = try ((2 + carriedCount)..<inputs.count).map { try present(inputs, $0) }
        let runner = try subgraph(node, "body")
        var scans: [[Tensor]] = Array(repeating: [], count: max(body.graph.outputs.count - 1 - carriedCount, 0))
        var iteration = 0
        if tripCount == 0 || !condition {
            // No iteration: each scan output is empty, with the shape and dtype a body run would give its slices
            // (known from a plan when the body holds tensors only).
            let tensors = (carried + captured).compactMap { v -> Tensor? in
                if case .tensor(let t) = v { return t }
                return nil
            }
            var infos: [ValueInfo]?
            if !body.graph.holdsContainers && tensors.count == carried.count + captured.count {
                let first = [Tensor(scalar: Int64(0)), Tensor.bool(condition)]
                infos = try Scheduler(subgraph: body, backend: backend).plannedOutputs(for: first + tensors)
            }
            return carried + scans.indices.map { k in
                let info = infos.flatMap { 1 + carriedCount + k < $0.count ? $0[1 + carriedCount + k] : nil }
                return .tensor(Tensor(zeros: [0] + (info?.shape ?? []), dtype: info?.dtype ?? .float32))
            }
        }
        while tripCount.map({ iteration < $0 }) ?? true, condition {
            let outputs = try runner.run(
                [.tensor(Tensor(scalar: Int64(iteration))), .tensor(Tensor.bool(condition))] + carried + captured)
            guard outputs.count == 1 + carriedCount + scans.count else {
                throw AidgeError.invalidModel("Loop body has \(outputs.count) outputs, not 1 + \(carriedCount) + \(scans.count)")
            }
            if conditionInput != nil {
                guard let next = try outputs[0].tensor("the body's condition").boolean else {
                    throw AidgeError.invalidArgument("Loop body condition is empty")
                }
                condition = next
            }
            carried = Array(outputs[1..<(1 + carriedCount)])
            for k in scans.indices { scans[k].append(try outputs[1 + carriedCount + k].tensor("scan output \(k)")) }
            iteration += 1
        }
        return try carried + scans.map { .tensor(try stack($0, axis: 0, reversed: false)) }
    }

    /// SequenceMap: the body runs once per position of the first sequence, on that element and, for each further
    /// input, its element at the same position (a sequence) or the whole input (a tensor).
    private func sequenceMap(_ node: Node, _ inputs: [Value?]) throws -> [Value] {
        let body = try node.op.attributes.subgraph("body")
        guard body.formalInputCount >= 1, inputs.count >= body.formalInputCount else {
            throw AidgeError.invalidModel(
                "SequenceMap's body takes \(body.formalInputCount) inputs; the node has \(inputs.count)")
        }
        let first = try present(inputs, 0).sequence("the input sequence")
        let others = try (1..<body.formalInputCount).map { try present(inputs, $0) }
        let captured = try (body.formalInputCount..<inputs.count).map { try present(inputs, $0) }
        for (k, v) in others.enumerated() {
            if case .sequence(let s) = v, s.count != first.count {
                throw AidgeError.shapeMismatch(
                    "SequenceMap input \(k + 1) holds \(s.count) tensors, the first sequence \(first.count)")
            }
        }
        let runner = try subgraph(node, "body")
        var results: [[Tensor]] = Array(repeating: [], count: node.outputCount)
        for i in 0..<first.count {
            let arguments = [Value.tensor(first.tensors[i])] + others.map { v -> Value in
                if case .sequence(let s) = v { return .tensor(s.tensors[i]) }
                return v
            }
            let outputs = try runner.run(arguments + captured)
            guard outputs.count == results.count else {
                throw AidgeError.invalidModel("SequenceMap body has \(outputs.count) outputs, the node \(results.count)")
            }
            for k in results.indices { results[k].append(try outputs[k].tensor("body output \(k)")) }
        }
        return try results.map { tensors in
            .sequence(try TensorSequence(dtype: tensors.first?.dtype ?? first.dtype, tensors))
        }
    }
}

/// A tensor operator of a container graph, run through a one-node scheduler: its Producer inputs are planned as
/// constants, the others fed at each run.
private final class NodeCall {
    let scheduler: Scheduler
    /// The node inputs that the one-node graph takes as graph inputs, in order.
    let fedIndices: [Int]

    init(_ node: Node, fed: [Tensor?], backend: String) throws {
        var inputs = fed
        var constants = Set<Int>()
        for (i, source) in node.inputs.enumerated() {
            guard let source, let t = source.node.producedTensor, source.node.isVariableProducer == false else { continue }
            inputs[i] = t
            constants.insert(i)
        }
        let call = try OneNodeGraph(node.op, inputs: inputs, constants: constants, outputs: node.outputCount)
        scheduler = Scheduler(call.graph, backend: backend)
        fedIndices = call.fedIndices
    }

    func run(_ inputs: [Tensor?]) throws -> [Tensor] {
        let fed = try fedIndices.map { i -> Tensor in
            guard let t = inputs[i] else { throw AidgeError.invalidModel("input \(i) is absent") }
            return t
        }
        return try scheduler.forward(fed, mode: .inference).outputs
    }
}

extension GraphView {
    /// Whether the graph runs with a `ValueRunner`: a graph input or output is a container, or a node (at any depth
    /// of subgraphs) takes or makes one.
    public var holdsContainers: Bool {
        inputs.contains { $0.kind != .tensor } || outputs.contains { $0.kind != .tensor }
            || nodes.contains { $0.holdsContainers }
    }
}

extension Node {
    /// Whether this is a container operator, or runs a subgraph that holds containers.
    var holdsContainers: Bool {
        if ContainerOperators.types.contains(type) { return true }
        return op.attributes.values.values.contains { value in
            if case .graph(let subgraph) = value { return subgraph.graph.holdsContainers }
            return false
        }
    }
}
