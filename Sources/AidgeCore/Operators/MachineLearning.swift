/// Classic machine-learning operators: TfIdfVectorizer (default domain) and, from the ai.onnx.ml domain (engine
/// types carry the domain as a prefix, as the importer names them), Binarizer, ArrayFeatureExtractor and
/// TreeEnsemble. Strings are not engine tensors: only the numeric forms are defined.
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
        OperatorSchema("ai.onnx.ml.Binarizer", inputs: ["X"]) { _, inputs in
            let x = try inputs.required(0)
            try expect(x, in: [.float32, .float64, .int32, .int64], "Binarizer X")
            return [ValueInfo(dtype: x.dtype, shape: x.shape)]
        },
        // Y selects entries of X's last axis; a 1-D X is read as one row (as ONNX Runtime does).
        OperatorSchema("ai.onnx.ml.ArrayFeatureExtractor", inputs: ["X", "Y"]) { _, inputs in
            let x = try inputs.required(0)
            let indices = try inputs.required(1)
            try expect(x, in: [.float32, .float64, .int32, .int64], "ArrayFeatureExtractor X")
            try expect(indices, in: [.int64], "ArrayFeatureExtractor Y")
            guard let last = x.shape.last else {
                throw AidgeError.shapeMismatch("ArrayFeatureExtractor X must have at least one dimension, got a scalar")
            }
            if let known = indices.value, let bad = known.integers().first(where: { $0 < 0 || $0 >= last }) {
                throw AidgeError.invalidArgument(
                    "ArrayFeatureExtractor index \(bad) is out of range for X's last axis (size \(last))")
            }
            let outer = x.shape.count == 1 ? [1] : Array(x.shape.dropLast())
            return [ValueInfo(dtype: x.dtype, shape: outer + [indices.count])]
        },
        OperatorSchema("ai.onnx.ml.TreeEnsemble", inputs: ["X"]) { attributes, inputs in
            let x = try inputs.required(0)
            try expect(x, in: [.float32, .float64, .float16], "TreeEnsemble X")
            guard x.shape.count == 2 else {
                throw AidgeError.shapeMismatch("TreeEnsemble X must be (N, features), got shape \(ShapeUtil.text(x.shape))")
            }
            let forest = try TreeEnsembleForest(attributes, features: x.shape[1])
            return [ValueInfo(dtype: x.dtype, shape: [x.shape[0], forest.targets])]
        },
    ]
}
