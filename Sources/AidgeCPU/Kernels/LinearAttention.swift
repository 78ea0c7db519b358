import AidgeCore

/// LinearAttention: a recurrent state S (dk x dv) per batch and key/value head, updated at every step by decay
/// (S *= exp(g)), delta correction (v <- beta (v - Sᵀk)) and the write S += k vᵀ, and read by each query head of
/// the group (o = scale · qᵀS); in double, as ONNX's reference does in float32.
func registerLinearAttentionKernels(_ registry: KernelRegistry) {
    registry.register("LinearAttention", backend: "cpu") { try makeKernel(LinearAttentionFamily(), $0) }
}

private struct LinearAttentionFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let l = try LinearAttentionLayout(request.attributes, request.inputs)
        if let state = request.inputs.count > 3 ? request.inputs[3] : nil, state.dtype != T.dtype {
            throw request.unsupportedType(state.dtype)
        }
        let rawScale = Double(try request.attributes.float("scale", default: 0))
        let scale = rawScale == 0 ? 1 / Double(l.keySize).squareRoot() : rawScale
        let group = l.queryHeads / l.kvHeads
        let (dk, dv) = (l.keySize, l.valueSize)
        return ClosureKernel { inputs, outputs in
            let q = try presentInput(inputs, 0).pointer(as: T.self)
            let k = try presentInput(inputs, 1).pointer(as: T.self)
            let v = try presentInput(inputs, 2).pointer(as: T.self)
            let past = inputs.count > 3 ? inputs[3]?.pointer(as: T.self) : nil
            let decay = inputs.count > 4 ? inputs[4]?.pointer(as: T.self) : nil
            let beta = inputs.count > 5 ? inputs[5]?.pointer(as: T.self) : nil
            guard outputs.count >= 2 else { throw AidgeError.invalidModel("LinearAttention has two outputs") }
            let y = outputs[0].pointer(as: T.self)
            let present = outputs[1].pointer(as: T.self)
            Parallel.forEach(l.batch * l.kvHeads) { range in
                var s = [Double](repeating: 0, count: dk * dv)
                var value = [Double](repeating: 0, count: dv)
                for item in range {
                    let (b, h) = item.quotientAndRemainder(dividingBy: l.kvHeads)
                    for i in 0..<(dk * dv) { s[i] = past.map { Double($0[item * dk * dv + i]) } ?? 0 }
                    for t in 0..<l.length {
                        let step = b * l.length + t
                        if let decay {
                            let g = decay + (step * l.kvHeads + h) * l.decayWidth
                            for d in 0..<dk {
                                let factor = Double.mathExp(Double(g[l.decayWidth == 1 ? 0 : d]))
                                for m in 0..<dv { s[d * dv + m] *= factor }
                            }
                        }
                        let key = k + (step * l.kvHeads + h) * dk
                        let val = v + (step * l.kvHeads + h) * dv
                        for m in 0..<dv { value[m] = Double(val[m]) }
                        if let beta {
                            let weight = Double(beta[step * l.betaWidth + (l.betaWidth == 1 ? 0 : h)])
                            for m in 0..<dv {
                                var retrieved = 0.0
                                for d in 0..<dk { retrieved += s[d * dv + m] * Double(key[d]) }
                                value[m] = weight * (value[m] - retrieved)
                            }
                        }
                        for d in 0..<dk {
                            let kd = Double(key[d])
                            for m in 0..<dv { s[d * dv + m] += kd * value[m] }
                        }
                        for hq in (h * group)..<((h + 1) * group) {
                            let query = q + (step * l.queryHeads + hq) * dk
                            let out = y + (step * l.queryHeads + hq) * dv
                            for m in 0..<dv {
                                var sum = 0.0
                                for d in 0..<dk { sum += Double(query[d]) * s[d * dv + m] }
                                out[m] = T(scale * sum)
                            }
                        }
                    }
                    for i in 0..<(dk * dv) { present[item * dk * dv + i] = T(s[i]) }
                }
            }
        }
    }
}
