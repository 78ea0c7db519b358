import AidgeCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ONNX Attention on the float types, one query row at a time: scores in double against the whole key cache
/// (past then present keys), bias from the mask, causal and window limits and padding lengths, a softmax that gives
/// zeros for a row whose bias masks every key, then the weighted sum of the values. Query heads share key/value
/// heads in groups (grouped-query attention).
func registerAttentionKernels(_ registry: KernelRegistry) {
    registry.register("Attention", backend: "cpu") { try makeKernel(AttentionFamily(), $0) }
}

private struct AttentionFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try AttentionKernel<T>(request)
    }
}

private final class AttentionKernel<T: MathFloat>: Kernel {
    let layout: AttentionLayout
    let scale: Double
    let softcap: Double
    let causal: Bool
    let leftWindow: Int
    let rightWindow: Int
    let mode: Int
    /// The mask as doubles (converted each run) and its strides over (batch, head, query, key); nil: no mask.
    let mask: (values: Tensor, strides: [Int], keys: Int, isBool: Bool)?
    /// The key and value caches when the node does not output them.
    let keyScratch: Tensor
    let valueScratch: Tensor

    init(_ request: KernelRequest) throws {
        layout = try AttentionLayout(request.attributes, request.inputs)
        let attributes = request.attributes
        scale = attributes.has("scale")
            ? Double(try attributes.float("scale")) : 1 / Double(layout.headSize).squareRoot()
        softcap = Double(try attributes.float("softcap", default: 0))
        causal = try attributes.int("is_causal", default: 0) != 0
        leftWindow = try attributes.int("left_window_size", default: -1)
        rightWindow = try attributes.int("right_window_size", default: -1)
        mode = try attributes.int("qk_matmul_output_mode", default: 0)
        if let info = request.inputs.count > 3 ? request.inputs[3] : nil {
            let full = [layout.batch, layout.queryHeads, layout.querySequence, info.shape.last ?? 1]
            let aligned = [Int](repeating: 1, count: 4 - info.shape.count) + info.shape
            let contiguous = ShapeUtil.contiguousStrides(aligned)
            let strides = (0..<4).map { aligned[$0] == 1 && full[$0] != 1 ? 0 : contiguous[$0] }
            mask = (Tensor(zeros: info.shape, dtype: .float64), strides, info.shape.last ?? 1, info.dtype == .bool)
        } else {
            mask = nil
        }
        let total = layout.totalSequence
        keyScratch = Tensor(zeros: [layout.batch, layout.kvHeads, total, layout.headSize], dtype: T.dtype)
        valueScratch = Tensor(zeros: [layout.batch, layout.kvHeads, total, layout.valueHeadSize], dtype: T.dtype)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let q = try presentInput(inputs, 0).pointer(as: T.self)
        let keys = outputs.count > 1 ? outputs[1] : keyScratch
        let values = outputs.count > 2 ? outputs[2] : valueScratch
        try fillCache(keys, past: inputs.count > 4 ? inputs[4] : nil, new: try presentInput(inputs, 1),
                      headSize: layout.headSize)
        try fillCache(values, past: inputs.count > 5 ? inputs[5] : nil, new: try presentInput(inputs, 2),
                      headSize: layout.valueHeadSize)
        if let mask, let source = inputs.count > 3 ? inputs[3] : nil {
            castElements(source.rawPointer, source.dtype, mask.values.rawPointer, .float64, source.count)
        }
        let lengths = inputs.count > 6 ? inputs[6]?.pointer(as: Int64.self) : nil
        let k = keys.pointer(as: T.self)
        let v = values.pointer(as: T.self)
        let y = try firstOutput(outputs).pointer(as: T.self)
        let scores = outputs.count > 3 ? outputs[3].pointer(as: T.self) : nil
        let l = layout
        let total = l.totalSequence
        let rows = l.batch * l.queryHeads * l.querySequence
        let rootScale = Double(T(scale.squareRoot()))
        Parallel.forEach(rows, grain: max(1, 4096 / max(total * l.headSize, 1))) { range in
            var logits = [Double](repeating: 0, count: total)
            var bias = [Double](repeating: 0, count: total)
            var sum = [Double](repeating: 0, count: l.valueHeadSize)
            for row in range {
                let i = row % l.querySequence
                let h = (row / l.querySequence) % l.queryHeads
                let b = row / (l.querySequence * l.queryHeads)
                let kvHead = h / (l.queryHeads / l.kvHeads)
                let qBase = l.packed
                    ? (b * l.querySequence + i) * l.queryHeads * l.headSize + h * l.headSize
                    : row * l.headSize
                let kBase = (b * l.kvHeads + kvHead) * total
                rowBias(&bias, b: b, h: h, i: i, lengths: lengths)
                // Q and K each scaled by √scale and the scores rounded in the input's precision, as ONNX defines
                // them (float16 results depend on it).
                for j in 0..<total {
                    var dot: Double = 0
                    let kRow = (kBase + j) * l.headSize
                    for d in 0..<l.headSize {
                        dot += Double(T(Double(q[qBase + d]) * rootScale)) * Double(T(Double(k[kRow + d]) * rootScale))
                    }
                    var s = Double(T(dot))
                    if softcap > 0 { s = Double(T(softcap * tanh(s / softcap))) }
                    logits[j] = s
                    if let scores, mode <= 1 { scores[row * total + j] = T(s) }
                }
                // Softmax of logits + bias; zeros when the bias masks every key.
                var top = -Double.infinity
                for j in 0..<total {
                    logits[j] = Double(T(logits[j] + bias[j]))
                    if let scores, mode == 2 { scores[row * total + j] = T(logits[j]) }
                    top = max(top, logits[j])
                }
                let masked = bias.allSatisfy { $0 == -.infinity }
                var denominator: Double = 0
                for j in 0..<total {
                    logits[j] = masked || top == -.infinity ? 0 : Double(T(exp(logits[j] - top)))
                    denominator += logits[j]
                }
                denominator = Double(T(denominator))
                for d in 0..<l.valueHeadSize { sum[d] = 0 }
                for j in 0..<total {
                    let p = denominator > 0 ? logits[j] / denominator : 0
                    let rounded = Double(T(p))  // the probabilities meet V in the input's precision
                    if let scores, mode == 3 { scores[row * total + j] = T(p) }
                    let vRow = (kBase + j) * l.valueHeadSize
                    for d in 0..<l.valueHeadSize { sum[d] += rounded * Double(v[vRow + d]) }
                }
                let yBase = l.packed
                    ? (b * l.querySequence + i) * l.queryHeads * l.valueHeadSize + h * l.valueHeadSize
                    : row * l.valueHeadSize
                for d in 0..<l.valueHeadSize { y[yBase + d] = T(sum[d]) }
            }
        }
    }

    /// The additive bias of query row (b, h, i) over every key: the mask (padded with masked keys past its
    /// length), causal and window limits aligned to the cache, padding lengths.
    private func rowBias(_ bias: inout [Double], b: Int, h: Int, i: Int, lengths: UnsafeMutablePointer<Int64>?) {
        let total = layout.totalSequence
        let offset = lengths.map { Int($0[b]) - layout.querySequence } ?? layout.pastSequence
        let valid = lengths.map { Int($0[b]) } ?? total
        for j in 0..<total {
            var value: Double = 0
            if let mask {
                if j < mask.keys {
                    let s = mask.strides
                    let m = mask.values.pointer(as: Double.self)[b * s[0] + h * s[1] + i * s[2] + j * s[3]]
                    value = mask.isBool ? (m != 0 ? 0 : -.infinity) : m
                } else {
                    value = -.infinity
                }
            }
            let position = i + offset
            if causal && j > position { value = -.infinity }
            if leftWindow >= 0 && position - j > leftWindow { value = -.infinity }
            if rightWindow >= 0 && j - position > rightWindow { value = -.infinity }
            if j >= valid { value = -.infinity }
            bias[j] = value
        }
    }

    /// Writes the cache (batch, kv heads, past + new, head size): the past rows, then this call's keys or values
    /// (3-D inputs unpacked from their heads).
    private func fillCache(_ cache: Tensor, past: Tensor?, new: Tensor, headSize: Int) throws {
        let l = layout
        let total = l.totalSequence
        let size = T.dtype.byteSize
        let c = cache.rawPointer
        for b in 0..<l.batch {
            for h in 0..<l.kvHeads {
                let base = (b * l.kvHeads + h) * total * headSize
                if let past {
                    let from = past.rawPointer + (b * l.kvHeads + h) * l.pastSequence * headSize * size
                    (c + base * size).copyMemory(from: from, byteCount: l.pastSequence * headSize * size)
                }
                for j in 0..<l.kvSequence {
                    let from = l.packed
                        ? ((b * l.kvSequence + j) * l.kvHeads + h) * headSize
                        : ((b * l.kvHeads + h) * l.kvSequence + j) * headSize
                    (c + (base + (l.pastSequence + j) * headSize) * size)
                        .copyMemory(from: new.rawPointer + from * size, byteCount: headSize * size)
                }
            }
        }
    }
}
