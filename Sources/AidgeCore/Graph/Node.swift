/// One output of a node, as the source of an edge.
public struct OutputRef: Hashable, Sendable {
    public let node: ObjectIdentifier
    public let index: Int
}

/// A vertex of the computational graph: an operator, edges from its parents' outputs, and a unique name.
///
/// A node holds its parents strongly and its children weakly, so a graph lives as long as its outputs do.
public final class Node {
    public var name: String
    public var op: Operator
    /// For each input, the parent output that feeds it, or nil (a graph input, or an absent optional input).
    public private(set) var inputs: [(node: Node, index: Int)?]
    /// Names of the outputs (ONNX value names; generated when none are given).
    public var outputNames: [String]
    private var childLinks: [WeakNode] = []

    /// A node of `op`; the name defaults to `Type_<n>`, unique in this process.
    public init(_ op: Operator, name: String? = nil, inputCount: Int? = nil, outputCount: Int? = nil) {
        self.op = op
        let name = name.flatMap { $0.isEmpty ? nil : $0 } ?? NodeNaming.next(op.type)
        self.name = name
        let nIn = inputCount ?? op.schema?.inputNames.count ?? 1
        let nOut = outputCount ?? op.schema?.outputCount ?? 1
        inputs = Array(repeating: nil, count: nIn)
        outputNames = (0..<nOut).map { nOut == 1 ? name : "\(name)_\($0)" }
    }

    public var type: String { op.type }
    public var outputCount: Int { outputNames.count }

    /// A `Producer` node holding `tensor` (a weight, a constant). A non-constant Producer's tensor carries a
    /// gradient cell: it is a parameter when its dtype is a float type.
    public static func producer(_ tensor: Tensor, name: String? = nil, constant: Bool = false) -> Node {
        let value = constant ? tensor : tensor.withGradient()
        return Node(
            Operator("Producer", attributes: ["value": .tensor(value), "constant": .int(constant ? 1 : 0)]),
            name: name, inputCount: 0, outputCount: 1)
    }

    /// Whether this is a Producer whose tensor may change between runs (weights, running statistics): not
    /// marked constant.
    public var isVariableProducer: Bool {
        type == "Producer" && (try? op.attributes.int("constant", default: 0)) == 0
    }

    /// Whether this is a Producer that training updates: variable, with a float dtype.
    public var isParameter: Bool { isVariableProducer && (producedTensor?.dtype.isFloatingPoint ?? false) }

    /// The tensor a `Producer` holds.
    public var producedTensor: Tensor? {
        guard type == "Producer", case .tensor(let t) = op.attributes["value"] else { return nil }
        return t
    }

    /// Replaces the tensor of a `Producer`; a variable Producer keeps its gradient cell unless `tensor` has one.
    public func setProducedTensor(_ tensor: Tensor) {
        var value = tensor
        if value.gradient == nil, isVariableProducer { value.gradient = producedTensor?.gradient ?? GradientCell() }
        op.attributes["value"] = .tensor(value)
    }

    /// Input names from the schema (`data_input_0`... for unknown operators).
    public var inputNames: [String] {
        let names = op.schema?.inputNames ?? []
        return inputs.indices.map { $0 < names.count ? names[$0] : "input_\($0)" }
    }

    /// The index of the input called `name`.
    public func inputIndex(named name: String) throws -> Int {
        guard let i = inputNames.firstIndex(of: name) else {
            throw AidgeError.invalidArgument(
                "node \(self.name) (\(type)) has no input '\(name)'; its inputs are \(inputNames)")
        }
        return i
    }

    /// The parent output connected to the input called `name`.
    public func input(named name: String) throws -> (node: Node, index: Int)? {
        inputs[try inputIndex(named: name)]
    }

    /// Connects `parent`'s output `outputIndex` to this node's input `inputIndex` (growing a variadic input list).
    public func setInput(_ inputIndex: Int, from parent: Node?, output outputIndex: Int = 0) throws {
        guard inputIndex >= 0 else { throw AidgeError.invalidArgument("negative input index \(inputIndex)") }
        if let parent, !(0..<parent.outputCount).contains(outputIndex) {
            throw AidgeError.invalidArgument(
                "node \(parent.name) has \(parent.outputCount) outputs, no output \(outputIndex)")
        }
        if inputIndex >= inputs.count {
            if let maxInputs = op.schema?.maxInputs, inputIndex >= maxInputs {
                throw AidgeError.invalidArgument("\(type) node \(name) has \(maxInputs) inputs, no input \(inputIndex)")
            }
            inputs += Array(repeating: nil, count: inputIndex + 1 - inputs.count)
        }
        let old = inputs[inputIndex]?.node
        inputs[inputIndex] = parent.map { ($0, outputIndex) }
        old?.dropStaleChildLinks()
        parent?.childLinks.append(WeakNode(self))
    }

    /// Aidge's `add_child`: connects this node's output `outputIndex` to `child`'s input `inputIndex` (default: its
    /// first unconnected input).
    public func addChild(_ child: Node, output outputIndex: Int = 0, input inputIndex: Int? = nil) throws {
        let target = inputIndex ?? child.inputs.firstIndex(where: { $0 == nil }) ?? child.inputs.count
        try child.setInput(target, from: self, output: outputIndex)
    }

    /// Parent nodes in input order (nil for unconnected inputs).
    public var parents: [Node?] { inputs.map { $0?.node } }

    /// Nodes that read an output of this node (each once).
    public var children: [Node] {
        var seen = Set<ObjectIdentifier>()
        return childLinks.compactMap { $0.node }.filter { child in
            child.inputs.contains { $0?.node === self } && seen.insert(ObjectIdentifier(child)).inserted
        }
    }

    private func dropStaleChildLinks() {
        childLinks.removeAll { link in
            guard let child = link.node else { return true }
            return !child.inputs.contains { $0?.node === self }
        }
    }

    /// Disconnects every input.
    public func disconnectInputs() {
        let old = inputs.compactMap { $0?.node }
        inputs = inputs.map { _ in nil }
        for parent in old { parent.dropStaleChildLinks() }
    }
}

private final class WeakNode {
    weak var node: Node?
    init(_ node: Node) { self.node = node }
}

/// Generates unique default node names, `Conv_0`, `Conv_1`, ...
enum NodeNaming {
    private static let counter = Counter()
    static func next(_ type: String) -> String { "\(type)_\(counter.next(type))" }
}

import Synchronization

private final class Counter: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    func next(_ key: String) -> Int {
        counts.withLock { c in
            let n = c[key, default: 0]
            c[key] = n + 1
            return n
        }
    }
}
