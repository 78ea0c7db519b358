import AidgeCore

/// Rewrites nodes of older opsets into the latest form the engine's operators define (attributes that became
/// inputs, changed defaults, operators that were renamed or redefined).
enum OpsetAdapters {
    static let reductions: Set<String> = [
        "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
        "ReduceLogSumExp", "ReduceSumSquare",
    ]

    static func adapt(_ node: ImportedNode, opset: Int) throws -> [ImportedNode] {
        var node = node
        guard node.domain.isEmpty || node.domain == "ai.onnx" else { return [node] }
        switch node.type {
        // A `where` clause guards only the pattern it follows: each pattern gets its own.
        case "Squeeze" where opset < 13, "Unsqueeze" where opset < 13:
            try moveToInput(&node, attribute: "axes", index: 1, ints: true)
        case "ReduceSum" where opset < 13:
            try moveToInput(&node, attribute: "axes", index: 1, ints: true)
        case let type where reductions.contains(type) && opset < 18:
            try moveToInput(&node, attribute: "axes", index: 1, ints: true)
        case "Split":
            if opset < 13 { try moveToInput(&node, attribute: "split", index: 1, ints: true) }
            node.attributes["num_outputs"] = .int(node.outputs.count)
        case "Pad" where opset < 11:
            try moveToInput(&node, attribute: "pads", index: 1, ints: true)
            let value = try node.attributes.float("value", default: 0)
            node.attributes["value"] = nil
            if value != 0 { setInput(&node, 2, .constant(Tensor(scalar: value))) }
        case "Clip" where opset < 11:
            for (name, index) in [("min", 1), ("max", 2)] where node.attributes.has(name) {
                let v = try node.attributes.float(name)
                node.attributes[name] = nil
                setInput(&node, index, .constant(Tensor(scalar: v)))
            }
        case "Slice" where opset < 10:
            try moveToInput(&node, attribute: "starts", index: 1, ints: true)
            try moveToInput(&node, attribute: "ends", index: 2, ints: true)
            try moveToInput(&node, attribute: "axes", index: 3, ints: true)
        case "Reshape" where opset < 5:
            try moveToInput(&node, attribute: "shape", index: 1, ints: true)
        case "Upsample":
            node.type = "Resize"
            if opset < 9 {
                let scales = try node.attributes.floats("scales")
                node.attributes["scales"] = nil
                setInput(&node, 2, .constant(Tensor(scales)))
            } else if node.inputs.count > 1 {
                let scales = node.inputs[1]
                node.inputs[1] = .absent
                setInput(&node, 2, scales)
            }
            asymmetricNearestFloor(&node)
        case "Resize" where opset < 11:
            if node.inputs.count > 1 {
                let scales = node.inputs[1]
                node.inputs[1] = .absent
                setInput(&node, 2, scales)
            }
            asymmetricNearestFloor(&node)
        case "DFT" where opset < 20:  // axis (default 1) became input 2
            let axis = try node.attributes.int("axis", default: 1)
            node.attributes["axis"] = nil
            setInput(&node, 2, .constant(Tensor(scalar: Int64(axis))))
        case "Scan" where opset < 9:
            throw AidgeError.unsupported("Scan of opset \(opset) (batched, with sequence_lens) is not supported; opset 9 and later are")
        case "RoiAlign" where opset < 16:  // before opset 16, regions were not shifted by half a pixel
            if !node.attributes.has("coordinate_transformation_mode") {
                node.attributes["coordinate_transformation_mode"] = .string("output_half_pixel")
            }
        case "Scatter":  // deprecated in opset 11 for its new name
            node.type = "ScatterElements"
        case "Dropout" where opset < 12:
            node.attributes = [:]
        case "Softmax" where opset < 13, "LogSoftmax" where opset < 13, "Hardmax" where opset < 13:
            return try coerceTo2D(node)
        default:
            break
        }
        return [node]
    }

    /// Upsample and Resize-10 sample at `floor(out / scale)`.
    private static func asymmetricNearestFloor(_ node: inout ImportedNode) {
        let mode = (try? node.attributes.string("mode", default: "nearest")) ?? "nearest"
        node.attributes["mode"] = .string(mode == "bilinear" ? "linear" : mode)
        node.attributes["coordinate_transformation_mode"] = .string("asymmetric")
        node.attributes["nearest_mode"] = .string("floor")
    }

    /// Before opset 13 these ops flattened the input to 2-D at `axis` (default 1) and normalised each row;
    /// rewritten as Flatten -> op(axis = -1) -> Reshape to the input's shape.
    private static func coerceTo2D(_ node: ImportedNode) throws -> [ImportedNode] {
        let axis = try node.attributes.int("axis", default: 1)
        var inner = node
        inner.attributes = ["axis": .int(-1)]
        if axis == -1 { return [inner] }
        guard case .value(let x)? = node.inputs.first, let y = node.outputs.first else {
            throw AidgeError.invalidModel("\(node.type) node \(node.name) needs one input")
        }
        let p = "\(node.name.isEmpty ? node.type : node.name)__2d"
        let flatten = ImportedNode(
            type: "Flatten", domain: "", name: "\(p)_flatten", attributes: ["axis": .int(axis)], inputs: [.value(x)],
            outputs: ["\(p)_flat"])
        inner.name = "\(p)_op"
        inner.inputs = [.value("\(p)_flat")]
        inner.outputs = ["\(p)_out"]
        let shape = ImportedNode(
            type: "Shape", domain: "", name: "\(p)_shape", attributes: [:], inputs: [.value(x)], outputs: ["\(p)_dims"])
        let reshape = ImportedNode(
            type: "Reshape", domain: "", name: node.name, attributes: [:],
            inputs: [.value("\(p)_out"), .value("\(p)_dims")], outputs: [y])
        return [flatten, inner, shape, reshape]
    }

    private static func moveToInput(_ node: inout ImportedNode, attribute: String, index: Int, ints: Bool) throws {
        guard node.attributes.has(attribute) else { return }
        let values = try node.attributes.ints(attribute)
        node.attributes[attribute] = nil
        setInput(&node, index, .constant(Tensor(values.map { Int64($0) })))
    }

    private static func setInput(_ node: inout ImportedNode, _ index: Int, _ input: ImportedNode.Input) {
        while node.inputs.count <= index { node.inputs.append(.absent) }
        node.inputs[index] = input
    }
}
