import AidgeCore

/// Backward of the pooling operators: MaxPool (through the argmax its training forward saves), AveragePool,
/// GlobalAveragePool and GlobalMaxPool. Every kernel works one (image, channel) plane per task, so no two threads
/// add into one input element.
func registerPoolingGradients(_ registry: KernelRegistry) {
    registry.registerGradient("MaxPool", backend: "cpu") { request in try MaxPoolGradient(request) }
    registry.registerGradient("AveragePool", backend: "cpu") { request in try AveragePoolGradient(request) }
    registry.registerGradient("GlobalAveragePool", backend: "cpu") { request in
        try GlobalPoolGradient(request, max: false)
    }
    registry.registerGradient("GlobalMaxPool", backend: "cpu") { request in try GlobalPoolGradient(request, max: true) }
}

/// The window geometry of a MaxPool / AveragePool node, as the forward kernels read it.
private func poolShape(_ request: KernelRequest, _ what: String) throws -> (ConvShape3D, planes: Int, padsEnd: [Int]) {
    let x = try request.input(0)
    let window = try PoolGeometry.window(request.attributes, x.shape, what: what)
    guard let shape = ConvShape3D(window, channels: x.shape[1]) else {
        throw AidgeError.unsupported("\(what) (node \(request.nodeName)) supports 1 to 3 spatial dimensions")
    }
    let ends = [Int](repeating: 0, count: 3 - window.rank) + window.padsEnd
    return (shape, x.shape[0] * x.shape[1], ends)
}

/// Taps of a window starting at `start` (step `dil`, `k` taps) inside `0..<size`: `lo..<hi` (as the forward).
@inline(__always)
private func windowTaps(_ start: Int, _ dil: Int, _ k: Int, _ size: Int) -> (lo: Int, hi: Int) {
    let lo = start >= 0 ? 0 : min(k, (-start + dil - 1) / dil)
    let hi = size - 1 - start < 0 ? 0 : min(k, (size - 1 - start) / dil + 1)
    return (lo, max(lo, hi))
}

/// Checks that a run's tensor has the element count and dtype the kernel was built for.
private func planned(_ t: Tensor?, _ count: Int, _ dtype: DType, _ what: String) throws -> Tensor {
    guard let t, t.count == count, t.dtype == dtype else {
        throw AidgeError.shapeMismatch("\(what) does not match the shape and dtype the kernel was planned for")
    }
    return t
}

// MARK: MaxPool

/// MaxPool: the training forward computes the output and, per output, the position of the first maximum of its
/// window in scan order (PyTorch's tie rule) within the plane, saved as int32 (-1 for a window with no input
/// element); backward adds each output's gradient at that position. Backward reads neither input nor output.
final class MaxPoolGradient: GradientKernel {
    let dtype: DType
    let s: ConvShape3D
    let planes: Int
    let outputShape: [Int]
    let columnMajorIndices: Bool
    /// Interior outputs of each row (every column tap inside the input), and the end of the vector path.
    let owLo: Int, owHi: Int, owHiVector: Int

    init(_ request: KernelRequest) throws {
        let x = try request.input(0)
        dtype = x.dtype
        (s, planes, _) = try poolShape(request, "MaxPool")
        guard s.inputSpatial <= Int(Int32.max) else {
            throw AidgeError.unsupported(
                "MaxPool (node \(request.nodeName)): planes over 2^31 elements have no backward")
        }
        outputShape = Array(x.shape.prefix(2)) + [s.od, s.oh, s.ow].suffix(x.shape.count - 2)
        columnMajorIndices = try request.attributes.int("storage_order", default: 0) != 0
        // Outputs whose windows have every column tap inside the input: owLo..<owHi (as the inference kernel).
        let s = self.s
        let reach = (s.kw - 1) * s.dw
        owLo = min(s.ow, (s.pw + s.sw - 1) / s.sw)
        func bound(_ last: Int) -> Int {
            let top = last - reach + s.pw
            return top < 0 ? 0 : min(s.ow, top / s.sw + 1)
        }
        owHi = max(owLo, bound(s.w - 1))
        owHiVector = s.sw <= 2 ? owHi : owLo
    }

    var savedInfos: [ValueInfo] { [ValueInfo(dtype: .int32, shape: outputShape)] }
    /// Integer pools (int8, uint8) get no gradient: they run their inference kernel in training plans too.
    var hasTrainingForward: Bool { dtype == .float32 || dtype == .float64 }
    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func forward(_ inputs: [Tensor?], _ outputs: [Tensor], saved: [Tensor], training: Bool) throws {
        let inPlane = s.inputSpatial
        let outPlane = s.outputSpatial
        let x = try planned(inputs.first ?? nil, planes * inPlane, dtype, "MaxPool input")
        let y = try planned(outputs.first, planes * outPlane, dtype, "MaxPool output")
        let argmax = try planned(saved.first, planes * outPlane, .int32, "MaxPool saved argmax")
        let indices = outputs.count > 1 ? try planned(outputs[1], planes * outPlane, .int64, "MaxPool Indices") : nil
        switch dtype {
        case .float32: run(x.pointer(as: Float.self), y.pointer(as: Float.self), argmax.pointer(as: Int32.self))
        default: run(x.pointer(as: Double.self), y.pointer(as: Double.self), argmax.pointer(as: Int32.self))
        }
        if let indices { writeIndices(argmax.pointer(as: Int32.self), indices.pointer(as: Int64.self)) }
    }

    private func run<T: GradientFloat>(
        _ x: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>, _ a: UnsafeMutablePointer<Int32>
    ) {
        let inPlane = s.inputSpatial
        let outPlane = s.outputSpatial
        let grain = max(1, 16384 / max(1, outPlane * s.kernelVolume))
        Parallel.forEach(planes, grain: grain) { range in
            for p in range { self.plane(x + p * inPlane, y + p * outPlane, a + p * outPlane) }
        }
    }

    /// One plane: the max of each window and where it is. A NaN never wins (as the inference kernel's vector
    /// path): a window of -infinity and NaN gives -infinity and keeps its first element. Each output row is cut
    /// into borders (windows crossing the padding) and an interior; float32 interiors with strides 1 or 2 run 8
    /// outputs at a time.
    private func plane<T: GradientFloat>(
        _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ a: UnsafeMutablePointer<Int32>
    ) {
        let s = self.s
        let vectorEnd = T.self == Float.self ? owHiVector : owLo
        for od in 0..<s.od {
            let d0 = od * s.sd - s.pd
            let (kdLo, kdHi) = windowTaps(d0, s.dd, s.kd, s.d)
            for oh in 0..<s.oh {
                let h0 = oh * s.sh - s.ph
                let (khLo, khHi) = windowTaps(h0, s.dh, s.kh, s.h)
                let yr = y + (od * s.oh + oh) * s.ow
                let ar = a + (od * s.oh + oh) * s.ow
                guard kdLo < kdHi && khLo < khHi else {
                    for ow in 0..<s.ow {
                        yr[ow] = -.infinity
                        ar[ow] = -1
                    }
                    continue
                }
                let window = Window(d0: d0, kdLo: kdLo, kdHi: kdHi, h0: h0, khLo: khLo, khHi: khHi)
                var ow = 0
                while ow < owLo {
                    let w0 = ow * s.sw - s.pw
                    let (kwLo, kwHi) = windowTaps(w0, s.dw, s.kw, s.w)
                    maxOf(x, window, w0, kwLo, kwHi, yr + ow, ar + ow)
                    ow += 1
                }
                if vectorEnd - ow >= 8 {
                    let xf = UnsafeRawPointer(x).assumingMemoryBound(to: Float.self)
                    let yf = UnsafeMutableRawPointer(yr).assumingMemoryBound(to: Float.self)
                    while ow + 8 <= vectorEnd {
                        maxOf8(xf, window, ow, yf + ow, ar + ow)
                        ow += 8
                    }
                    if ow < vectorEnd {
                        // One vector ending at the interior's end, rewriting a few outputs with the same values.
                        maxOf8(xf, window, vectorEnd - 8, yf + vectorEnd - 8, ar + vectorEnd - 8)
                        ow = vectorEnd
                    }
                }
                while ow < owHi {
                    maxOf(x, window, ow * s.sw - s.pw, 0, s.kw, yr + ow, ar + ow)
                    ow += 1
                }
                while ow < s.ow {
                    let w0 = ow * s.sw - s.pw
                    let (kwLo, kwHi) = windowTaps(w0, s.dw, s.kw, s.w)
                    maxOf(x, window, w0, kwLo, kwHi, yr + ow, ar + ow)
                    ow += 1
                }
            }
        }
    }

    /// The depth and row taps of one output row's windows.
    private struct Window {
        let d0: Int, kdLo: Int, kdHi: Int
        let h0: Int, khLo: Int, khHi: Int
    }

    /// One window's max and its first position (column taps `kwLo..<kwHi`).
    @inline(__always)
    private func maxOf<T: GradientFloat>(
        _ x: UnsafePointer<T>, _ window: Window, _ w0: Int, _ kwLo: Int, _ kwHi: Int, _ y: UnsafeMutablePointer<T>,
        _ a: UnsafeMutablePointer<Int32>
    ) {
        let s = self.s
        guard kwLo < kwHi else {
            y.pointee = -.infinity
            a.pointee = -1
            return
        }
        var best = -T.infinity
        var at = ((window.d0 + window.kdLo * s.dd) * s.h + window.h0 + window.khLo * s.dh) * s.w + w0 + kwLo * s.dw
        for kd in window.kdLo..<window.kdHi {
            let id = window.d0 + kd * s.dd
            for kh in window.khLo..<window.khHi {
                let base = (id * s.h + window.h0 + kh * s.dh) * s.w + w0
                for kw in kwLo..<kwHi {
                    let i = base + kw * s.dw
                    let v = x[i]
                    if v > best {
                        best = v
                        at = i
                    }
                }
            }
        }
        y.pointee = best
        a.pointee = Int32(truncatingIfNeeded: at)
    }

    /// Eight interior outputs from `ow` (stride 1 or 2, float32): lane-wise compare and select, taps in scan
    /// order, so ties keep the first as the scalar path. Every load stays inside the windows' row.
    @inline(__always)
    private func maxOf8(
        _ x: UnsafePointer<Float>, _ window: Window, _ ow: Int, _ y: UnsafeMutablePointer<Float>,
        _ a: UnsafeMutablePointer<Int32>
    ) {
        let s = self.s
        let w0 = ow * s.sw - s.pw
        let lanes = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7) &* Int32(truncatingIfNeeded: s.sw)
        var best = SIMD8<Float>(repeating: -.infinity)
        let first = ((window.d0 + window.kdLo * s.dd) * s.h + window.h0 + window.khLo * s.dh) * s.w + w0
        var at = SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: first)) &+ lanes
        for kd in window.kdLo..<window.kdHi {
            let id = window.d0 + kd * s.dd
            for kh in window.khLo..<window.khHi {
                let base = (id * s.h + window.h0 + kh * s.dh) * s.w + w0
                for kw in 0..<s.kw {
                    let p = base &+ kw &* s.dw
                    let v: SIMD8<Float>
                    if s.sw == 1 {
                        v = UnsafeRawPointer(x + p).loadUnaligned(as: SIMD8<Float>.self)
                    } else {
                        // Elements p, p+2, ..., p+14 from two loads that end at p+14, inside the row.
                        let low = UnsafeRawPointer(x + p).loadUnaligned(as: SIMD8<Float>.self)
                        let high = UnsafeRawPointer(x + p + 7).loadUnaligned(as: SIMD8<Float>.self)
                        v = SIMD8(lowHalf: low.evenHalf, highHalf: high.oddHalf)
                    }
                    let wins = v .> best
                    best.replace(with: v, where: wins)
                    at.replace(with: SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: p)) &+ lanes, where: wins)
                }
            }
        }
        UnsafeMutableRawPointer(y).storeBytes(of: best, as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(a).storeBytes(of: at, as: SIMD8<Int32>.self)
    }

    /// ONNX's Indices: the flat index in the whole input (row-major, or column-major within the plane with
    /// `storage_order` 1).
    private func writeIndices(_ a: UnsafeMutablePointer<Int32>, _ out: UnsafeMutablePointer<Int64>) {
        let s = self.s
        let outPlane = s.outputSpatial
        let inPlane = s.inputSpatial
        let columnMajor = columnMajorIndices
        Parallel.forEach(planes, grain: max(1, 16384 / max(outPlane, 1))) { range in
            for p in range {
                for o in 0..<outPlane {
                    var i = max(Int(a[p * outPlane + o]), 0)
                    if columnMajor {
                        let iw = i % s.w
                        let ih = (i / s.w) % s.h
                        let id = i / (s.w * s.h)
                        i = (iw * s.h + ih) * s.d + id
                    }
                    out[p * outPlane + o] = Int64(p * inPlane + i)
                }
            }
        }
    }

    func backward(_ pass: BackwardPass) throws {
        guard let dx = pass.inputGradient(0), let dy = pass.outputGradient(0) else { return }
        guard hasTrainingForward else {
            throw AidgeError.unsupportedType("MaxPool has no backward for \(dtype) (float32 and float64 only)")
        }
        let outPlane = s.outputSpatial
        let inPlane = s.inputSpatial
        let argmax = try planned(pass.saved.first, planes * outPlane, .int32, "MaxPool saved argmax")
        _ = try planned(dx, planes * inPlane, dtype, "MaxPool input gradient")
        _ = try planned(dy, planes * outPlane, dtype, "MaxPool output gradient")
        switch dtype {
        case .float32: scatter(dy.pointer(as: Float.self), dx.pointer(as: Float.self), argmax.pointer(as: Int32.self))
        default: scatter(dy.pointer(as: Double.self), dx.pointer(as: Double.self), argmax.pointer(as: Int32.self))
        }
    }

    private func scatter<T: GradientFloat>(
        _ dy: UnsafeMutablePointer<T>, _ dx: UnsafeMutablePointer<T>, _ a: UnsafeMutablePointer<Int32>
    ) {
        let outPlane = s.outputSpatial
        let inPlane = s.inputSpatial
        Parallel.forEach(planes, grain: max(1, 32768 / max(outPlane, 1))) { range in
            for p in range {
                let g = dy + p * outPlane
                let d = dx + p * inPlane
                let ap = a + p * outPlane
                for o in 0..<outPlane {
                    let i = Int(ap[o])
                    if i >= 0 && i < inPlane { d[i] += g[o] }
                }
            }
        }
    }
}

// MARK: AveragePool

/// AveragePool: each output's gradient divided by its window's divisor (the forward's: taps inside the input,
/// or with `count_include_pad` inside the padded input), added to every tap of its window.
final class AveragePoolGradient: GradientKernel {
    let dtype: DType
    let s: ConvShape3D
    let planes: Int
    let countIncludePad: Bool
    /// End of the padded input along each axis (input size + end padding).
    let limD: Int, limH: Int, limW: Int

    init(_ request: KernelRequest) throws {
        dtype = try gradientType(try request.input(0).dtype, request)
        let ends: [Int]
        (s, planes, ends) = try poolShape(request, "AveragePool")
        countIncludePad = try request.attributes.int("count_include_pad", default: 0) != 0
        limD = s.d + ends[0]
        limH = s.h + ends[1]
        limW = s.w + ends[2]
    }

    func readsInput(_ index: Int) -> Bool { false }
    func readsOutput(_ index: Int) -> Bool { false }

    func backward(_ pass: BackwardPass) throws {
        guard let dx = pass.inputGradient(0), let dy = pass.outputGradient(0) else { return }
        _ = try planned(dx, planes * s.inputSpatial, dtype, "AveragePool input gradient")
        _ = try planned(dy, planes * s.outputSpatial, dtype, "AveragePool output gradient")
        switch dtype {
        case .float32: run(dy.pointer(as: Float.self), dx.pointer(as: Float.self))
        default: run(dy.pointer(as: Double.self), dx.pointer(as: Double.self))
        }
    }

    private func run<T: GradientFloat>(_ dy: UnsafeMutablePointer<T>, _ dx: UnsafeMutablePointer<T>) {
        let outPlane = s.outputSpatial
        let inPlane = s.inputSpatial
        let grain = max(1, 16384 / max(1, outPlane * s.kernelVolume))
        Parallel.forEach(planes, grain: grain) { range in
            for p in range { self.plane(dy + p * outPlane, dx + p * inPlane) }
        }
    }

    private func plane<T: GradientFloat>(_ dy: UnsafePointer<T>, _ dx: UnsafeMutablePointer<T>) {
        let s = self.s
        for od in 0..<s.od {
            let d0 = od * s.sd - s.pd
            let (kdLo, kdHi) = windowTaps(d0, s.dd, s.kd, s.d)
            let padD = windowTaps(d0, s.dd, s.kd, limD).hi
            for oh in 0..<s.oh {
                let h0 = oh * s.sh - s.ph
                let (khLo, khHi) = windowTaps(h0, s.dh, s.kh, s.h)
                let padH = windowTaps(h0, s.dh, s.kh, limH).hi
                for ow in 0..<s.ow {
                    let w0 = ow * s.sw - s.pw
                    let (kwLo, kwHi) = windowTaps(w0, s.dw, s.kw, s.w)
                    let count =
                        countIncludePad
                        ? padD * padH * windowTaps(w0, s.dw, s.kw, limW).hi
                        : (kdHi - kdLo) * (khHi - khLo) * (kwHi - kwLo)
                    guard count > 0, kdLo < kdHi, khLo < khHi, kwLo < kwHi else { continue }
                    let g = dy[(od * s.oh + oh) * s.ow + ow] / T(count)
                    for kd in kdLo..<kdHi {
                        let id = d0 + kd * s.dd
                        for kh in khLo..<khHi {
                            let r = dx + (id * s.h + h0 + kh * s.dh) * s.w + w0
                            for kw in kwLo..<kwHi { r[kw * s.dw] += g }
                        }
                    }
                }
            }
        }
    }
}

// MARK: Global pools

/// GlobalAveragePool: `dx += dy / size` over each plane. GlobalMaxPool: `dx += dy` at the first element of the
/// plane equal to its output (the first maximum, PyTorch's tie rule), found again from the input and output.
final class GlobalPoolGradient: GradientKernel {
    let dtype: DType
    let planes: Int
    let size: Int
    let isMax: Bool

    init(_ request: KernelRequest, max: Bool) throws {
        let x = try request.input(0)
        dtype = try gradientType(x.dtype, request)
        guard x.shape.count >= 3 else {
            throw AidgeError.shapeMismatch("global pooling needs an input N x C x spatial..., got shape \(x.shape)")
        }
        planes = x.shape[0] * x.shape[1]
        size = ShapeUtil.count(Array(x.shape[2...]))
        isMax = max
    }

    func readsInput(_ index: Int) -> Bool { isMax }
    func readsOutput(_ index: Int) -> Bool { isMax }

    func backward(_ pass: BackwardPass) throws {
        guard let dx = pass.inputGradient(0), let dy = pass.outputGradient(0) else { return }
        _ = try planned(dx, planes * size, dtype, "global pooling input gradient")
        _ = try planned(dy, planes, dtype, "global pooling output gradient")
        if isMax {
            let x = try planned(try pass.input(0), planes * size, dtype, "GlobalMaxPool input")
            let y = try planned(pass.outputs.first, planes, dtype, "GlobalMaxPool output")
            switch dtype {
            case .float32: routeMax(x, y, dy, dx, Float.self)
            default: routeMax(x, y, dy, dx, Double.self)
            }
        } else {
            switch dtype {
            case .float32: spread(dy.pointer(as: Float.self), dx.pointer(as: Float.self))
            default: spread(dy.pointer(as: Double.self), dx.pointer(as: Double.self))
            }
        }
    }

    private func spread<T: GradientFloat>(_ dy: UnsafeMutablePointer<T>, _ dx: UnsafeMutablePointer<T>) {
        let size = self.size
        let scale = 1 / T(size)
        Parallel.forEach(planes, grain: max(1, 32768 / max(size, 1))) { range in
            for p in range {
                let g = dy[p] * scale
                let d = dx + p * size
                for i in 0..<size { d[i] += g }
            }
        }
    }

    private func routeMax<T: GradientFloat>(
        _ xTensor: Tensor, _ yTensor: Tensor, _ dyTensor: Tensor, _ dxTensor: Tensor, _: T.Type
    ) {
        let (x, y) = (xTensor.pointer(as: T.self), yTensor.pointer(as: T.self))
        let (dy, dx) = (dyTensor.pointer(as: T.self), dxTensor.pointer(as: T.self))
        let size = self.size
        Parallel.forEach(planes, grain: max(1, 32768 / max(size, 1))) { range in
            for p in range {
                let xp = x + p * size
                let m = y[p]
                var i = 0
                if m.isNaN {
                    while i < size && !xp[i].isNaN { i += 1 }
                } else {
                    while i < size && xp[i] != m { i += 1 }
                }
                if i < size { dx[p * size + i] += dy[p] }
            }
        }
    }
}
