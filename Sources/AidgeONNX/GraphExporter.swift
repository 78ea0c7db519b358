import AidgeCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf

/// The node and value names of a whole model (its subgraphs too), so that the names the exporter makes up are new.
final class ExportNames {
    private var used = Set<String>()

    init(_ graph: GraphView) { collect(graph) }

    private func collect(_ graph: GraphView) {
        for input in graph.inputs { used.insert(input.name) }
        for output in graph.outputs { used.insert(output.name) }
        for node in graph.nodes {
            used.insert(node.name)
            used.formUnion(node.outputNames)
            for case .graph(let subgraph) in node.op.attributes.values.values { collect(subgraph.graph) }
        }
    }

    func fresh(_ wanted: String) -> String {
        var name = wanted
        var k = 1
        while used.contains(name) {
            name = "\(wanted)_\(k)"
            k += 1
        }
        used.insert(name)
        return name
    }
}

/// Writes one `GraphView` as an ONNX `GraphProto`: Producers become initializers named by their output names,
/// nodes keep their names, output names and attributes, and each node is written in the form of the chosen opset.
struct GraphExporter: ExportContext {
    /// A node output or a node input, by node identity.
    private struct Port: Hashable {
        let node: ObjectIdentifier
        let index: Int
    }

    let graph: GraphView
    let opset: Int
    let names: ExportNames
    let isSubgraph: Bool
    /// How many of `graph.inputs` the GraphProto declares (a subgraph's captured values are the enclosing graph's).
    let declaredInputs: Int
    /// Shapes written for the graph's inputs and outputs instead of the declared and inferred ones.
    var inputShapes: [[Dim]]?
    var outputShapes: [[Dim]]?

    private var valueNames: [Port: String] = [:]
    private var constants: [String: Tensor] = [:]
    private var infos: [String: ValueInfo] = [:]
    private var addedInitializers: [Onnx_TensorProto] = []

    init(
        _ graph: GraphView, opset: Int, names: ExportNames, formalInputs: Int? = nil,
        inputShapes: [[Dim]]? = nil, outputShapes: [[Dim]]? = nil
    ) {
        self.graph = graph
        self.opset = opset
        self.names = names
        self.isSubgraph = formalInputs != nil
        self.declaredInputs = formalInputs ?? graph.inputs.count
        self.inputShapes = inputShapes
        self.outputShapes = outputShapes
    }

    // MARK: ExportContext

    func constant(_ name: String) -> Tensor? { constants[name] }
    func info(_ name: String) -> ValueInfo? { infos[name] }
    mutating func freshName(_ wanted: String) -> String { names.fresh(wanted) }
    mutating func addInitializer(_ tensor: Tensor, name: String) -> String {
        let fresh = names.fresh(name)
        constants[fresh] = tensor
        addedInitializers.append(Onnx_TensorProto(tensor, name: fresh))
        return fresh
    }

    // MARK: Writing

    mutating func export() throws -> Onnx_GraphProto {
        if let inputShapes, inputShapes.count != declaredInputs {
            throw AidgeError.invalidArgument("\(inputShapes.count) input shapes given, the graph has \(declaredInputs) inputs")
        }
        if let outputShapes, outputShapes.count != graph.outputs.count {
            throw AidgeError.invalidArgument("\(outputShapes.count) output shapes given, the graph has \(graph.outputs.count) outputs")
        }
        let inputs = graph.inputs.enumerated().map { k, input in
            var input = input
            if let inputShapes, k < inputShapes.count { input.shape = inputShapes[k] }
            return input
        }
        var inputOf: [Port: String] = [:]
        for input in inputs {
            for c in input.consumers { inputOf[Port(node: ObjectIdentifier(c.node), index: c.index)] = input.name }
        }

        // Producers outside the view that feed it are written too, as the planner reads them.
        var order: [Node] = []
        var listed = Set<ObjectIdentifier>()
        for node in try graph.topologicalOrder() {
            for case let (parent, _)? in node.inputs where !graph.contains(parent) && parent.type == "Producer" {
                if listed.insert(ObjectIdentifier(parent)).inserted { order.append(parent) }
            }
            if listed.insert(ObjectIdentifier(node)).inserted { order.append(node) }
        }

        // Value names: the nodes' output names, made unique where two outputs share one.
        var owner: [String: Port] = [:]
        for input in inputs { owner[input.name] = Port(node: ObjectIdentifier(graph), index: -1) }
        for node in order {
            for i in 0..<node.outputCount {
                let port = Port(node: ObjectIdentifier(node), index: i)
                var name = node.outputNames[i]
                if name.isEmpty || owner[name] != nil { name = names.fresh(name.isEmpty ? "\(node.name)_\(i)" : name) }
                owner[name] = port
                valueNames[port] = name
            }
            if let tensor = node.producedTensor, let name = valueNames[Port(node: ObjectIdentifier(node), index: 0)] {
                constants[name] = tensor
            }
        }

        var read = Set<Port>()
        for node in order {
            for case let (parent, index)? in node.inputs { read.insert(Port(node: ObjectIdentifier(parent), index: index)) }
        }
        for output in graph.outputs { read.insert(Port(node: ObjectIdentifier(output.node), index: output.index)) }

        let inferred = inferTypes(order, inputs: inputs, inputOf: inputOf, placeholder: 1)
        // With symbolic input dimensions, a second inference tells which output dimensions depend on them.
        let second = inferred.exact ? nil : inferTypes(order, inputs: inputs, inputOf: inputOf, placeholder: 2)
        for (port, info) in inferred.infos { if let name = valueNames[port] { infos[name] = info } }
        for input in inputs {  // the rank and dtype of the graph inputs (symbolic dimensions as 1)
            guard let dims = input.shape else { continue }
            infos[input.name] = ValueInfo(dtype: input.dtype, shape: dims.map { if case .fixed(let n) = $0 { n } else { 1 } })
        }

        var proto = Onnx_GraphProto()
        proto.name = graph.name
        var written: [ExportedNode] = []
        var capturedValues = Set<String>()  // values of this graph that subgraphs read
        for node in order where node.type != "Producer" {
            let (exported, captured) = try exportedNode(node, inputOf: inputOf, read: read)
            capturedValues.formUnion(captured)
            written += try ExportForms.rewrite(exported, opset: opset, context: &self)
        }

        // Graph outputs named differently from the value they return get an Identity.
        var outputNames: [String] = []
        for output in graph.outputs {
            let port = Port(node: ObjectIdentifier(output.node), index: output.index)
            guard let value = valueNames[port] ?? inputOf[port] else {
                throw AidgeError.invalidModel("graph output '\(output.name)' is not computed by a node of the graph")
            }
            if value != output.name {
                if let other = owner[output.name], other != port {
                    throw AidgeError.invalidModel(
                        "graph output '\(output.name)' returns value '\(value)', and another value has its name")
                }
                written.append(ExportedNode(
                    type: "Identity", domain: "", name: names.fresh("\(output.name)_identity"), attributes: [:],
                    inputs: [value], outputs: [output.name]))
            }
            outputNames.append(output.name)
        }

        var referenced = Set(outputNames).union(capturedValues)
        for node in written { referenced.formUnion(node.inputs) }
        for node in order {
            guard let tensor = node.producedTensor, let name = valueNames[Port(node: ObjectIdentifier(node), index: 0)]
            else { continue }
            // An initializer nothing reads is kept as it was; one whose readers take it as an attribute now is not.
            if referenced.contains(name) || graph.children(of: node).isEmpty {
                proto.initializer.append(Onnx_TensorProto(tensor, name: name))
            }
        }
        for node in written { proto.node.append(try nodeProto(node)) }
        proto.initializer += addedInitializers

        for input in inputs.prefix(declaredInputs) {
            proto.input.append(valueInfo(input.name, dtype: input.dtype, shape: input.shape?.map { $0 }))
        }
        for (k, output) in graph.outputs.enumerated() {
            if isSubgraph {
                var info = Onnx_ValueInfoProto()
                info.name = output.name
                proto.output.append(info)  // left to the enclosing node's inference, as ONNX allows
                continue
            }
            let port = Port(node: ObjectIdentifier(output.node), index: output.index)
            guard let info = inferred.infos[port] ?? second?.infos[port] else {
                throw AidgeError.invalidModel(
                    "cannot infer the element type of graph output '\(output.name)' (node \(output.node.name), "
                        + "\(output.node.type))\(inferred.exact ? "" : ": declare the input shapes")")
            }
            var shape = info.shape.map { Optional(Dim.fixed($0)) }
            if !inferred.exact {
                let other = inferred.infos[port] == nil ? nil : second?.infos[port]?.shape
                shape = info.shape.indices.map { d in
                    guard let other, other.count == info.shape.count, other[d] == info.shape[d] else { return nil }
                    return .fixed(info.shape[d])
                }
            }
            if let given = outputShapes?[k] { shape = given.map { $0 } }
            proto.output.append(valueInfo(output.name, dtype: info.dtype, shape: shape))
        }
        return proto
    }

    /// `node` with its edges as value names, in the engine's form, and the values its subgraphs read from this
    /// graph (trailing inputs of the node in the engine, names inside the subgraphs in ONNX).
    private func exportedNode(
        _ node: Node, inputOf: [Port: String], read: Set<Port>
    ) throws -> (node: ExportedNode, captured: [String]) {
        let id = ObjectIdentifier(node)
        var captured = 0
        for case .graph(let subgraph) in node.op.attributes.values.values {
            captured = subgraph.graph.inputs.count - subgraph.formalInputCount
        }
        var inputs: [String] = []
        for i in node.inputs.indices {
            let port = Port(node: id, index: i)
            if let (parent, index) = node.inputs[i] {
                guard let name = valueNames[Port(node: ObjectIdentifier(parent), index: index)] else {
                    throw AidgeError.invalidModel(
                        "input \(i) of node \(node.name) comes from node \(parent.name), which is outside the graph")
                }
                inputs.append(name)
            } else {
                inputs.append(inputOf[port] ?? "")
            }
        }
        // Optional outputs nobody reads and that have no name of their own (the engine's default) are left out.
        var outputs: [String] = []
        for i in 0..<node.outputCount {
            let port = Port(node: id, index: i)
            let unnamed = node.outputNames[i] == "\(node.name)_\(i)"
            outputs.append(i > 0 && unnamed && !read.contains(port) ? "" : valueNames[port] ?? "")
        }
        while let last = outputs.last, last.isEmpty { outputs.removeLast() }
        var type = node.type
        let domain = node.op.domain == "ai.onnx" ? "" : node.op.domain
        if !domain.isEmpty, type.hasPrefix(domain + ".") { type.removeFirst(domain.count + 1) }
        let formal = max(inputs.count - captured, 0)
        return (
            ExportedNode(
                type: type, domain: domain, name: node.name, attributes: node.op.attributes,
                inputs: Array(inputs.prefix(formal)), outputs: outputs),
            Array(inputs.dropFirst(formal))
        )
    }

    private func nodeProto(_ node: ExportedNode) throws -> Onnx_NodeProto {
        var proto = Onnx_NodeProto()
        proto.name = node.name
        proto.opType = node.type
        proto.domain = node.domain
        proto.input = node.inputs
        proto.output = node.outputs
        for (name, value) in node.attributes.values.sorted(by: { $0.key < $1.key }) {
            do {
                proto.attribute.append(try attributeProto(name, value))
            } catch let error as AidgeError {
                throw error.prefixed("attribute '\(name)' of node \(node.name) (\(node.type))")
            }
        }
        return proto
    }

    private func attributeProto(_ name: String, _ value: AttributeValue) throws -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        switch value {
        case .int(let v): a.type = .int; a.i = Int64(v)
        case .float(let v): a.type = .float; a.f = v
        case .string(let v): a.type = .string; a.s = Data(v.utf8)
        case .ints(let v): a.type = .ints; a.ints = v.map { Int64($0) }
        case .floats(let v): a.type = .floats; a.floats = v
        case .strings(let v): a.type = .strings; a.strings = v.map { Data($0.utf8) }
        case .tensor(let t): a.type = .tensor; a.t = Onnx_TensorProto(t, name: "")
        case .graph(let subgraph):
            var exporter = GraphExporter(
                subgraph.graph, opset: opset, names: names, formalInputs: subgraph.formalInputCount)
            a.type = .graph
            a.g = try exporter.export()
        }
        return a
    }

    /// A tensor value's name, dtype and shape (nil dimensions are unknown ones).
    private func valueInfo(_ name: String, dtype: DType, shape: [Dim?]?) -> Onnx_ValueInfoProto {
        var info = Onnx_ValueInfoProto()
        info.name = name
        var type = Onnx_TypeProto()
        type.tensorType.elemType = Int32(dtype.onnxDataType)
        if let shape {
            type.tensorType.shape.dim = shape.map { d in
                var dim = Onnx_TensorShapeProto.Dimension()
                switch d {
                case .fixed(let n)?: dim.dimValue = Int64(n)
                case .symbolic(let s)?: dim.dimParam = s
                case nil: break
                }
                return dim
            }
        }
        info.type = type
        return info
    }

    // MARK: Type inference

    /// Every value's dtype and shape from the operators' inference, with the declared input shapes (symbolic
    /// dimensions set to `placeholder`: then the dtypes are exact, the shapes not). Small values known ahead (shape arithmetic) are
    /// computed with the CPU kernels when they are registered, as the planner does.
    private func inferTypes(
        _ order: [Node], inputs: [GraphInput], inputOf: [Port: String], placeholder: Int
    ) -> (infos: [Port: ValueInfo], exact: Bool) {
        var exact = true
        var inputInfo: [String: ValueInfo] = [:]
        for input in inputs {
            guard let dims = input.shape else {
                exact = false
                continue
            }
            inputInfo[input.name] = ValueInfo(dtype: input.dtype, shape: dims.map { d in
                if case .fixed(let n) = d { return n }
                exact = false
                return placeholder
            })
        }
        var infos: [Port: ValueInfo] = [:]
        for node in order {
            let id = ObjectIdentifier(node)
            if let tensor = node.producedTensor {
                infos[Port(node: id, index: 0)] = ValueInfo(tensor.contiguous())
                continue
            }
            var known: [ValueInfo?] = []
            var missing = false
            for i in node.inputs.indices {
                if let (parent, index) = node.inputs[i] {
                    let info = infos[Port(node: ObjectIdentifier(parent), index: index)]
                    missing = missing || info == nil
                    known.append(info)
                } else if let name = inputOf[Port(node: id, index: i)] {
                    let info = inputInfo[name]
                    missing = missing || info == nil
                    known.append(info)
                } else {
                    known.append(nil)
                }
            }
            guard !missing, let schema = node.op.schema, var outputs = try? schema.outputs(node.op.attributes, known)
            else { continue }
            let hasSubgraph = node.op.attributes.values.values.contains { if case .graph = $0 { return true } else { return false } }
            if known.allSatisfy({ $0 == nil || $0?.value != nil }), schema.isDeterministic, !hasSubgraph,
                outputs.contains(where: { $0.value == nil }), outputs.reduce(0, { $0 + $1.count }) <= 1 << 16,
                KernelRegistry.shared.factory(node.type, backend: "cpu") != nil
            {
                let request = KernelRequest(op: node.op, nodeName: node.name, inputs: known, outputs: outputs)
                let results = outputs.map { Tensor(zeros: $0.shape, dtype: $0.dtype) }
                if let kernel = try? KernelRegistry.shared.makeKernel(request, backend: "cpu"),
                    (try? kernel.run(known.map { $0?.value }, results)) != nil
                {
                    for i in outputs.indices { outputs[i].value = results[i] }
                }
            }
            for (i, info) in outputs.enumerated() where i < node.outputCount { infos[Port(node: id, index: i)] = info }
        }
        return (infos, exact)
    }
}
