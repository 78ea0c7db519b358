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
        guard let opset = opsets[""] else {
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
    private var values: [String: (node: Node, index: Int)] = [:]
    private var usedNames = Set<String>()

    init(baseDirectory: String, opset: Int) {
        self.baseDirectory = baseDirectory
        self.opset = opset
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
        var inputIndex: [String: Int] = [:]
        for input in proto.input where values[input.name] == nil {
            let (dtype, shape) = try valueType(input)
            inputIndex[input.name] = graph.inputs.count
            graph.inputs.append(GraphInput(name: input.name, dtype: dtype, shape: shape, consumers: []))
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

        for (imported, node) in pending {
            for (i, input) in imported.inputs.enumerated() {
                switch input {
                case .absent:
                    break
                case .value(let name):
                    if let source = values[name] {
                        try node.setInput(i, from: source.node, output: source.index)
                    } else if let k = inputIndex[name] {
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
            if let source = values[output.name] {
                graph.outputs.append(GraphOutput(name: output.name, node: source.node, index: source.index))
            } else if let k = inputIndex[output.name] {
                // A graph input returned as it is: an Identity makes it a node output.
                let identity = Node(Operator("Identity"), name: uniqueName("\(output.name)_identity"))
                identity.outputNames = [output.name]
                graph.inputs[k].consumers.append((identity, 0))
                graph.add(identity, includeProducers: false)
                graph.outputs.append(GraphOutput(name: output.name, node: identity))
            } else {
                throw AidgeError.invalidModel("graph output '\(output.name)' is not produced by any node")
            }
        }
        return graph
    }

    private mutating func uniqueName(_ wanted: String?) -> String? {
        guard let wanted, !wanted.isEmpty else { return nil }
        var name = wanted
        var k = 1
        while !usedNames.insert(name).inserted {
            name = "\(wanted)_\(k)"
            k += 1
        }
        return name
    }

    private func read(_ proto: Onnx_NodeProto) throws -> ImportedNode {
        var attributes = Attributes()
        for attribute in proto.attribute {
            if let value = try attributeValue(attribute, node: proto.name) { attributes[attribute.name] = value }
        }
        return ImportedNode(
            type: proto.opType, domain: proto.domain == "ai.onnx" ? "" : proto.domain, name: proto.name,
            attributes: attributes, inputs: proto.input.map { $0.isEmpty ? .absent : .value($0) },
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

    private func valueType(_ info: Onnx_ValueInfoProto) throws -> (DType, [Dim]?) {
        guard info.hasType, case .tensorType(let t)? = info.type.value else {
            throw AidgeError.unsupportedType("graph input '\(info.name)' is not a tensor")
        }
        guard let dtype = DType(onnx: Int(t.elemType)) else {
            throw AidgeError.unsupportedType(
                "graph input '\(info.name)' has ONNX data type \(onnxTypeName(Int(t.elemType))), which is not supported")
        }
        guard t.hasShape else { return (dtype, nil) }
        let dims: [Dim] = t.shape.dim.enumerated().map { k, d in
            switch d.value {
            case .dimValue(let n)?: return .fixed(Int(n))
            case .dimParam(let s)?: return .symbolic(s)
            case nil: return .symbolic("\(info.name)_dim\(k)")
            }
        }
        return (dtype, dims)
    }
}
