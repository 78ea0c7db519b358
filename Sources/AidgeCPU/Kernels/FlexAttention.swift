import AidgeCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ai.onnx.preview FlexAttention on the float types. The arithmetic is in double, rounded to a precision wherever
/// ONNX's reference computes in it, so one kernel serves every pair of input and softmax types: Q and K each
/// scaled by √scale and their product rounded in the input's precision, then in the softmax precision; the score
/// modifier run once on the whole score tensor; a softmax per query row; the probability modifier; the weighted
/// sum of the values (V rounded to the softmax precision), rounded to that precision, then to the input's.
func registerFlexAttentionKernels(_ registry: KernelRegistry) {
    registry.register("ai.onnx.preview.FlexAttention", backend: "cpu") { try FlexAttentionKernel($0) }
}

/// A float type that the kernel rounds its double arithmetic to.
private enum Rounding {
    case float64, float32, float16, bfloat16

    init?(_ dtype: DType) {
        switch dtype {
        case .float64: self = .float64
        case .float32: self = .float32
        case .float16: self = .float16
        case .bfloat16: self = .bfloat16
        default: return nil
        }
    }

    @inline(__always) func callAsFunction(_ x: Double) -> Double {
        switch self {
        case .float64: return x
        case .float32: return Double(Float(x))
        case .float16: return Double(Float16(x))
        case .bfloat16: return Double(BFloat16(Float(x)).floatValue)
        }
    }
}

private final class FlexAttentionKernel: Kernel {
    let layout: FlexAttentionLayout
    let inputRounding: Rounding
    let softmaxRounding: Rounding
    /// The score and probability modifiers, when the node has them.
    let scoreMod: SubgraphRunner?
    let probMod: SubgraphRunner?
    /// Q, K and V as doubles: Q and K scaled by √scale in the input's precision, V in the softmax precision.
    let queries: Tensor
    let keys: Tensor
    let values: Tensor
    /// The scores, then the probabilities, as doubles (rounded to the softmax precision).
    let scores: Tensor
    /// The scores or probabilities in the softmax type, as the modifiers are fed them (nil: no modifier).
    let fed: Tensor?
    /// Y as doubles, before its rounding to the input's dtype.
    let result: Tensor

    init(_ request: KernelRequest) throws {
        layout = try FlexAttentionLayout(request.attributes, request.inputs)
        let dtype = try request.input(0).dtype
        guard let inputRounding = Rounding(dtype) else { throw request.unsupportedType(dtype) }
        guard let softmaxRounding = Rounding(layout.softmaxType) else { throw request.unsupportedType(layout.softmaxType) }
        self.inputRounding = inputRounding
        self.softmaxRounding = softmaxRounding
        scoreMod = try layout.modifier("score_mod", request.attributes).map { SubgraphRunner($0, backend: CPUBackend.name) }
        probMod = try layout.modifier("prob_mod", request.attributes).map { SubgraphRunner($0, backend: CPUBackend.name) }
        let l = layout
        queries = Tensor(zeros: [l.batch, l.queryHeads, l.querySequence, l.headSize], dtype: .float64)
        keys = Tensor(zeros: [l.batch, l.kvHeads, l.kvSequence, l.headSize], dtype: .float64)
        values = Tensor(zeros: [l.batch, l.kvHeads, l.kvSequence, l.valueHeadSize], dtype: .float64)
        scores = Tensor(zeros: l.scoreShape, dtype: .float64)
        fed = scoreMod == nil && probMod == nil ? nil : Tensor(zeros: l.scoreShape, dtype: l.softmaxType)
        result = Tensor(zeros: l.outputShape, dtype: .float64)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let output = try firstOutput(outputs)
        for (i, target) in [queries, keys, values].enumerated() {
            let input = try presentInput(inputs, i)
            guard input.count == target.count else {
                throw AidgeError.shapeMismatch("input \(i) does not have the \(target.count) elements it was planned for")
            }
            castElements(input.rawPointer, input.dtype, target.rawPointer, .float64, target.count)
        }
        let captured = try (FlexAttentionLayout.capturedStart..<max(FlexAttentionLayout.capturedStart, inputs.count))
            .map { try presentInput(inputs, $0) }
        // ONNX scales Q and K by √scale, the root taken in float32, then multiplies them in the input's precision.
        let rootScale = inputRounding(Double(Float(layout.scale).squareRoot()))
        roundInPlace(queries, inputRounding, factor: rootScale)
        roundInPlace(keys, inputRounding, factor: rootScale)
        roundInPlace(values, softmaxRounding, factor: 1)
        computeScores()
        if let scoreMod { try modify(scoreMod, "score_mod", captured: captured) }
        softmax()
        if let probMod { try modify(probMod, "prob_mod", captured: captured) }
        weightValues()
        castElements(result.rawPointer, .float64, output.rawPointer, output.dtype, result.count)
    }

    private func roundInPlace(_ t: Tensor, _ rounding: Rounding, factor: Double) {
        let p = t.pointer(as: Double.self)
        for i in 0..<t.count { p[i] = rounding(p[i] * factor) }
    }

    /// The first key (and value) row of the key/value head that query row `row` (batch, query head, position) uses.
    @inline(__always) private func keyBase(row: Int) -> Int {
        let l = layout
        let h = (row / l.querySequence) % l.queryHeads
        let b = row / (l.querySequence * l.queryHeads)
        return (b * l.kvHeads + h / (l.queryHeads / l.kvHeads)) * l.kvSequence
    }

    private func computeScores() {
        let l = layout
        let q = queries.pointer(as: Double.self)
        let k = keys.pointer(as: Double.self)
        let s = scores.pointer(as: Double.self)
        let (input, softmax) = (inputRounding, softmaxRounding)
        let rows = l.batch * l.queryHeads * l.querySequence
        Parallel.forEach(rows, grain: max(1, 4096 / max(l.kvSequence * l.headSize, 1))) { range in
            for row in range {
                let kBase = keyBase(row: row)
                let qRow = q + row * l.headSize
                for j in 0..<l.kvSequence {
                    let kRow = k + (kBase + j) * l.headSize
                    var dot: Double = 0
                    for d in 0..<l.headSize { dot += qRow[d] * kRow[d] }
                    s[row * l.kvSequence + j] = softmax(input(dot))
                }
            }
        }
    }

    /// Softmax over each row of keys, in the softmax precision (a row of -inf gives NaN, as ONNX's reference).
    private func softmax() {
        let l = layout
        let s = scores.pointer(as: Double.self)
        let rounding = softmaxRounding
        let rows = l.batch * l.queryHeads * l.querySequence
        Parallel.forEach(rows, grain: max(1, 4096 / max(l.kvSequence, 1))) { range in
            for row in range {
                let x = s + row * l.kvSequence
                var top = -Double.infinity
                for j in 0..<l.kvSequence where x[j] > top || x[j].isNaN { top = x[j] }
                var sum: Double = 0
                for j in 0..<l.kvSequence {
                    x[j] = rounding(exp(x[j] - top))
                    sum += x[j]
                }
                let denominator = rounding(sum)
                for j in 0..<l.kvSequence { x[j] = rounding(x[j] / denominator) }
            }
        }
    }

    /// Runs modifier `name` on the scores (or probabilities) in the softmax type, and reads back what it gives.
    private func modify(_ runner: SubgraphRunner, _ name: String, captured: [Tensor]) throws {
        guard let fed else { return }
        castElements(scores.rawPointer, .float64, fed.rawPointer, fed.dtype, fed.count)
        let results: [Tensor]
        do {
            results = try runner.run([fed], captured: captured)
        } catch {
            throw error.aidgePrefixed("FlexAttention \(name)")
        }
        try layout.checkModifier(name, gives: results.map { ($0.dtype, $0.shape) })
        let modified = results[0].contiguous()
        castElements(modified.rawPointer, modified.dtype, scores.rawPointer, .float64, scores.count)
    }

    /// Y = probabilities · V, summed in double and rounded to the softmax precision.
    private func weightValues() {
        let l = layout
        let p = scores.pointer(as: Double.self)
        let v = values.pointer(as: Double.self)
        let y = result.pointer(as: Double.self)
        let rounding = softmaxRounding
        let rows = l.batch * l.queryHeads * l.querySequence
        Parallel.forEach(rows, grain: max(1, 4096 / max(l.kvSequence * l.valueHeadSize, 1))) { range in
            for row in range {
                let kBase = keyBase(row: row)
                let yRow = y + row * l.valueHeadSize
                for d in 0..<l.valueHeadSize { yRow[d] = 0 }
                for j in 0..<l.kvSequence {
                    let weight = p[row * l.kvSequence + j]
                    let vRow = v + (kBase + j) * l.valueHeadSize
                    for d in 0..<l.valueHeadSize { yRow[d] += weight * vRow[d] }
                }
                for d in 0..<l.valueHeadSize { yRow[d] = rounding(yRow[d]) }
            }
        }
    }
}
