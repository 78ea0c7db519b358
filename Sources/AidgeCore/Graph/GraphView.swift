/// A dimension of a declared input shape: fixed, or named and fixed only when the graph is planned.
public enum Dim: Sendable, Hashable, CustomStringConvertible {
    case fixed(Int)
    case symbolic(String)

    public var description: String {
        switch self {
        case .fixed(let n): return String(n)
        case .symbolic(let s): return s
        }
    }
}

/// A value the caller feeds: its name, declared dtype and shape, and the node inputs that read it.
public struct GraphInput {
    public var name: String
    public var dtype: DType
    public var shape: [Dim]?
    public var consumers: [(node: Node, index: Int)]
    /// A tensor, or a container of tensors of `dtype` (then `shape` is that of the tensors, when declared).
    public var kind: ValueKind

    public init(
        name: String, dtype: DType, shape: [Dim]?, consumers: [(node: Node, index: Int)], kind: ValueKind = .tensor
    ) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.consumers = consumers
        self.kind = kind
    }
}

/// A value the graph returns.
public struct GraphOutput {
    public var name: String
    public var node: Node
    public var index: Int
    /// A tensor, or a container of tensors (as the model declares it).
    public var kind: ValueKind

    public init(name: String, node: Node, index: Int = 0, kind: ValueKind = .tensor) {
        self.name = name
        self.node = node
        self.index = index
        self.kind = kind
    }
}

/// A view over a set of nodes with ordered inputs and outputs.
public final class GraphView {
    public var name: String
    public private(set) var nodes: [Node] = []
    private var members = Set<ObjectIdentifier>()
    public var inputs: [GraphInput] = []
    public var outputs: [GraphOutput] = []
    /// ONNX opsets the graph was imported with, by domain (kept for export).
    public var opsetImports: [String: Int] = [:]
    /// Training mode: BatchNormalization uses batch statistics, Dropout drops, runs record for backward, and
    /// recipes leave parameters alone. Evaluation mode (the default) runs the inference forms.
    public var isTraining = false

    /// Switches to training mode (PyTorch's `train()`).
    public func train(_ on: Bool = true) { isTraining = on }

    /// Switches to evaluation mode (PyTorch's `eval()`).
    public func eval() { isTraining = false }

    public init(name: String = "graph", nodes: [Node] = []) {
        self.name = name
        for node in nodes { add(node, includeProducers: false) }
    }

    public func contains(_ node: Node) -> Bool { members.contains(ObjectIdentifier(node)) }

    /// Adds `node` and, with `includeProducers`, the `Producer` nodes that feed it (Aidge's behaviour).
    public func add(_ node: Node, includeProducers: Bool = true) {
        if members.insert(ObjectIdentifier(node)).inserted { nodes.append(node) }
        if includeProducers {
            for parent in node.parents.compactMap({ $0 }) where parent.type == "Producer" {
                add(parent, includeProducers: false)
            }
        }
    }

    /// Adds every node of `other`.
    public func add(_ other: GraphView) {
        for node in other.nodes { add(node, includeProducers: false) }
    }

    /// Removes `node` from the view (its edges are left as they are).
    public func remove(_ node: Node) {
        guard members.remove(ObjectIdentifier(node)) != nil else { return }
        nodes.removeAll { $0 === node }
        for i in inputs.indices { inputs[i].consumers.removeAll { $0.node === node } }
    }

    public func node(named name: String) -> Node? { nodes.first { $0.name == name } }

    /// Nodes whose output feeds a node of the view through `inputs` and is not in the view.
    public var producers: [Node] { nodes.filter { $0.type == "Producer" } }

    /// Nodes that read `node`'s outputs inside this view.
    public func children(of node: Node) -> [Node] { node.children.filter(contains) }

    /// Nodes in an order where every parent comes before its children; throws on a cycle.
    public func topologicalOrder() throws -> [Node] {
        var state: [ObjectIdentifier: Int] = [:]  // 1: visiting, 2: done
        var order: [Node] = []
        order.reserveCapacity(nodes.count)
        for root in nodes where state[ObjectIdentifier(root)] == nil {
            var stack: [(Node, Int)] = [(root, 0)]
            state[ObjectIdentifier(root)] = 1
            while let (node, next) = stack.last {
                if next < node.inputs.count {
                    stack[stack.count - 1].1 += 1
                    guard let parent = node.inputs[next]?.node, contains(parent) else { continue }
                    switch state[ObjectIdentifier(parent)] {
                    case nil:
                        state[ObjectIdentifier(parent)] = 1
                        stack.append((parent, 0))
                    case 1:
                        throw AidgeError.invalidModel("the graph has a cycle through node \(parent.name)")
                    default: break
                    }
                } else {
                    stack.removeLast()
                    state[ObjectIdentifier(node)] = 2
                    order.append(node)
                }
            }
        }
        return order
    }

    /// Derives inputs and outputs from connectivity, as Aidge does for graphs built by hand: every unconnected
    /// required input of a node becomes a graph input, every output no node of the view reads becomes an output.
    public func updateInputsOutputs(dtype: DType = .float32) {
        inputs = []
        outputs = []
        for node in nodes {
            // Every input of a variadic node (Concat, Sum) is data; otherwise the optional ones may stay open.
            let schema = node.op.schema
            let required = schema.map { $0.maxInputs == nil ? node.inputs.count : $0.minInputs } ?? node.inputs.count
            for (i, source) in node.inputs.enumerated() where i < required {
                if source.map({ !contains($0.node) }) ?? true {
                    let name = node.inputs.count == 1 ? "\(node.name)_input" : "\(node.name)_\(node.inputNames[i])"
                    inputs.append(GraphInput(name: name, dtype: dtype, shape: nil, consumers: [(node, i)]))
                }
            }
        }
        for node in nodes where node.type != "Producer" {
            let read = Set(children(of: node).flatMap { child in
                child.inputs.compactMap { $0 }.filter { $0.node === node }.map(\.index)
            })
            for i in 0..<node.outputCount where !read.contains(i) {
                outputs.append(GraphOutput(name: node.outputNames[i], node: node, index: i))
            }
        }
    }

    /// A deep copy: new nodes with the same names, operators and edges; tensors are shared views.
    public func clone() -> GraphView {
        var map: [ObjectIdentifier: Node] = [:]
        for node in nodes {
            let copy = Node(node.op, name: node.name, inputCount: node.inputs.count, outputCount: node.outputCount)
            copy.outputNames = node.outputNames
            map[ObjectIdentifier(node)] = copy
        }
        for node in nodes {
            guard let copy = map[ObjectIdentifier(node)] else { continue }
            for (i, source) in node.inputs.enumerated() {
                guard let source else { continue }
                try? copy.setInput(i, from: map[ObjectIdentifier(source.node)] ?? source.node, output: source.index)
            }
        }
        let graph = GraphView(name: name, nodes: nodes.compactMap { map[ObjectIdentifier($0)] })
        graph.opsetImports = opsetImports
        graph.isTraining = isTraining
        graph.inputs = inputs.map { input in
            var copy = input
            copy.consumers = input.consumers.map { (map[ObjectIdentifier($0.node)] ?? $0.node, $0.index) }
            return copy
        }
        graph.outputs = outputs.map {
            GraphOutput(name: $0.name, node: map[ObjectIdentifier($0.node)] ?? $0.node, index: $0.index)
        }
        return graph
    }
}
