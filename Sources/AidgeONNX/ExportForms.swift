import AidgeCore

/// Writes nodes of the engine's form as ONNX nodes of a chosen opset: the engine's own operators (`Linear`,
/// activations fused into `Conv`/`Gemm`) become their ONNX equivalents, `Gelu` before opset 20 its formula, and
/// nodes kept in the latest form go back to an older opset's form (the inverse of `OpsetAdapters`: inputs that
/// were attributes become attributes again when they are constants). What cannot be written throws, naming the
/// node and the reason.
enum ExportForms {
    static func rewrite<C: ExportContext>(_ node: ExportedNode, opset: Int, context: inout C) throws -> [ExportedNode] {
        var nodes: [ExportedNode]
        switch node.domain.isEmpty ? node.type : "" {
        case "Linear":
            nodes = try linear(node, opset: opset, context: &context)
        case "Conv" where node.attributes.has("activation"), "Gemm" where node.attributes.has("activation"):
            nodes = try unfuseActivation(node, opset: opset, context: &context)
        case "Gelu" where opset < 20:
            nodes = try geluFormula(node, context: &context)
        default:
            nodes = [node]
        }
        return try nodes.map { try opsetForm($0, opset: opset, context: &context) }
    }

    private static func cannot(_ node: ExportedNode, _ opset: Int, _ why: String) -> AidgeError {
        .unsupported("node \(node.name) (\(node.type)) cannot be written at opset \(opset): \(why)")
    }

    // MARK: - The engine's own operators

    /// `Linear` (Y = X Wᵀ + B over X's last axis): `Gemm` with transB = 1 when X is a matrix, else
    /// `Transpose(W)` → `MatMul` (→ `Add` of B), as exporters write `nn.Linear`.
    private static func linear<C: ExportContext>(
        _ node: ExportedNode, opset: Int, context: inout C
    ) throws -> [ExportedNode] {
        guard let x = node.input(0), let w = node.input(1), let y = node.outputs.first else {
            throw AidgeError.invalidModel("Linear node \(node.name) needs its input X, its weight W and an output")
        }
        let bias = node.input(2)
        if context.info(x)?.shape.count == 2 {
            var inputs = [x, w]
            if let bias {
                inputs.append(bias)
            } else if opset < 11 {  // C is required before opset 11
                let dtype = context.info(x)?.dtype ?? .float32
                inputs.append(context.addInitializer(Tensor(scalar: Float(0)).cast(to: dtype), name: "\(node.name)_C"))
            }
            return [ExportedNode(
                type: "Gemm", domain: "", name: node.name, attributes: ["transB": .int(1)], inputs: inputs, outputs: [y])]
        }
        let transposed = context.freshName("\(w)_transposed")
        let transpose = ExportedNode(
            type: "Transpose", domain: "", name: context.freshName("\(node.name)_transpose"),
            attributes: ["perm": .ints([1, 0])], inputs: [w], outputs: [transposed])
        guard let bias else {
            return [transpose, ExportedNode(type: "MatMul", domain: "", name: node.name, attributes: [:], inputs: [x, transposed], outputs: [y])]
        }
        let product = context.freshName("\(node.name)_product")
        return [
            transpose,
            ExportedNode(
                type: "MatMul", domain: "", name: context.freshName("\(node.name)_matmul"), attributes: [:],
                inputs: [x, transposed], outputs: [product]),
            ExportedNode(type: "Add", domain: "", name: node.name, attributes: [:], inputs: [product, bias], outputs: [y]),
        ]
    }

    /// A `Conv` or `Gemm` carrying a fused activation (`Recipes.fuseActivation`): the node, then a `Relu` or a
    /// `Clip` with the recorded bounds.
    private static func unfuseActivation<C: ExportContext>(
        _ node: ExportedNode, opset: Int, context: inout C
    ) throws -> [ExportedNode] {
        guard let y = node.outputs.first else { throw AidgeError.invalidModel("node \(node.name) has no output") }
        let activation = try node.attributes.string("activation")
        var inner = node
        inner.attributes["activation"] = nil
        inner.attributes["activation_params"] = nil
        let preactivation = context.freshName("\(node.name)_preactivation")
        inner.outputs[0] = preactivation
        var act = ExportedNode(
            type: activation, domain: "", name: context.freshName("\(node.name)_\(activation.lowercased())"),
            attributes: [:], inputs: [preactivation], outputs: [y])
        switch activation {
        case "Relu":
            break
        case "Clip":
            let bounds = try node.attributes.floats("activation_params", default: [-.infinity, .infinity])
            guard bounds.count == 2 else {
                throw AidgeError.invalidModel("node \(node.name): activation_params of Clip must be [min, max], got \(bounds)")
            }
            let dtype = context.info(y)?.dtype ?? context.info(node.inputs[0])?.dtype ?? .float32
            for (k, (label, bound)) in zip(["min", "max"], bounds).enumerated() where bound.isFinite {
                if opset < 11 {
                    act.attributes[label] = .float(bound)
                } else {
                    let name = context.addInitializer(Tensor(scalar: bound).cast(to: dtype), name: "\(act.name)_\(label)")
                    act.setInput(k + 1, name)
                }
            }
        default:
            throw AidgeError.unsupported("node \(node.name) (\(node.type)): fused activation '\(activation)' has no ONNX form")
        }
        return [inner, act]
    }

    /// `Gelu` (opset 20) written as its formula: x · ½ · (1 + erf(x / √2)), or with approximate = "tanh"
    /// x · ½ · (1 + tanh(√(2/π) · (x + 0.044715 x³))).
    private static func geluFormula<C: ExportContext>(_ node: ExportedNode, context: inout C) throws -> [ExportedNode] {
        guard let x = node.input(0), let y = node.outputs.first else {
            throw AidgeError.invalidModel("Gelu node \(node.name) needs an input and an output")
        }
        let dtype = context.info(x)?.dtype ?? .float32
        var nodes: [ExportedNode] = []
        func constant(_ value: Double, _ label: String) -> String {
            context.addInitializer(Tensor(scalar: value).cast(to: dtype), name: "\(node.name)_\(label)")
        }
        func op(_ type: String, _ inputs: [String], output: String? = nil) -> String {
            let out = output ?? context.freshName("\(node.name)_\(type.lowercased())")
            let name = output == nil ? context.freshName("\(node.name)_\(type.lowercased())_node") : node.name
            nodes.append(ExportedNode(type: type, domain: "", name: name, attributes: [:], inputs: inputs, outputs: [out]))
            return out
        }
        switch try node.attributes.string("approximate", default: "none") {
        case "none":
            let e = op("Erf", [op("Div", [x, constant(2.0.squareRoot(), "sqrt2")])])
            let xTimesOnePlus = op("Mul", [x, op("Add", [e, constant(1, "one")])])
            _ = op("Mul", [xTimesOnePlus, constant(0.5, "half")], output: y)
        case "tanh":
            let cube = op("Mul", [op("Mul", [x, x]), x])
            let inner = op("Add", [x, op("Mul", [cube, constant(0.044715, "cubic")])])
            let t = op("Tanh", [op("Mul", [inner, constant((2 / Double.pi).squareRoot(), "scale")])])
            let xTimesOnePlus = op("Mul", [x, op("Add", [t, constant(1, "one")])])
            _ = op("Mul", [xTimesOnePlus, constant(0.5, "half")], output: y)
        case let other:
            throw AidgeError.unsupported("Gelu node \(node.name): approximate = '\(other)' has no ONNX form")
        }
        return nodes
    }

    // MARK: - Older opsets

    /// Whether two integer or string attribute values are equal.
    private static func isSame(_ a: AttributeValue, _ b: AttributeValue) -> Bool {
        switch (a, b) {
        case (.int(let x), .int(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        default: return false
        }
    }

    static let reductions: Set<String> = OpsetAdapters.reductions

    /// `node` (in the latest form) as opset `opset` writes it.
    private static func opsetForm<C: ExportContext>(
        _ node: ExportedNode, opset: Int, context: inout C
    ) throws -> ExportedNode {
        guard node.domain.isEmpty else { return node }
        var node = node
        if let since = ONNXOperatorSchema.all[node.type]?.first?.sinceVersion, since > opset {
            throw cannot(node, opset, "ONNX defines \(node.type) from opset \(since)")
        }
        /// An input that became an attribute: moved back when it is a constant.
        func toAttribute(_ index: Int, _ attribute: String, floats: Bool = false, scalar: Bool = false) throws {
            guard let name = node.input(index) else { return }
            guard let value = context.constant(name) else {
                throw cannot(node, opset, "its input '\(name)' must be a constant to become the attribute '\(attribute)'")
            }
            if scalar {
                guard value.count == 1 else { throw cannot(node, opset, "'\(attribute)' must be one value, got \(value.count)") }
                node.attributes[attribute] = floats ? .float(Float(value.doubles()[0])) : .int(value.integers()[0])
            } else {
                node.attributes[attribute] = floats ? .floats(value.doubles().map { Float($0) }) : .ints(value.integers())
            }
            node.inputs[index] = ""
        }
        /// An attribute that opset `since` added: dropped when it holds its default, else the node cannot be written.
        func newAttribute(_ name: String, since: Int, default value: AttributeValue?) throws {
            guard opset < since, let present = node.attributes[name] else { return }
            guard let value, isSame(present, value) else {
                throw cannot(node, opset, "attribute '\(name)' exists from opset \(since)")
            }
            node.attributes[name] = nil
        }
        func noInput(_ index: Int, since: Int, _ what: String) throws {
            if opset < since, node.input(index) != nil { throw cannot(node, opset, "its input \(what) exists from opset \(since)") }
        }

        switch node.type {
        case "Squeeze" where opset < 13, "Unsqueeze" where opset < 13:
            try toAttribute(1, "axes")
        case "ReduceSum" where opset < 13:
            try newAttribute("noop_with_empty_axes", since: 13, default: .int(0))
            try toAttribute(1, "axes")
        case let type where reductions.contains(type) && opset < 18:
            try newAttribute("noop_with_empty_axes", since: 18, default: .int(0))
            try toAttribute(1, "axes")
        case "Split":
            // The importer records num_outputs on every Split; ONNX takes it only from opset 18, without `split`.
            if node.input(1) != nil || opset < 18 { node.attributes["num_outputs"] = nil }
            if opset < 13 { try toAttribute(1, "split") }
        case "Pad":
            try noInput(3, since: 18, "axes")
            if opset < 11 {
                try toAttribute(1, "pads")
                try toAttribute(2, "value", floats: true, scalar: true)
            }
        case "Clip" where opset < 11:
            try toAttribute(1, "min", floats: true, scalar: true)
            try toAttribute(2, "max", floats: true, scalar: true)
        case "Slice" where opset < 10:
            if let steps = node.input(4) {
                guard let value = context.constant(steps), value.integers().allSatisfy({ $0 == 1 }) else {
                    throw cannot(node, opset, "steps other than 1 exist from opset 10")
                }
                node.inputs[4] = ""
            }
            try toAttribute(1, "starts")
            try toAttribute(2, "ends")
            try toAttribute(3, "axes")
        case "Reshape":
            try newAttribute("allowzero", since: 14, default: .int(0))
            if opset < 5 { try toAttribute(1, "shape") }
        case "TopK":
            try newAttribute("largest", since: 11, default: .int(1))
            try newAttribute("sorted", since: 11, default: .int(1))
            if opset < 10 { try toAttribute(1, "k", scalar: true) }
        case "Resize":
            return try resizeForm(node, opset: opset, context: &context)
        case "DFT" where opset < 20:
            if node.input(2) != nil {
                try toAttribute(2, "axis", scalar: true)
            } else {
                node.attributes["axis"] = .int(-2)  // input 2's default
            }
        case "ScatterElements":
            try newAttribute("reduction", since: 16, default: .string("none"))
            if opset < 11 { node.type = "Scatter" }
        case "ScatterND":
            try newAttribute("reduction", since: 16, default: .string("none"))
        case "ArgMax", "ArgMin":
            try newAttribute("select_last_index", since: 12, default: .int(0))
        case "BatchNormalization":
            try newAttribute("training_mode", since: 14, default: .int(0))
        case "Cast":
            try newAttribute("saturate", since: 19, default: .int(1))
        case "QuantizeLinear", "DequantizeLinear":
            try newAttribute("saturate", since: 19, default: .int(1))
            try newAttribute("block_size", since: 21, default: .int(0))
            try newAttribute("output_dtype", since: 21, default: .int(0))
        case "Dropout" where opset < 12:
            if let training = node.input(2) {
                guard let value = context.constant(training), value.doubles().allSatisfy({ $0 == 0 }) else {
                    throw cannot(node, opset, "training_mode exists from opset 12")
                }
                node.inputs[2] = ""
            }
            try toAttribute(1, "ratio", floats: true, scalar: true)
            if opset < 7 { node.attributes["is_test"] = .int(1) }
        case "Softmax" where opset < 13, "LogSoftmax" where opset < 13, "Hardmax" where opset < 13:
            // Before opset 13 these flatten the input to 2-D at `axis`: the same only over the last axis.
            let axis = try node.attributes.int("axis", default: -1)
            let rank = node.input(0).flatMap { context.info($0)?.shape.count }
            guard axis == -1 || axis == (rank ?? 0) - 1 else {
                throw cannot(node, opset, "before opset 13 it normalises over all axes from \(axis) on, not over axis \(axis) alone")
            }
            node.attributes["axis"] = .int(-1)
        default:
            break
        }
        node.trimInputs()
        return node
    }

    /// Resize of the latest form at an older opset; before 11 it samples at floor(out / scale) only, as Upsample
    /// did before 10.
    private static func resizeForm<C: ExportContext>(
        _ node: ExportedNode, opset: Int, context: inout C
    ) throws -> ExportedNode {
        var node = node
        let attributes = node.attributes
        if opset < 19, (try? attributes.string("coordinate_transformation_mode")) == "half_pixel_symmetric" {
            throw cannot(node, opset, "coordinate_transformation_mode 'half_pixel_symmetric' exists from opset 19")
        }
        if opset < 18 {
            for (name, value) in [("antialias", AttributeValue.int(0)), ("keep_aspect_ratio_policy", .string("stretch"))] {
                guard let present = attributes[name] else { continue }
                guard isSame(present, value) else { throw cannot(node, opset, "attribute '\(name)' exists from opset 18") }
                node.attributes[name] = nil
            }
            if attributes.has("axes") { throw cannot(node, opset, "attribute 'axes' exists from opset 18") }
        }
        if opset >= 13 {
            node.trimInputs()
            return node
        }
        guard let x = node.input(0) else { throw AidgeError.invalidModel("Resize node \(node.name) has no input X") }
        let dtype = context.info(x)?.dtype ?? .float32
        if opset >= 11 {  // roi and scales are required inputs, empty when unused
            if node.input(1) == nil {
                node.setInput(1, context.addInitializer(Tensor(zeros: [0], dtype: dtype), name: "\(node.name)_roi"))
            }
            if node.input(2) == nil {
                node.setInput(2, context.addInitializer(Tensor(zeros: [0], dtype: .float32), name: "\(node.name)_scales"))
            }
            node.trimInputs()
            return node
        }
        let mode = try attributes.string("mode", default: "nearest")
        let transform = try attributes.string("coordinate_transformation_mode", default: "half_pixel")
        let nearest = try attributes.string("nearest_mode", default: "round_prefer_floor")
        guard let scales = node.input(2), node.input(3) == nil, transform == "asymmetric",
            mode == "linear" || (mode == "nearest" && nearest == "floor")
        else {
            throw cannot(
                node, opset,
                "before opset 11 Resize takes scales only and samples at floor(out / scale) (asymmetric, nearest_mode "
                    + "floor, or linear)")
        }
        node.attributes = ["mode": .string(mode)]
        if opset >= 10 {
            node.inputs = [x, scales]
        } else if opset >= 9 {
            node.type = "Upsample"
            node.inputs = [x, scales]
        } else if opset >= 7 {
            guard let value = context.constant(scales) else {
                throw cannot(node, opset, "its scales must be a constant to become Upsample's attribute 'scales'")
            }
            node.type = "Upsample"
            node.inputs = [x]
            node.attributes["scales"] = .floats(value.doubles().map { Float($0) })
        } else {
            throw cannot(node, opset, "Upsample before opset 7 takes height and width scales only")
        }
        return node
    }
}
