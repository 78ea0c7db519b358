import AidgeCore

/// Loss functions with Aidge's semantics: each returns the loss (a 0-d tensor of the prediction's dtype) and adds
/// the loss's gradient to the prediction's gradient cell, which a recorded forward gave it, so that
/// `Scheduler.backward()` can start from there. A prediction without a cell (an unrecorded forward) only gets
/// the value.
public enum Loss {
    /// Mean squared error over all elements; gradient `2 (p - y) / N`.
    public static func mse(_ prediction: Tensor, _ target: Tensor) throws -> Tensor {
        try LossInputs(prediction, target, "MSE", sameShape: true).evaluate(MSE())
    }

    /// Binary cross-entropy of probabilities, mean over all elements; each log is clamped at -100 and the
    /// gradient's denominator at 1e-12, as PyTorch does.
    public static func bce(_ prediction: Tensor, _ target: Tensor) throws -> Tensor {
        try LossInputs(prediction, target, "BCE", sameShape: true).evaluate(BCE())
    }

    /// Binary cross-entropy on logits (numerically stable), mean over all elements; gradient
    /// `(sigmoid(x) - t) / N`.
    public static func bceWithLogits(_ prediction: Tensor, _ target: Tensor) throws -> Tensor {
        try LossInputs(prediction, target, "BCEWithLogits", sameShape: true).evaluate(BCEWithLogits())
    }

    /// Cross-entropy of logits `[N, C, d...]` against one-hot or probability targets of the same shape (Aidge's
    /// `CELoss`): the mean over `N · d...` of `-Σ_c target · log_softmax(pred)`; gradient
    /// `(softmax(pred) · Σ_c target - target) / (N · d...)`.
    public static func crossEntropy(_ logits: Tensor, probabilities target: Tensor) throws -> Tensor {
        let inputs = try LossInputs(logits, target, "CELoss", sameShape: true)
        return try inputs.evaluate(CrossEntropy(classes: try classCount(logits, "CELoss"), indices: nil))
    }

    /// Cross-entropy of logits `[N, C, d...]` against class indices `[N, d...]` (int32/int64), with PyTorch's
    /// `label_smoothing` and `ignore_index`: the mean over the targets that are not ignored.
    public static func crossEntropy(
        _ logits: Tensor, classIndices: Tensor, labelSmoothing: Double = 0, ignoreIndex: Int = -100
    ) throws -> Tensor {
        guard (0...1).contains(labelSmoothing) else {
            throw AidgeError.invalidArgument("cross-entropy: label smoothing must be in [0, 1], got \(labelSmoothing)")
        }
        let classes = try classCount(logits, "cross-entropy")
        var expected = logits.shape
        expected.remove(at: 1)
        guard classIndices.shape == expected else {
            throw AidgeError.shapeMismatch(
                "cross-entropy: class indices of shape \(ShapeUtil.text(classIndices.shape)) for logits of shape "
                    + "\(ShapeUtil.text(logits.shape)); expected \(ShapeUtil.text(expected))")
        }
        guard classIndices.dtype == .int64 || classIndices.dtype == .int32 else {
            throw AidgeError.unsupportedType("cross-entropy: class indices must be int64 or int32, got \(classIndices.dtype)")
        }
        let indices = classIndices.integers()
        if let bad = indices.first(where: { $0 != ignoreIndex && !(0..<classes).contains($0) }) {
            throw AidgeError.invalidArgument("cross-entropy: class index \(bad) is out of range for \(classes) classes")
        }
        let inputs = try LossInputs(logits, logits, "cross-entropy", sameShape: true)
        return try inputs.evaluate(
            CrossEntropy(
                classes: classes, indices: indices, smoothing: labelSmoothing, ignoreIndex: ignoreIndex))
    }

    private static func classCount(_ logits: Tensor, _ name: String) throws -> Int {
        guard logits.rank >= 2, logits.shape[1] > 0 else {
            throw AidgeError.shapeMismatch(
                "\(name): logits must have shape [N, C, ...] with C > 0, got \(ShapeUtil.text(logits.shape))")
        }
        return logits.shape[1]
    }
}

/// What every loss checks and computes in the prediction's float type.
struct LossInputs {
    let prediction: Tensor
    let target: Tensor

    init(_ prediction: Tensor, _ target: Tensor, _ name: String, sameShape: Bool) throws {
        guard prediction.dtype == .float32 || prediction.dtype == .float64 else {
            throw AidgeError.unsupportedType("\(name): predictions must be float32 or float64, got \(prediction.dtype)")
        }
        guard !sameShape || prediction.shape == target.shape else {
            throw AidgeError.shapeMismatch(
                "\(name): the target has shape \(ShapeUtil.text(target.shape)) but the prediction has shape "
                    + "\(ShapeUtil.text(prediction.shape))")
        }
        guard prediction.count > 0 else { throw AidgeError.invalidArgument("\(name): the prediction is empty") }
        self.prediction = prediction.contiguous()
        self.target = target.dtype == prediction.dtype ? target.contiguous() : target.cast(to: prediction.dtype)
    }

    /// Computes the loss and its gradient; adds the gradient to the prediction's cell.
    func evaluate<F: LossFunction>(_ function: F) throws -> Tensor {
        let gradient = Tensor(zeros: prediction.shape, dtype: prediction.dtype)
        let value: Double
        switch prediction.dtype {
        case .float32:
            value = function.evaluate(
                prediction.pointer(as: Float.self), target.pointer(as: Float.self), gradient.pointer(as: Float.self),
                prediction.shape)
        default:
            value = function.evaluate(
                prediction.pointer(as: Double.self), target.pointer(as: Double.self),
                gradient.pointer(as: Double.self), prediction.shape)
        }
        if let cell = prediction.gradient {
            if let existing = cell.tensor {
                try Gradients.accumulate(gradient, into: existing)
            } else {
                cell.tensor = gradient
            }
        }
        return prediction.dtype == .float32 ? Tensor(scalar: Float(value)) : Tensor(scalar: value)
    }
}

/// A loss: its value (accumulated in Double) and its gradient with respect to the prediction.
protocol LossFunction {
    func evaluate<T: BinaryFloatingPoint & Sendable>(
        _ p: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>, _ g: UnsafeMutablePointer<T>, _ shape: [Int]
    ) -> Double
}
