import AidgeCore

/// A small valid node of one operator, with the dtype under test left open: `ONNX.supportedOperators` builds (and
/// runs) its kernel once per dtype to learn which dtypes a backend really takes.
struct OperatorProbe {
    /// One input: its shape, its dtype (the one under test, or a fixed one) and, where the operator reads it
    /// while planning (shapes, axes, sizes), its values.
    struct Input {
        enum DTypeRule { case probed, fixed(DType) }
        var shape: [Int]
        var dtype: DTypeRule
        var values: [Double]?

        func dtype(probing d: DType) -> DType {
            if case .fixed(let fixed) = dtype { return fixed }
            return d
        }

        /// The input under test, values unknown.
        static func x(_ shape: [Int]) -> Input { Input(shape: shape, dtype: .probed, values: nil) }
        /// The input under test with known values.
        static func x(_ shape: [Int], _ values: [Double]) -> Input { Input(shape: shape, dtype: .probed, values: values) }
        /// A known int64 input (shapes, axes, indices).
        static func int64(_ shape: [Int], _ values: [Double]) -> Input {
            Input(shape: shape, dtype: .fixed(.int64), values: values)
        }
        /// A known float32 input (scales).
        static func float(_ shape: [Int], _ values: [Double]) -> Input {
            Input(shape: shape, dtype: .fixed(.float32), values: values)
        }
    }

    var inputs: [Input?]
    /// The attributes, which may depend on the dtype under test.
    var attributes: @Sendable (DType) -> Attributes = { _ in [:] }
    init(_ inputs: [Input?], attributes: @escaping @Sendable (DType) -> Attributes = { _ in [:] }) {
        self.inputs = inputs
        self.attributes = attributes
    }

    init(_ inputs: [Input?], _ fixed: Attributes) {
        self.init(inputs, attributes: { _ in fixed })
    }
}

extension OperatorProbe {
    /// The probes of the operators whose nodes need particular shapes, attributes or known inputs (by engine
    /// type). Others are probed generically (`generic`).
    static let table: [String: OperatorProbe] = {
        typealias I = Input
        let image: [Int] = [1, 1, 3, 3]
        var t: [String: OperatorProbe] = [:]
        t["Conv"] = OperatorProbe([.x(image), .x([1, 1, 2, 2])], [:])
        t["ConvTranspose"] = OperatorProbe([.x(image), .x([1, 1, 2, 2])], [:])
        for pool in ["AveragePool", "MaxPool", "LpPool"] {
            t[pool] = OperatorProbe([.x(image)], ["kernel_shape": .ints([2, 2])])
        }
        t["GlobalAveragePool"] = OperatorProbe([.x(image)], [:])
        t["GlobalMaxPool"] = OperatorProbe([.x(image)], [:])
        t["MaxUnpool"] = OperatorProbe(
            [.x([1, 1, 2, 2]), .int64([1, 1, 2, 2], [0, 3, 8, 15])], ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])])
        t["BatchNormalization"] = OperatorProbe([.x([1, 2, 3, 3]), .x([2]), .x([2]), .x([2]), .x([2], [1, 1])], [:])
        t["InstanceNormalization"] = OperatorProbe([.x([1, 2, 3]), .x([2]), .x([2])], [:])
        t["LayerNormalization"] = OperatorProbe([.x([2, 3]), .x([3]), .x([3])], [:])
        t["RMSNormalization"] = OperatorProbe([.x([2, 3]), .x([3])], [:])
        t["GroupNormalization"] = OperatorProbe([.x([1, 2, 3]), .x([2]), .x([2])], ["num_groups": .int(1)])
        t["LRN"] = OperatorProbe([.x([1, 2, 3, 3])], ["size": .int(1)])
        t["MeanVarianceNormalization"] = OperatorProbe([.x([1, 2, 3, 3])], [:])
        t["Gemm"] = OperatorProbe([.x([2, 3]), .x([3, 2])], [:])
        t["MatMul"] = OperatorProbe([.x([2, 3]), .x([3, 2])], [:])
        t["MatMulInteger"] = OperatorProbe([.x([2, 3]), .x([3, 2])], [:])
        t["QLinearMatMul"] = OperatorProbe(
            [.x([2, 3]), .float([], [1]), .x([], [0]), .x([3, 2]), .float([], [1]), .x([], [0]), .float([], [1]), .x([], [0])],
            [:])
        t["Det"] = OperatorProbe([.x([2, 2])], [:])
        t["Einsum"] = OperatorProbe([.x([2, 3]), .x([3, 2])], ["equation": .string("ij,jk->ik")])
        t["Reshape"] = OperatorProbe([.x([2, 3]), .int64([2], [3, 2])], [:])
        t["Expand"] = OperatorProbe([.x([2, 1]), .int64([2], [2, 3])], [:])
        t["Tile"] = OperatorProbe([.x([2, 3]), .int64([2], [1, 2])], [:])
        t["Slice"] = OperatorProbe([.x([2, 3]), .int64([1], [0]), .int64([1], [1])], [:])
        t["Squeeze"] = OperatorProbe([.x([1, 3]), .int64([1], [0])], [:])
        t["Unsqueeze"] = OperatorProbe([.x([2, 3]), .int64([1], [0])], [:])
        t["Split"] = OperatorProbe([.x([2, 4])], ["axis": .int(1), "num_outputs": .int(2)])
        t["Concat"] = OperatorProbe([.x([2, 3]), .x([2, 3])], ["axis": .int(0)])
        t["Pad"] = OperatorProbe([.x([2, 3]), .int64([4], [0, 1, 0, 1])], [:])
        t["CenterCropPad"] = OperatorProbe([.x([2, 3]), .int64([2], [2, 2])], [:])
        t["Resize"] = OperatorProbe([.x([1, 1, 2, 2]), nil, .float([4], [1, 1, 2, 2])], [:])
        t["Upsample"] = OperatorProbe([.x([1, 1, 2, 2]), .float([4], [1, 1, 2, 2])], [:])
        t["GatherND"] = OperatorProbe([.x([2, 3]), .int64([2, 1], [0, 1])], [:])
        t["ScatterND"] = OperatorProbe([.x([2, 3]), .int64([2, 1], [0, 1]), .x([2, 3])], [:])
        t["TopK"] = OperatorProbe([.x([2, 3]), .int64([1], [2])], [:])
        t["OneHot"] = OperatorProbe([.x([2]), .int64([], [3]), .float([2], [0, 1])], [:])
        t["Range"] = OperatorProbe([.x([], [0]), .x([], [3]), .x([], [1])], [:])
        t["ConstantOfShape"] = OperatorProbe([.int64([2], [2, 3])], [:])
        t["CumSum"] = OperatorProbe([.x([2, 3]), .int64([], [0])], [:])
        t["CumProd"] = OperatorProbe([.x([2, 3]), .int64([], [0])], [:])
        t["ReverseSequence"] = OperatorProbe([.x([2, 3]), .int64([3], [1, 2, 1])], [:])
        t["SpaceToDepth"] = OperatorProbe([.x([1, 1, 2, 2])], ["blocksize": .int(2)])
        t["DepthToSpace"] = OperatorProbe([.x([1, 4, 1, 1])], ["blocksize": .int(2)])
        t["DFT"] = OperatorProbe([.x([1, 4, 1])], [:])
        t["STFT"] = OperatorProbe([.x([1, 8, 1]), .int64([], [2]), nil, .int64([], [4])], [:])
        for window in ["HannWindow", "HammingWindow", "BlackmanWindow"] {
            t[window] = OperatorProbe([.x([], [4])], [:])
        }
        t["MelWeightMatrix"] = OperatorProbe(
            [.x([], [2]), .x([], [8]), .x([], [8000]), .float([], [0]), .float([], [4000])], [:])
        t["GridSample"] = OperatorProbe([.x([1, 1, 2, 2]), .x([1, 2, 2, 2])], [:])
        t["AffineGrid"] = OperatorProbe([.x([1, 2, 3]), .int64([4], [1, 1, 2, 2])], [:])
        t["Col2Im"] = OperatorProbe([.x([1, 4, 4]), .int64([2], [3, 3]), .int64([2], [2, 2])], [:])
        t["Attention"] = OperatorProbe([.x([1, 1, 2, 4]), .x([1, 1, 2, 4]), .x([1, 1, 2, 4])], [:])
        t["RotaryEmbedding"] = OperatorProbe([.x([1, 1, 2, 4]), .x([2, 2]), .x([2, 2]), .int64([1, 2], [0, 1])], [:])
        t["LSTM"] = OperatorProbe([.x([1, 1, 2]), .x([1, 4, 2]), .x([1, 4, 1])], ["hidden_size": .int(1)])
        t["GRU"] = OperatorProbe([.x([1, 1, 2]), .x([1, 3, 2]), .x([1, 3, 1])], ["hidden_size": .int(1)])
        t["RNN"] = OperatorProbe([.x([1, 1, 2]), .x([1, 1, 2]), .x([1, 1, 1])], ["hidden_size": .int(1)])
        t["NegativeLogLikelihoodLoss"] = OperatorProbe([.x([2, 3]), .int64([2], [0, 1])], [:])
        t["SoftmaxCrossEntropyLoss"] = OperatorProbe([.x([2, 3]), .int64([2], [0, 1])], [:])
        t["DequantizeLinear"] = OperatorProbe([.x([2, 3]), .float([], [1])], [:])
        t["QuantizeLinear"] = OperatorProbe([.x([2, 3]), .x([], [1])], [:])
        t["Mod"] = OperatorProbe([.x([2, 3]), .x([2, 3])]) { d in ["fmod": .int(d.isFloatingPoint ? 1 : 0)] }
        t["BitShift"] = OperatorProbe([.x([2, 3]), .x([2, 3])], ["direction": .string("LEFT")])
        t["Cast"] = OperatorProbe([.x([2, 3])], ["to": .int(DType.float32.onnxDataType)])
        t["BitCast"] = OperatorProbe([.x([2, 3])]) { d in ["to": .int(d.onnxDataType)] }
        // Output shapes decided by the values: the inputs are known.
        t["NonZero"] = OperatorProbe([.x([2, 3], [1, 0, 1, 0, 1, 1])], [:])
        t["Compress"] = OperatorProbe(
            [.x([2, 3], [1, 2, 3, 4, 5, 6]), Input(shape: [2], dtype: .fixed(.bool), values: [1, 0])], ["axis": .int(0)])
        t["Unique"] = OperatorProbe([.x([4], [1, 2, 1, 3])], [:])
        t["NonMaxSuppression"] = OperatorProbe(
            [.x([1, 2, 4], [0, 0, 1, 1, 0, 0, 1, 1]), .x([1, 1, 2], [0.9, 0.8]), .int64([1], [2]), .float([1], [0.5])],
            [:])
        t["QLinearConv"] = OperatorProbe(
            [.x(image), .float([], [1]), .x([], [0]), .x([1, 1, 2, 2]), .float([], [1]), .x([], [0]), .float([], [1]), .x([], [0])],
            [:])
        t["RoiAlign"] = OperatorProbe([.x([1, 1, 4, 4]), .x([1, 4], [0, 0, 2, 2]), .int64([1], [0])], [:])
        t["CausalConvWithState"] = OperatorProbe([.x([1, 1, 4]), .x([1, 1, 2])], [:])
        t["DeformConv"] = OperatorProbe([.x(image), .x([1, 1, 2, 2]), .x([1, 8, 2, 2])], [:])
        t["TfIdfVectorizer"] = OperatorProbe(
            [.x([4])],
            [
                "mode": .string("TF"), "min_gram_length": .int(1), "max_gram_length": .int(1), "max_skip_count": .int(0),
                "ngram_counts": .ints([0]), "ngram_indexes": .ints([0]), "pool_int64s": .ints([1]),
            ])
        t["Constant"] = OperatorProbe([]) { d in ["value": .tensor(Tensor(zeros: [2], dtype: d))] }
        return t
    }()

    /// Probes for an operator that needs nothing particular: its required inputs all of one small shape, the
    /// inputs that share the tested input's type parameter of the tested dtype, the others of the first dtype
    /// their ONNX type constraint allows (int64 and float32 preferred).
    static func generic(schema: OperatorSchema, onnx: ONNXOperatorSchema, probedInput: Int) -> [OperatorProbe] {
        let count = onnx.inputs.isEmpty ? 0 : max(schema.minInputs, 1)
        let probedParameter = onnx.formalInput(at: probedInput)?.typeParameter
        return [[2, 4], [1, 2, 4, 4]].map { shape in
            let inputs: [Input?] = (0..<count).map { i in
                let parameter = onnx.formalInput(at: i)?.typeParameter
                if i == probedInput || (parameter != nil && parameter == probedParameter) { return .x(shape) }
                let allowed = onnx.elementTypes(input: i).compactMap(ONNXOperatorSchema.dtype(onnxName:))
                let dtype = [DType.int64, .float32].first(where: allowed.contains) ?? allowed.first ?? .float32
                return Input(shape: shape, dtype: .fixed(dtype), values: nil)
            }
            return OperatorProbe(inputs, [:])
        }
    }
}
