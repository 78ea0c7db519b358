/// ONNX's FlexAttention (domain ai.onnx.preview): softmax(score_mod(Q Kᵀ · scale)), then prob_mod, times V, over
/// rank-4 (batch, heads, sequence, head size) inputs whose query heads share key/value heads in groups. The
/// modifiers are subgraphs fed the whole score (or probability) tensor in the softmax precision; values they read
/// from the enclosing graph are the node's inputs from 3 on (see `Subgraph`).

/// The dimensions and precisions of one FlexAttention node (shared by the schema and the kernels).
public struct FlexAttentionLayout: Sendable {
    public let batch: Int
    public let queryHeads: Int
    public let kvHeads: Int
    public let querySequence: Int
    public let kvSequence: Int
    public let headSize: Int
    public let valueHeadSize: Int
    /// The factor of Q Kᵀ: the scale attribute, else 1/√head size.
    public let scale: Double
    /// The element type of the softmax and of the tensors the modifiers see (softmax_precision; by default
    /// float64 for float64 inputs, float32 for the others).
    public let softmaxType: DType
    /// The modifier attributes, in the order they apply.
    public static let modifiers = ["score_mod", "prob_mod"]
    /// The first of the node's inputs that its subgraphs read from the enclosing graph.
    public static let capturedStart = 3

    /// (batch, query heads, query length, key length): the scores and probabilities.
    public var scoreShape: [Int] { [batch, queryHeads, querySequence, kvSequence] }
    public var outputShape: [Int] { [batch, queryHeads, querySequence, valueHeadSize] }

    public init(_ attributes: Attributes, _ inputs: [ValueInfo?]) throws {
        let q = try inputs.required(0)
        let k = try inputs.required(1)
        let v = try inputs.required(2)
        try OperatorSchema.expect(q, in: OperatorSchema.floatTypes, "FlexAttention Q")
        guard k.dtype == q.dtype, v.dtype == q.dtype else {
            throw AidgeError.unsupportedType(
                "FlexAttention Q, K and V must share one dtype, got \(q.dtype), \(k.dtype) and \(v.dtype)")
        }
        guard q.shape.count == 4, k.shape.count == 4, v.shape.count == 4 else {
            throw AidgeError.shapeMismatch(
                "FlexAttention takes rank-4 Q, K and V (batch, heads, sequence, head size), got "
                    + "\(ShapeUtil.text(q.shape)), \(ShapeUtil.text(k.shape)) and \(ShapeUtil.text(v.shape))")
        }
        (batch, queryHeads, querySequence, headSize) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        (kvHeads, kvSequence, valueHeadSize) = (k.shape[1], k.shape[2], v.shape[3])
        guard k.shape[0] == batch, v.shape[0] == batch else {
            throw AidgeError.shapeMismatch(
                "FlexAttention Q, K and V differ in batch: \(ShapeUtil.text(q.shape)), \(ShapeUtil.text(k.shape)), "
                    + "\(ShapeUtil.text(v.shape))")
        }
        guard k.shape[3] == headSize else {
            throw AidgeError.shapeMismatch(
                "FlexAttention Q and K head sizes differ: Q \(ShapeUtil.text(q.shape)), K \(ShapeUtil.text(k.shape))")
        }
        guard v.shape[1] == kvHeads, v.shape[2] == kvSequence else {
            throw AidgeError.shapeMismatch(
                "FlexAttention K and V differ in heads or length: K \(ShapeUtil.text(k.shape)), "
                    + "V \(ShapeUtil.text(v.shape))")
        }
        guard kvHeads > 0, queryHeads % kvHeads == 0 else {
            throw AidgeError.shapeMismatch(
                "FlexAttention needs query heads (\(queryHeads)) a multiple of key/value heads (\(kvHeads))")
        }
        scale = attributes.has("scale") ? Double(try attributes.float("scale")) : 1 / Double(headSize).squareRoot()
        if attributes.has("softmax_precision") {
            let code = try attributes.int("softmax_precision")
            guard let dtype = DType(onnx: code), OperatorSchema.floatTypes.contains(dtype) else {
                throw AidgeError.invalidModel(
                    "FlexAttention softmax_precision \(code) is not a float type (1 float, 10 float16, 11 double, "
                        + "16 bfloat16)")
            }
            softmaxType = dtype
        } else {
            softmaxType = q.dtype == .float64 ? .float64 : .float32
        }
    }

    /// The modifier subgraph `name` when the node has one: it must take one input (the node's captured values
    /// follow it).
    public func modifier(_ name: String, _ attributes: Attributes) throws -> Subgraph? {
        guard attributes.has(name) else { return nil }
        let subgraph = try attributes.subgraph(name)
        guard subgraph.formalInputCount == 1 else {
            throw AidgeError.invalidModel(
                "FlexAttention \(name) must take one input (the \(name == "prob_mod" ? "probabilities" : "scores")), "
                    + "it takes \(subgraph.formalInputCount)")
        }
        return subgraph
    }

    /// Checks what modifier `name` gives: one tensor of the dtype and shape it was fed.
    public func checkModifier(_ name: String, gives outputs: [(dtype: DType, shape: [Int])]) throws {
        guard outputs.count == 1, outputs[0].dtype == softmaxType, outputs[0].shape == scoreShape else {
            let given = outputs.map { "\($0.dtype) \(ShapeUtil.text($0.shape))" }.joined(separator: ", ")
            throw AidgeError.shapeMismatch(
                "FlexAttention \(name) must give one \(softmaxType) tensor of shape \(ShapeUtil.text(scoreShape)), "
                    + "as it is fed; it gives \(outputs.isEmpty ? "nothing" : given)")
        }
    }
}

extension OperatorSchema {
    static let flexAttentionSchemas: [OperatorSchema] = [
        OperatorSchema(
            "ai.onnx.preview.FlexAttention", inputs: ["Q", "K", "V", "captured"], minInputs: 3, variadic: true
        ) { attributes, inputs in
            let layout = try FlexAttentionLayout(attributes, inputs)
            let captured = try ControlFlowInference.captured(inputs, from: FlexAttentionLayout.capturedStart)
            let fed = ValueInfo(dtype: layout.softmaxType, shape: layout.scoreShape)
            for name in FlexAttentionLayout.modifiers {
                guard let subgraph = try layout.modifier(name, attributes) else { continue }
                let outputs: [ValueInfo]
                do {
                    outputs = try ControlFlowInference.outputs(subgraph, [fed] + captured)
                } catch let error as AidgeError {
                    throw error.prefixed("FlexAttention \(name)")
                }
                try layout.checkModifier(name, gives: outputs.map { ($0.dtype, $0.shape) })
            }
            return [ValueInfo(dtype: try inputs.required(0).dtype, shape: layout.outputShape)]
        }
    ]
}
