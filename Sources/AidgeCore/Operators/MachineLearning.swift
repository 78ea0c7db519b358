/// Classic machine-learning operators: TfIdfVectorizer. Strings are not engine tensors: only the numeric forms
/// are defined.
extension OperatorSchema {
    static let machineLearningSchemas: [OperatorSchema] = [
        OperatorSchema("TfIdfVectorizer", inputs: ["X"]) { attributes, inputs in
            let x = try inputs.required(0)
            try expect(x, in: [.int32, .int64], "TfIdfVectorizer X")
            let ngrams = try NGramPool(attributes)
            switch x.shape.count {
            case 0, 1: return [ValueInfo(dtype: .float32, shape: [ngrams.outputSize])]
            case 2: return [ValueInfo(dtype: .float32, shape: [x.shape[0], ngrams.outputSize])]
            default:
                throw AidgeError.shapeMismatch("TfIdfVectorizer X must be (C) or (N, C), got shape \(ShapeUtil.text(x.shape))")
            }
        },
    ]
}
