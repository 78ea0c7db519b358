/// Matrix products: Gemm (ONNX's general matrix multiply with optional transposes and a broadcast C) and MatMul
/// (NumPy `matmul`: 1-D operands promoted, batch dimensions broadcast), and Det (determinants of square matrices).
extension OperatorSchema {
    static let linearSchemas: [OperatorSchema] = [
        OperatorSchema("Gemm", inputs: ["A", "B", "C"], minInputs: 2, infer: gemmInference),
        OperatorSchema("MatMul", inputs: ["A", "B"], infer: matMulInference),
        // The determinant of each (…, M, M) matrix.
        OperatorSchema("Det", inputs: ["X"]) { _, inputs in
            let x = try inputs.required(0)
            try expect(x, in: floatTypes, "X")
            guard x.shape.count >= 2, x.shape[x.shape.count - 1] == x.shape[x.shape.count - 2] else {
                throw AidgeError.shapeMismatch("Det needs square matrices (…, M, M), got shape \(x.shape)")
            }
            return [ValueInfo(dtype: x.dtype, shape: Array(x.shape.dropLast(2)))]
        },
        OperatorSchema("Linear", inputs: ["X", "W", "B"], minInputs: 2, infer: linearInference),
    ]

    /// The engine's own `Linear` (not an ONNX operator; `Recipes.fuseLinear` makes it): Y = X Wᵀ + B over the last
    /// axis of X, as PyTorch's `nn.functional.linear`: X (..., K), W (N x K), B (N), Y (..., N).
    static let linearInference: Inference = { _, inputs in
        let x = try inputs.required(0)
        let w = try inputs.required(1)
        let dtype = try sameDType(inputs)
        try expect(x, in: [.float32, .float64], "X")
        guard let k = x.shape.last, w.shape.count == 2, w.shape[1] == k else {
            throw AidgeError.shapeMismatch(
                "Linear needs X (..., K) and W (N x K), got \(ShapeUtil.text(x.shape)) and \(ShapeUtil.text(w.shape))")
        }
        if let b = inputs.optional(2), b.shape != [w.shape[0]] {
            throw AidgeError.shapeMismatch("Linear bias of shape \(ShapeUtil.text(b.shape)) must have \(w.shape[0]) values")
        }
        return [ValueInfo(dtype: dtype, shape: x.shape.dropLast() + [w.shape[0]])]
    }

    /// The element types matrix products take.
    public static let matrixTypes: Set<DType> = [.float32, .float64, .float16, .bfloat16, .int32, .int64, .uint32, .uint64]

    /// Y (M x N) = alpha * op(A) * op(B) + beta * C; C is unidirectionally broadcastable to M x N.
    static let gemmInference: Inference = { attributes, inputs in
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        let dtype = try sameDType(inputs)
        try expect(a, in: matrixTypes, "A")
        guard a.shape.count == 2, b.shape.count == 2 else {
            throw AidgeError.shapeMismatch(
                "A and B must be matrices, got shapes \(ShapeUtil.text(a.shape)) and \(ShapeUtil.text(b.shape))")
        }
        let transA = try attributes.int("transA", default: 0) != 0
        let transB = try attributes.int("transB", default: 0) != 0
        let (m, ka) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kb, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard ka == kb else {
            throw AidgeError.shapeMismatch(
                "inner dimensions differ: A \(ShapeUtil.text(a.shape))\(transA ? " (transposed)" : "") gives K = \(ka), "
                    + "B \(ShapeUtil.text(b.shape))\(transB ? " (transposed)" : "") gives K = \(kb)")
        }
        if let c = inputs.optional(2) {
            guard c.shape.count <= 2,
                zip(c.shape.reversed(), [n, m]).allSatisfy({ $0 == $1 || $0 == 1 })
            else {
                throw AidgeError.shapeMismatch(
                    "C of shape \(ShapeUtil.text(c.shape)) cannot be broadcast to the output \(m)x\(n)")
            }
        }
        return [ValueInfo(dtype: dtype, shape: [m, n])]
    }

    /// NumPy matmul shapes: `(batch..., M, K) x (batch..., K, N) -> (broadcast batch..., M, N)`; a 1-D A is a row
    /// vector and a 1-D B a column vector, and their dimension is dropped from the result.
    static let matMulInference: Inference = { _, inputs in
        let a = try inputs.required(0)
        let b = try inputs.required(1)
        let dtype = try sameDType(inputs)
        try expect(a, in: matrixTypes, "A")
        let shape = try matMulShape(a.shape, b.shape)
        return [ValueInfo(dtype: dtype, shape: shape.output)]
    }

    /// The parts of a NumPy matmul: batch shapes of A and B (before broadcasting), M, K, N, and the output shape.
    public struct MatMulShape: Sendable {
        public var batchA: [Int]
        public var batchB: [Int]
        public var batch: [Int]
        public var m: Int
        public var k: Int
        public var n: Int
        public var output: [Int]
    }

    public static func matMulShape(_ a: [Int], _ b: [Int]) throws -> MatMulShape {
        guard !a.isEmpty, !b.isEmpty else {
            throw AidgeError.shapeMismatch(
                "MatMul operands must have at least one dimension, got \(ShapeUtil.text(a)) and \(ShapeUtil.text(b))")
        }
        let a2 = a.count == 1 ? [1, a[0]] : a
        let b2 = b.count == 1 ? [b[0], 1] : b
        let m = a2[a2.count - 2]
        let ka = a2[a2.count - 1]
        let kb = b2[b2.count - 2]
        let n = b2[b2.count - 1]
        guard ka == kb else {
            throw AidgeError.shapeMismatch(
                "inner dimensions differ: A \(ShapeUtil.text(a)) has K = \(ka), B \(ShapeUtil.text(b)) has K = \(kb)")
        }
        let batchA = Array(a2.dropLast(2))
        let batchB = Array(b2.dropLast(2))
        let batch: [Int]
        do {
            batch = try ShapeUtil.broadcast(batchA, batchB)
        } catch {
            throw AidgeError.shapeMismatch(
                "batch dimensions of A \(ShapeUtil.text(a)) and B \(ShapeUtil.text(b)) cannot be broadcast together")
        }
        var output = batch
        if a.count > 1 { output.append(m) }
        if b.count > 1 { output.append(n) }
        return MatMulShape(batchA: batchA, batchB: batchB, batch: batch, m: m, k: ka, n: n, output: output)
    }
}
