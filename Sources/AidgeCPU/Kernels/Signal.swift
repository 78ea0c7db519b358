import AidgeCore

/// Signal kernels: DFT (direct sums over a twiddle table, in double), STFT (a windowed one-sided DFT per frame),
/// the Hann, Hamming and Blackman windows, and MelWeightMatrix (triangular filters, as ONNX's reference builds
/// them).
func registerSignalKernels(_ registry: KernelRegistry) {
    registry.register("DFT", backend: "cpu") { try makeKernel(DFTFamily(), $0) }
    registry.register("STFT", backend: "cpu") { try makeKernel(STFTFamily(), $0) }
    for type in ["HannWindow", "HammingWindow", "BlackmanWindow"] {
        registry.register(type, backend: "cpu") { request in
            let periodic = try request.attributes.int("periodic", default: 1) != 0
            let dtype = request.outputs[0].dtype
            return ClosureKernel { inputs, outputs in
                let output = try firstOutput(outputs)
                let size = output.count
                let n = Double(periodic ? size : size - 1)
                let values: [Double] = (0..<size).map { i in
                    let x = Double.pi * Double(i) / n
                    switch type {
                    case "HannWindow": return Double.mathSin(x) * Double.mathSin(x)
                    case "HammingWindow": return 25.0 / 46.0 - Double.mathCos(2 * x) * (21.0 / 46.0)
                    default: return 0.42 - 0.5 * Double.mathCos(2 * x) + 0.08 * Double.mathCos(4 * x)
                    }
                }
                copyElements(from: Tensor(values).cast(to: dtype), to: output)
            }
        }
    }
    registry.register("MelWeightMatrix", backend: "cpu") { request in
        let dtype = request.outputs[0].dtype
        return ClosureKernel { inputs, outputs in
            let values = try (0..<5).map { try presentInput(inputs, $0).doubles().first ?? 0 }
            let output = try firstOutput(outputs)
            guard values.allSatisfy({ $0.isFinite && abs($0) < 1e12 }), values[2] > 0,
                Int(values[0]) * (Int(values[1]) / 2 + 1) == output.count
            else {
                throw AidgeError.invalidArgument(
                    "MelWeightMatrix inputs \(values) do not give the planned \(output.shape) matrix with a positive sample rate")
            }
            let matrix = melWeights(
                bins: Int(values[0]), length: Int(values[1]), sampleRate: values[2], lower: values[3], upper: values[4])
            copyElements(from: Tensor(matrix).cast(to: dtype), to: output)
        }
    }
}

/// cos and sin of 2πk/n for k in 0..<n: the twiddles of a length-n transform.
private func twiddles(_ n: Int) -> (cos: [Double], sin: [Double]) {
    let angles = (0..<n).map { 2 * Double.pi * Double($0) / Double(n) }
    return (angles.map { Double.mathCos($0) }, angles.map { Double.mathSin($0) })
}

private struct DFTFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let x = try request.input(0)
        let g = try DFTGeometry(attributes: request.attributes, inputs: request.inputs)
        let n = g.length
        let inputLength = x.shape[g.axis]
        let outputLength = g.outputShape[g.axis]
        let outer = ShapeUtil.count(Array(x.shape[..<g.axis]))
        let inner = ShapeUtil.count(Array(x.shape[(g.axis + 1)..<(x.shape.count - 1)]))
        let inComplex = x.shape.last == 2
        let outComplex = g.outputShape.last == 2
        let (cosines, sines) = twiddles(n)
        let sign: Double = g.inverse ? 1 : -1
        let scale = g.inverse ? 1 / Double(n) : 1
        let realInverse = g.inverse && g.onesided
        return ClosureKernel { inputs, outputs in
            let xp = try presentInput(inputs, 0).pointer(as: T.self)
            let yp = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(outer * inner) { range in
                var re = [Double](repeating: 0, count: n)
                var im = [Double](repeating: 0, count: n)
                for line in range {
                    let (o, i) = line.quotientAndRemainder(dividingBy: inner)
                    // The n input values of the line (zero past the input; the Hermitian mirror for a real inverse).
                    for k in 0..<n {
                        let source = realInverse ? (k <= n / 2 ? k : n - k) : k
                        guard source < inputLength else {
                            (re[k], im[k]) = (0, 0)
                            continue
                        }
                        let at = ((o * inputLength + source) * inner + i) * (inComplex ? 2 : 1)
                        re[k] = Double(xp[at])
                        im[k] = inComplex ? Double(xp[at + 1]) : 0
                        if realInverse && k > n / 2 { im[k] = -im[k] }
                    }
                    for f in 0..<outputLength {
                        var sumRe = 0.0
                        var sumIm = 0.0
                        for k in 0..<n {
                            let t = (f * k) % n
                            let c = cosines[t]
                            let s = sign * sines[t]
                            sumRe += re[k] * c - im[k] * s
                            sumIm += re[k] * s + im[k] * c
                        }
                        let at = ((o * outputLength + f) * inner + i) * (outComplex ? 2 : 1)
                        yp[at] = T(sumRe * scale)
                        if outComplex { yp[at + 1] = T(sumIm * scale) }
                    }
                }
            }
        }
    }
}

private struct STFTFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let x = try request.input(0)
        let g = try STFTGeometry(attributes: request.attributes, inputs: request.inputs)
        if let window = request.inputs.count > 2 ? request.inputs[2] : nil, window.dtype != x.dtype {
            throw request.unsupportedType(window.dtype)
        }
        let (batch, length, channels) = (x.shape[0], x.shape[1], x.shape[2])
        let n = g.frameLength
        let (cosines, sines) = twiddles(n)
        return ClosureKernel { inputs, outputs in
            let xp = try presentInput(inputs, 0).pointer(as: T.self)
            let window = inputs.count > 2 ? inputs[2]?.pointer(as: T.self) : nil
            let yp = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(batch * g.frames) { range in
                var re = [Double](repeating: 0, count: n)
                var im = [Double](repeating: 0, count: n)
                for item in range {
                    let (b, t) = item.quotientAndRemainder(dividingBy: g.frames)
                    for k in 0..<n {
                        let at = (b * length + t * g.step + k) * channels
                        let w = window.map { Double($0[k]) } ?? 1
                        re[k] = Double(xp[at]) * w
                        im[k] = channels == 2 ? Double(xp[at + 1]) * w : 0
                    }
                    for f in 0..<g.bins {
                        var sumRe = 0.0
                        var sumIm = 0.0
                        for k in 0..<n {
                            let j = (f * k) % n
                            sumRe += re[k] * cosines[j] + im[k] * sines[j]
                            sumIm += im[k] * cosines[j] - re[k] * sines[j]
                        }
                        let at = (item * g.bins + f) * 2
                        yp[at] = T(sumRe)
                        yp[at + 1] = T(sumIm)
                    }
                }
            }
        }
    }
}

/// The (length / 2 + 1) x bins matrix of triangular mel filters, row-major.
private func melWeights(bins: Int, length: Int, sampleRate: Double, lower: Double, upper: Double) -> [Double] {
    let rows = length / 2 + 1
    func mel(_ hertz: Double) -> Double { 2595 * Double.mathLog1p(hertz / 700) / Double.mathLog(10) }
    let low = mel(lower)
    let step = (mel(upper) - low) / Double(bins + 2)
    let edges: [Int] = (0..<(bins + 2)).map { i in
        let hertz = 700 * Double.mathExpm1((Double(i) * step + low) / 2595 * Double.mathLog(10))
        return Int((Double(length + 1) * hertz / sampleRate).rounded(.down))
    }
    var matrix = [Double](repeating: 0, count: rows * bins)
    func set(_ row: Int, _ column: Int, _ value: Double) {
        if row >= 0 && row < rows { matrix[row * bins + column] = value }
    }
    for i in 0..<bins {
        let (left, center, right) = (edges[i], edges[i + 1], edges[i + 2])
        if center == left {
            set(center, i, 1)
        } else if left <= center {
            for j in left...center { set(j, i, Double(j - left) / Double(center - left)) }
        }
        if right > center {
            for j in center..<right { set(j, i, Double(right - j) / Double(right - center)) }
        }
    }
    return matrix
}
