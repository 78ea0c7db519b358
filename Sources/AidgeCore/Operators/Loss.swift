/// Losses as graph operators (ONNX's NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss): scores of shape
/// (N, C, d1, ...) against integer targets of shape (N, d1, ...), optional per-class weights, and a reduction.

/// How a loss operator reduces its per-element losses.
public enum LossReduction: String, Sendable {
    /// One loss per target element.
    case none
    case sum
    /// Divided by the summed weights of the targets that count (their number without weights).
    case mean
}

extension OperatorSchema {
    static let lossSchemas: [OperatorSchema] = [
        OperatorSchema(
            "NegativeLogLikelihoodLoss", inputs: ["input", "target", "weight"], minInputs: 2,
            nonDifferentiable: [1, 2]) { attributes, inputs in
            Array(try lossInference(attributes, inputs).prefix(1))
        },
        // loss, and the log-probabilities (log_softmax of the scores along axis 1) when the node asks for them.
        OperatorSchema(
            "SoftmaxCrossEntropyLoss", inputs: ["scores", "labels", "weights"], minInputs: 2, outputs: 2,
            nonDifferentiable: [1, 2], infer: lossInference),
    ]

    /// The `reduction` attribute of a loss operator.
    public static func lossReduction(_ attributes: Attributes) throws -> LossReduction {
        let name = try attributes.string("reduction", default: "mean")
        guard let reduction = LossReduction(rawValue: name) else {
            throw AidgeError.invalidModel("reduction must be none, sum or mean, got \"\(name)\"")
        }
        return reduction
    }

    static let lossInference: Inference = { attributes, inputs in
        let scores = try inputs.required(0)
        let target = try inputs.required(1)
        try expect(scores, in: floatTypes, "scores")
        try expect(target, in: [.int32, .int64], "target")
        guard scores.shape.count >= 2 else {
            throw AidgeError.shapeMismatch("the scores must have shape (N, C, ...), got \(scores.shape)")
        }
        var expected = scores.shape
        expected.remove(at: 1)
        guard target.shape == expected else {
            throw AidgeError.shapeMismatch(
                "the target must have shape \(expected) for scores of shape \(scores.shape), got \(target.shape)")
        }
        if let weight = inputs.optional(2) {
            guard weight.dtype == scores.dtype, weight.shape == [scores.shape[1]] else {
                throw AidgeError.shapeMismatch(
                    "the weights must be \(scores.dtype) of shape [\(scores.shape[1])], got \(weight.dtype) \(weight.shape)")
            }
        }
        let reduction = try lossReduction(attributes)
        let loss = ValueInfo(dtype: scores.dtype, shape: reduction == .none ? target.shape : [])
        return [loss, ValueInfo(dtype: scores.dtype, shape: scores.shape)]
    }
}
