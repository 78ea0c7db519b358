@preconcurrency import CPython
import Aidge

/// `loss(kind, prediction, target, label_smoothing=0.0, ignore_index=-100)`: 'mse', 'bce', 'bce_with_logits',
/// 'ce' (probability targets) or 'ce_indices' (class indices); returns the loss and seeds the prediction's gradient.
let lossFunction: KeywordFunction = { _, args, kwargs in
    pyCall {
        let a = try Arguments(
            args, kwargs, names: ["kind", "prediction", "target", "label_smoothing", "ignore_index"], required: 3,
            function: "loss")
        let kind = try stringValue(try a.required("kind"), "kind")
        let prediction = try TensorType.unwrap(try a.required("prediction"), "prediction")
        let target = try TensorType.unwrap(try a.required("target"), "target")
        let smoothing = try a["label_smoothing"].map { try floatValue($0, "label_smoothing") } ?? 0
        let ignoreIndex = try a["ignore_index"].map { try intValue($0, "ignore_index") } ?? -100
        let value: Tensor = try withoutGIL {
            switch kind {
            case "mse": return try Loss.mse(prediction, target)
            case "bce": return try Loss.bce(prediction, target)
            case "bce_with_logits": return try Loss.bceWithLogits(prediction, target)
            case "ce": return try Loss.crossEntropy(prediction, probabilities: target)
            case "ce_indices":
                return try Loss.crossEntropy(
                    prediction, classIndices: target, labelSmoothing: smoothing, ignoreIndex: ignoreIndex)
            default: throw PythonError.value("unknown loss '\(kind)'")
            }
        }
        return try TensorType.wrap(value)
    }
}
