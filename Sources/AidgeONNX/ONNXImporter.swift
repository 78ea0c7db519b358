import AidgeCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf

/// Loads ONNX models into graphs.
public enum ONNX {
    /// Reads the model at `path`; external data is looked up next to it.
    public static func load(path: String) throws -> GraphView {
        let bytes = try FileIO.read(path)
        do {
            return try load(bytes: bytes, baseDirectory: FileIO.directory(of: path))
        } catch let error as AidgeError {
            throw error.prefixed(path)
        }
    }

    /// Reads a serialized model; external data paths are relative to `baseDirectory`.
    public static func load(bytes: [UInt8], baseDirectory: String = ".") throws -> GraphView {
        let model: Onnx_ModelProto
        do {
            model = try Onnx_ModelProto(serializedBytes: bytes)
        } catch {
            throw AidgeError.invalidModel("not a valid ONNX model (the protobuf does not parse: \(error))")
        }
        guard model.hasGraph, !model.graph.node.isEmpty || !model.graph.output.isEmpty else {
            throw AidgeError.invalidModel("not a valid ONNX model (it has no graph)")
        }
        var opsets: [String: Int] = [:]
        for entry in model.opsetImport { opsets[entry.domain == "ai.onnx" ? "" : entry.domain] = Int(entry.version) }
        // A model of other domains only (the training operators) may import no default operator set.
        let usesDefaultDomain = model.graph.node.contains { $0.domain.isEmpty || $0.domain == "ai.onnx" }
        guard let opset = opsets[""] ?? (usesDefaultDomain ? nil : 1) else {
            throw AidgeError.invalidModel("the model imports no version of the default ONNX operator set")
        }
        try ModelValidation.validate(model, opset: opset)
        var importer = GraphImporter(baseDirectory: baseDirectory, opset: opset)
        let graph = try importer.importGraph(model.graph)
        graph.opsetImports = opsets
        return graph
    }
}

/// Builds a `GraphView` from an ONNX graph: initializers become Producers, `Constant` nodes constant Producers,
/// older opsets are rewritten to the latest form, and every edge is checked.
struct GraphImporter {
    let baseDirectory: String
    let opset: Int
    /// Whether this is a subgraph (an attribute of If, Loop or Scan): names it does not define are values of the
    /// enclosing graph, which become trailing inputs (`captured`).
    let isSubgraph: Bool
    private(set) var captured: [String] = []
    private var values: [String: (node: Node, index: Int)] = [:]
    private var inputIndex: [String: Int] = [:]
    private var usedNames = Set<String>()
    private var nextSuffix: [String: Int] = [:]

    init(baseDirectory: String, opset: Int, isSubgraph: Bool = false) {
        self.baseDirectory = baseDirectory
        self.opset = opset
        self.isSubgraph = isSubgraph
    }

    mutating func importGraph(_ proto: Onnx_GraphProto) throws -> GraphView {
        let graph = GraphView(name: proto.name.isEmpty ? "graph" : proto.name)
        for initializer in proto.initializer {
            let tensor = try Tensor(onnx: initializer, baseDirectory: baseDirectory)
            let producer = Node.producer(tensor, name: uniqueName(initializer.name))
            producer.outputNames = [initializer.name]
            values[initializer.name] = (producer, 0)
            graph.add(producer, includeProducers: false)
        }
        for input in proto.input where values[input.name] == nil {
            let (dtype, shape, kind) = try valueType(input)
            inputIndex[input.name] = graph.inputs.count
            graph.inputs.append(GraphInput(name: input.name, dtype: dtype, shape: shape, consumers: [], kind: kind))
        }

        // Read every node first, so edges may point forward in the file.
        var pending: [(ImportedNode, Node)] = []
        for proto in proto.node {
            for imported in try OpsetAdapters.adapt(try read(proto), opset: opset) {
                if imported.type == "Constant" && imported.domain.isEmpty {
                    let tensor = try constantValue(imported)
                    let producer = Node.producer(tensor, name: uniqueName(imported.name), constant: true)
                    if let output = imported.outputs.first {
                        producer.outputNames = [output]
                        values[output] = (producer, 0)
                    }
                    graph.add(producer, includeProducers: false)
                    continue
                }
                var op = Operator(imported.type, attributes: imported.attributes, domain: imported.domain)
                if !imported.domain.isEmpty && imported.domain != "ai.onnx" {
                    op.type = "\(imported.domain).\(imported.type)"  // no schema: loads, fails clearly when run
                }
                let node = Node(
                    op, name: uniqueName(imported.name.isEmpty ? nil : imported.name),
                    inputCount: imported.inputs.count, outputCount: max(imported.outputs.count, 1))
                for (i, output) in imported.outputs.enumerated() where !output.isEmpty {
                    if values[output] != nil || inputIndex[output] != nil {
                        throw AidgeError.invalidModel("value '\(output)' is produced twice (node \(node.name))")
                    }
                    values[output] = (node, i)
                    node.outputNames[i] = output
                }
                graph.add(node, includeProducers: false)
                pending.append((imported, node))
            }
        }

        // Nodes hold their parents strongly: a cycle would never be freed, and ONNX graphs have none.
        try checkAcyclic(pending)
        for (imported, node) in pending {
            for (i, input) in imported.inputs.enumerated() {
                switch input {
                case .absent:
                    break
                case .value(let name):
                    if let source = values[name] {
                        try node.setInput(i, from: source.node, output: source.index)
                    } else if let k = inputIndex[name] ?? capture(name, into: graph) {
                        graph.inputs[k].consumers.append((node, i))
                    } else {
                        throw AidgeError.invalidModel(
                            "dangling edge: input '\(name)' of node \(node.name) (\(node.type)) is not produced by any "
                                + "node, graph input or initializer")
                    }
                case .constant(let tensor):
                    let producer = Node.producer(tensor, name: uniqueName("\(node.name)_\(node.inputNames[i])"), constant: true)
                    try node.setInput(i, from: producer)
                    graph.add(producer, includeProducers: false)
                }
            }
        }

        for output in proto.output {
            let kind = isSubgraph
                ? (try? valueType(output, what: "graph output").kind) ?? .tensor
                : try valueType(output, what: "graph output").kind
            if let source = values[output.name] {
                graph.outputs.append(GraphOutput(name: output.name, node: source.node, index: source.index, kind: kind))
            } else if let k = inputIndex[output.name] ?? capture(output.name, into: graph) {
                // A graph input returned as it is: an Identity makes it a node output.
                let identity = Node(Operator("Identity"), name: uniqueName("\(output.name)_identity"))
                identity.outputNames = [output.name]
                graph.inputs[k].consumers.append((identity, 0))
                graph.add(identity, includeProducers: false)
                graph.outputs.append(GraphOutput(name: output.name, node: identity, kind: kind))
            } else {
                throw AidgeError.invalidModel("graph output '\(output.name)' is not produced by any node")
            }
        }
        return graph
    }

    /// In a subgraph, makes `name` (a value of the enclosing graph) a trailing input and returns its index.
    private mutating func capture(_ name: String, into graph: GraphView) -> Int? {
        guard isSubgraph else { return nil }
        captured.append(name)
        inputIndex[name] = graph.inputs.count
        graph.inputs.append(GraphInput(name: name, dtype: .float32, shape: nil, consumers: []))
        return graph.inputs.count - 1
    }

    /// Throws when the nodes' edges (by value name) form a cycle; checked before any edge is connected.
    private func checkAcyclic(_ pending: [(ImportedNode, Node)]) throws {
        var index: [ObjectIdentifier: Int] = [:]
        for (k, entry) in pending.enumerated() { index[ObjectIdentifier(entry.1)] = k }
        let parents: [[Int]] = pending.map { imported, _ in
            imported.inputs.compactMap { input in
                guard case .value(let name) = input, let source = values[name] else { return nil }
                return index[ObjectIdentifier(source.node)]
            }
        }
        var state = [UInt8](repeating: 0, count: pending.count)  // 1: visiting, 2: done
        for root in pending.indices where state[root] == 0 {
            var stack: [(node: Int, next: Int)] = [(root, 0)]
            state[root] = 1
            while let (node, next) = stack.last {
                guard next < parents[node].count else {
                    stack.removeLast()
                    state[node] = 2
                    continue
                }
                stack[stack.count - 1].next += 1
                let parent = parents[node][next]
                switch state[parent] {
                case 0:
                    state[parent] = 1
                    stack.append((parent, 0))
                case 1:
                    throw AidgeError.invalidModel("the graph has a cycle through node \(pending[parent].1.name)")
                default:
                    break
                }
            }
        }
    }

    private mutating func uniqueName(_ wanted: String?) -> String? {
        guard let wanted, !wanted.isEmpty else { return nil }
        var name = wanted
        var k = nextSuffix[wanted] ?? 1  // many nodes of one name must not cost a scan each
        while !usedNames.insert(name).inserted {
            name = "\(wanted)_\(k)"
            k += 1
        }
        if name != wanted { nextSuffix[wanted] = k }
        return name
    }

    private func read(_ proto: Onnx_NodeProto) throws -> ImportedNode {
        var attributes = Attributes()
        var subgraphs: [(name: String, graph: GraphView, formal: Int, captured: [String])] = []
        for attribute in proto.attribute {
            if attribute.type == .graph || attribute.hasG {
                var importer = GraphImporter(baseDirectory: baseDirectory, opset: opset, isSubgraph: true)
                let graph: GraphView
                do {
                    graph = try importer.importGraph(attribute.g)
                } catch let error as AidgeError {
                    throw error.prefixed("subgraph '\(attribute.name)' of node \(proto.name) (\(proto.opType))")
                }
                let formal = graph.inputs.count - importer.captured.count
                subgraphs.append((attribute.name, graph, formal, importer.captured))
            } else if let value = try attributeValue(attribute, node: proto.name) {
                attributes[attribute.name] = value
            }
        }
        // Every subgraph of the node takes the values any of them reads from this graph, in one order.
        var captured: [String] = []
        for subgraph in subgraphs { for name in subgraph.captured where !captured.contains(name) { captured.append(name) } }
        for subgraph in subgraphs {
            let formal = Array(subgraph.graph.inputs.prefix(subgraph.formal))
            let outer = subgraph.graph.inputs.dropFirst(subgraph.formal)
            subgraph.graph.inputs = formal + captured.map { name in
                outer.first { $0.name == name } ?? GraphInput(name: name, dtype: .float32, shape: nil, consumers: [])
            }
            attributes[subgraph.name] = .graph(Subgraph(subgraph.graph, formalInputCount: subgraph.formal))
        }
        return ImportedNode(
            type: proto.opType, domain: proto.domain == "ai.onnx" ? "" : proto.domain, name: proto.name,
            attributes: attributes, inputs: proto.input.map { $0.isEmpty ? .absent : .value($0) } + captured.map { .value($0) },
            outputs: proto.output)
    }

    private func attributeValue(_ a: Onnx_AttributeProto, node: String) throws -> AttributeValue? {
        switch a.type {
        case .float: return .float(a.f)
        case .int: return .int(Int(a.i))
        case .string: return .string(String(decoding: a.s, as: UTF8.self))
        case .floats: return .floats(a.floats)
        case .ints: return .ints(a.ints.map { Int($0) })
        case .strings: return .strings(a.strings.map { String(decoding: $0, as: UTF8.self) })
        case .tensor: return .tensor(try Tensor(onnx: a.t, baseDirectory: baseDirectory))
        default:
            // Older files leave `type` unset: infer it from the field that is filled.
            if a.hasT { return .tensor(try Tensor(onnx: a.t, baseDirectory: baseDirectory)) }
            if a.hasI { return .int(Int(a.i)) }
            if a.hasF { return .float(a.f) }
            if a.hasS { return .string(String(decoding: a.s, as: UTF8.self)) }
            if !a.ints.isEmpty { return .ints(a.ints.map { Int($0) }) }
            if !a.floats.isEmpty { return .floats(a.floats) }
            return nil  // graphs and sparse tensors: the operators that use them have no kernel yet
        }
    }

    private func constantValue(_ node: ImportedNode) throws -> Tensor {
        let a = node.attributes
        if case .tensor(let t)? = a["value"] { return t }
        if case .float(let v)? = a["value_float"] { return Tensor(scalar: v) }
        if case .floats(let v)? = a["value_floats"] { return Tensor(v) }
        if case .int(let v)? = a["value_int"] { return Tensor(scalar: Int64(v)) }
        if case .ints(let v)? = a["value_ints"] { return Tensor(v.map { Int64($0) }) }
        throw AidgeError.unsupported("Constant node \(node.name) has no value this engine reads (sparse or string)")
    }

    /// The element dtype, declared shape and kind of a graph input or output.
    private func valueType(
        _ info: Onnx_ValueInfoProto, what: String = "graph input"
    ) throws -> (dtype: DType, shape: [Dim]?, kind: ValueKind) {
        // A subgraph may leave its inputs' types to inference: they are planned with what they are fed.
        if isSubgraph && (!info.hasType || info.type.value == nil) { return (.float32, nil, .tensor) }
        guard info.hasType else { throw AidgeError.unsupportedType("\(what) '\(info.name)' has no type") }
        // Sequences and optionals wrap a tensor type: the kind records the wrapping.
        var type = info.type
        var wrappers: [(ValueKind) -> ValueKind] = []
        while true {
            switch type.value {
            case .sequenceType(let s)?:
                wrappers.append { .sequence($0) }
                type = s.elemType
                continue
            case .optionalType(let o)?:
                wrappers.append { .optional($0) }
                type = o.elemType
                continue
            default: break
            }
            break
        }
        let kind = wrappers.reversed().reduce(ValueKind.tensor) { $1($0) }
        guard case .tensorType(let t)? = type.value else {
            throw AidgeError.unsupportedType("\(what) '\(info.name)' is not a tensor, a sequence or an optional of tensors")
        }
        guard let dtype = DType(onnx: Int(t.elemType)) else {
            if isSubgraph && t.elemType == 0 { return (.float32, nil, kind) }
            throw AidgeError.unsupportedType(
                "\(what) '\(info.name)' has ONNX data type \(onnxTypeName(Int(t.elemType))), which is not supported")
        }
        guard t.hasShape else { return (dtype, nil, kind) }
        let dims: [Dim] = t.shape.dim.enumerated().map { k, d in
            switch d.value {
            case .dimValue(let n)?: return .fixed(Int(n))
            case .dimParam(let s)?: return .symbolic(s)
            case nil: return .symbolic("\(info.name)_dim\(k)")
            }
        }
        return (dtype, dims, kind)
    }
}
