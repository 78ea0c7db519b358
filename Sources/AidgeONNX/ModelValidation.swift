import AidgeCore

/// Checks a parsed model against the ONNX specification before it is imported, so that a malformed model is
/// refused at load with an error naming the node and the problem, not when it runs:
/// - the default-domain opset is one the importer reads (`ONNX.maxSupportedOpset` at most);
/// - each default-domain node of a known op type, against that op's schema at the model's opset: attribute kinds,
///   required attributes, required inputs, input and output counts (custom domains and unknown types are left to
///   the importer: they load, and fail clearly when run);
/// - the data of tensor attributes matches their declared shape.
/// Initializers are checked as they are read (`Tensor(onnx:)`) and cycles once the nodes are read
/// (`GraphImporter`).
enum ModelValidation {
    static func validate(_ model: Onnx_ModelProto, opset: Int) throws {
        guard opset <= ONNX.maxSupportedOpset else {
            throw AidgeError.invalidModel(
                "the model imports opset \(opset) of the default ONNX domain; this engine reads opsets up to "
                    + "\(ONNX.maxSupportedOpset)")
        }
        try validate(graph: model.graph, opset: opset)
    }

    static func validate(graph: Onnx_GraphProto, opset: Int) throws {
        for (k, node) in graph.node.enumerated() {
            try validate(node: node, index: k, opset: opset)
        }
    }

    /// "node conv1 (Conv)", or for a node without a name its position and first output.
    static func describe(_ node: Onnx_NodeProto, index: Int) -> String {
        if !node.name.isEmpty { return "node \(node.name) (\(node.opType))" }
        let output = node.output.first { !$0.isEmpty }.map { ", output '\($0)'" } ?? ""
        return "node #\(index) (\(node.opType)\(output))"
    }

    private static func validate(node: Onnx_NodeProto, index: Int, opset: Int) throws {
        let what = describe(node, index: index)
        for attribute in node.attribute {
            if attribute.hasT, let problem = attribute.t.dataSizeProblem {
                throw AidgeError.invalidModel("\(what): attribute '\(attribute.name)': \(problem)")
            }
            for subgraph in (attribute.hasG ? [attribute.g] : []) + attribute.graphs {
                try validate(graph: subgraph, opset: opset)
            }
        }
        guard node.domain.isEmpty || node.domain == "ai.onnx",
            let schema = ONNXOperatorSchema.schema(node.opType, opset: opset)
        else { return }
        let version = "\(node.opType)-\(schema.sinceVersion)"

        var given = Set<String>()
        for attribute in node.attribute {
            given.insert(attribute.name)
            guard let expected = schema.attribute(attribute.name), let actual = kind(of: attribute) else { continue }
            if actual != expected.kind {
                throw AidgeError.invalidModel(
                    "\(what): attribute '\(attribute.name)' must be \(expected.kind.rawValue) (\(version)), got "
                        + actual.rawValue)
            }
        }
        for attribute in schema.attributes where attribute.isRequired && !given.contains(attribute.name) {
            throw AidgeError.invalidModel(
                "\(what) is missing required attribute '\(attribute.name)' (\(attribute.kind.rawValue))")
        }

        let inputs = node.input
        for i in 0..<max(inputs.count, schema.minInputs) where schema.isRequired(input: i) {
            if i >= inputs.count || inputs[i].isEmpty {
                let name = schema.formalInput(at: i)?.name ?? "\(i)"
                throw AidgeError.invalidModel("\(what) is missing required input \(i) (\(name))")
            }
        }
        if inputs.count < schema.minInputs {
            throw AidgeError.invalidModel(
                "\(what) has \(inputs.count) input\(inputs.count == 1 ? "" : "s"), \(version) needs at least "
                    + "\(schema.minInputs)")
        }
        let inputCount = (inputs.lastIndex { !$0.isEmpty } ?? -1) + 1
        if let maxInputs = schema.maxInputs, inputCount > maxInputs {
            throw AidgeError.invalidModel(
                "\(what) has \(inputCount) inputs, \(version) takes at most \(maxInputs)")
        }
        let outputCount = (node.output.lastIndex { !$0.isEmpty } ?? -1) + 1
        if let maxOutputs = schema.maxOutputs, outputCount > maxOutputs {
            throw AidgeError.invalidModel(
                "\(what) has \(outputCount) outputs, \(version) has at most \(maxOutputs)")
        }
    }

    /// The kind of an attribute: its declared type, or for older files that leave it unset, the kind of the field
    /// that is filled (nil when none is).
    static func kind(of a: Onnx_AttributeProto) -> ONNXOperatorSchema.AttributeKind? {
        typealias K = ONNXOperatorSchema.AttributeKind
        switch a.type {
        case .float: return K.float
        case .int: return K.int
        case .string: return K.string
        case .tensor: return K.tensor
        case .graph: return K.graph
        case .sparseTensor: return K.sparseTensor
        case .typeProto: return K.typeProto
        case .floats: return K.floats
        case .ints: return K.ints
        case .strings: return K.strings
        case .tensors: return K.tensors
        case .graphs: return K.graphs
        case .sparseTensors: return K.sparseTensors
        case .typeProtos: return K.typeProtos
        default:
            if a.hasF { return K.float }
            if a.hasI { return K.int }
            if a.hasS { return K.string }
            if a.hasT { return K.tensor }
            if a.hasG { return K.graph }
            if a.hasSparseTensor { return K.sparseTensor }
            if a.hasTp { return K.typeProto }
            if !a.floats.isEmpty { return K.floats }
            if !a.ints.isEmpty { return K.ints }
            if !a.strings.isEmpty { return K.strings }
            if !a.tensors.isEmpty { return K.tensors }
            if !a.graphs.isEmpty { return K.graphs }
            if !a.sparseTensors.isEmpty { return K.sparseTensors }
            if !a.typeProtos.isEmpty { return K.typeProtos }
            return nil
        }
    }
}
