/// A graph run in two parts because a node's outputs depend on values computed by the graph itself (NonZero,
/// Unique, a Loop whose trip count is computed): the part before that node is planned once; the part from it on
/// is planned, by a scheduler of its own, for the values the node reads, once the first part has computed them.
///
/// Planning the second part per value keeps every kernel static; its scheduler keeps a bounded number of plans.
final class SplitRun {
    private let prefix: Scheduler
    private let tail: Scheduler
    /// Where each input of the tail comes from: an output of the prefix, or an input of the whole graph.
    private let tailFeeds: [TailFeed]
    /// Where each output of the whole graph comes from.
    private let outputs: [Feed]

    private enum TailFeed {
        case prefixOutput(Int)
        case graphInput(Int)
    }

    private enum Feed {
        case prefixOutput(Int)
        case tailOutput(Int)
    }

    /// Splits `graph` before `stop`, a node whose inputs are computed by the nodes before it.
    init(_ graph: GraphView, at stop: Node, backend: String) throws {
        let order = try graph.topologicalOrder()
        guard let cut = order.firstIndex(where: { $0 === stop }) else {
            throw AidgeError.invalidModel("node \(stop.name) is not in the graph")
        }
        let head = GraphView(name: "\(graph.name)_head", nodes: Array(order[..<cut]))
        let rest = GraphView(name: "\(graph.name)_tail", nodes: Array(order[cut...]))

        // The head takes every graph input, and returns the graph outputs it computes, then every value the tail
        // reads from it.
        head.inputs = graph.inputs.map { input in
            var copy = input
            copy.consumers = input.consumers.filter { head.contains($0.node) }
            return copy
        }
        head.outputs = graph.outputs.filter { head.contains($0.node) }
        var boundary: [OutputRef: Int] = [:]  // head value -> tail input
        var feeds: [TailFeed] = []
        for node in rest.nodes {
            for (i, source) in node.inputs.enumerated() {
                guard let source, head.contains(source.node), source.node.type != "Producer" else { continue }
                let ref = OutputRef(node: ObjectIdentifier(source.node), index: source.index)
                if let k = boundary[ref] {
                    rest.inputs[k].consumers.append((node, i))
                    continue
                }
                boundary[ref] = rest.inputs.count
                feeds.append(.prefixOutput(head.outputs.count))
                head.outputs.append(GraphOutput(name: source.node.outputNames[source.index], node: source.node, index: source.index))
                rest.inputs.append(
                    GraphInput(name: source.node.outputNames[source.index], dtype: .float32, shape: nil, consumers: [(node, i)]))
            }
        }
        for (k, input) in graph.inputs.enumerated() {
            let consumers = input.consumers.filter { rest.contains($0.node) }
            guard !consumers.isEmpty else { continue }
            feeds.append(.graphInput(k))
            rest.inputs.append(GraphInput(name: input.name, dtype: input.dtype, shape: nil, consumers: consumers))
        }
        rest.outputs = graph.outputs.filter { rest.contains($0.node) }
        // Graph outputs in their order: from the head or the tail.
        var fromHead = 0
        var fromTail = 0
        self.outputs = graph.outputs.map { output in
            if head.contains(output.node) {
                defer { fromHead += 1 }
                return .prefixOutput(fromHead)
            }
            defer { fromTail += 1 }
            return .tailOutput(fromTail)
        }
        tailFeeds = feeds
        prefix = Scheduler(part: head, backend: backend, valueInputs: [])
        // The tail is planned for the values of what the stopping node reads.
        let stopInputs = rest.inputs.indices.filter { k in rest.inputs[k].consumers.contains { $0.node === stop } }
        tail = Scheduler(part: rest, backend: backend, valueInputs: stopInputs)
    }

    func run(_ inputs: [Tensor]) throws -> Recording {
        let first = try prefix.forward(inputs, mode: .inference).outputs
        let tailInputs = tailFeeds.map { feed -> Tensor in
            switch feed {
            case .prefixOutput(let k): return first[k]
            case .graphInput(let k): return inputs[k]
            }
        }
        let second = try tail.forward(tailInputs, mode: .inference)
        let results = outputs.map { feed in
            switch feed {
            case .prefixOutput(let k): return first[k]
            case .tailOutput(let k): return second.outputs[k]
            }
        }
        return Recording(plan: second.plan, context: second.context, outputs: results)
    }
}
