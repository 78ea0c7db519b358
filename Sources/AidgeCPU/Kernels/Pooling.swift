import AidgeCore

func registerPoolingKernels(_ registry: KernelRegistry) {
    registry.register("LpPool", backend: "cpu") { try makeKernel(LpPoolFamily(), $0) }
    registry.register("MaxPool", backend: "cpu") { request in
        let x = try request.input(0)
        switch x.dtype {
        case .float32, .float64, .int8, .uint8: return try PoolKernel(request, max: true)
        default: throw request.unsupportedType(x.dtype)
        }
    }
    registry.register("AveragePool", backend: "cpu") { request in
        let x = try request.input(0)
        switch x.dtype {
        case .float32, .float64: return try PoolKernel(request, max: false)
        default: throw request.unsupportedType(x.dtype)
        }
    }
    for (type, max) in [("GlobalAveragePool", false), ("GlobalMaxPool", true)] {
        registry.register(type, backend: "cpu") { request in
            let x = try request.input(0)
            switch x.dtype {
            case .float32, .float64: return GlobalPoolKernel(x.shape, x.dtype, max: max)
            default: throw request.unsupportedType(x.dtype)
            }
        }
    }
}

/// Element types of the pooling kernels.
protocol PoolElement: TensorElement, Comparable {
    /// The identity of max (the lowest value).
    static var lowest: Self { get }
    /// For averages: a running sum in Double.
    var asDouble: Double { get }
    init(average: Double)
}

extension Float: PoolElement {
    static var lowest: Float { -.infinity }
    @inline(__always) var asDouble: Double { Double(self) }
    @inline(__always) init(average: Double) { self = Float(average) }
}
extension Double: PoolElement {
    static var lowest: Double { -.infinity }
    @inline(__always) var asDouble: Double { self }
    @inline(__always) init(average: Double) { self = average }
}
extension Int8: PoolElement {
    static var lowest: Int8 { .min }
    @inline(__always) var asDouble: Double { Double(self) }
    @inline(__always) init(average: Double) { self.init(scalar: .float(average.rounded())) }
}
extension UInt8: PoolElement {
    static var lowest: UInt8 { .min }
    @inline(__always) var asDouble: Double { Double(self) }
    @inline(__always) init(average: Double) { self.init(scalar: .float(average.rounded())) }
}

/// MaxPool / AveragePool over 1 to 3 spatial axes, one (image, channel) plane per task. float32 2-D pooling
/// without Indices takes a vectorised path (stride 1 and 2, borders apart); everything else loops per output.
final class PoolKernel: Kernel {
    private let dtype: DType
    private let isMax: Bool
    private let countIncludePad: Bool
    private let columnMajorIndices: Bool
    private let s: ConvShape3D
    private let planes: Int
    /// End of the padded input along each axis (input size + end padding): the include-pad divisor stops there.
    private let limD: Int, limH: Int, limW: Int
    private let owLo: Int, owHi: Int, owHiVector: Int

    init(_ request: KernelRequest, max: Bool) throws {
        let x = try request.input(0)
        let what = max ? "MaxPool" : "AveragePool"
        let window = try PoolGeometry.window(request.attributes, x.shape, what: what)
        guard let shape = ConvShape3D(window, channels: x.shape[1]) else {
            throw AidgeError.unsupported("\(what) (node \(request.nodeName)) supports 1 to 3 spatial dimensions")
        }
        dtype = x.dtype
        isMax = max
        countIncludePad = try request.attributes.int("count_include_pad", default: 0) != 0
        columnMajorIndices = try request.attributes.int("storage_order", default: 0) != 0
        s = shape
        planes = x.shape[0] * x.shape[1]
        let ends = [Int](repeating: 0, count: 3 - window.rank) + window.padsEnd
        limD = shape.d + ends[0]
        limH = shape.h + ends[1]
        limW = shape.w + ends[2]
        let reach = (shape.kw - 1) * shape.dw
        owLo = min(shape.ow, (shape.pw + shape.sw - 1) / shape.sw)
        func bound(_ last: Int) -> Int {
            let top = last - reach + shape.pw
            return top < 0 ? 0 : min(shape.ow, top / shape.sw + 1)
        }
        owHi = Swift.max(owLo, bound(shape.w - 1))
        owHiVector = shape.sw == 1 ? owHi : shape.sw == 2 ? Swift.max(owLo, bound(shape.w - 2)) : owLo
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil, let y = outputs.first else {
            throw AidgeError.invalidModel("pooling needs an input X")
        }
        let indices = outputs.count > 1 ? outputs[1].pointer(as: Int64.self) : nil
        switch dtype {
        case .float32:
            if indices == nil && s.d == 1 {
                fastRun(x.pointer(as: Float.self), y.pointer(as: Float.self))
            } else {
                generalRun(x.pointer(as: Float.self), y.pointer(as: Float.self), indices)
            }
        case .float64: generalRun(x.pointer(as: Double.self), y.pointer(as: Double.self), indices)
        case .int8: generalRun(x.pointer(as: Int8.self), y.pointer(as: Int8.self), indices)
        case .uint8: generalRun(x.pointer(as: UInt8.self), y.pointer(as: UInt8.self), indices)
        default: throw AidgeError.unsupportedType("pooling has no CPU kernel for \(dtype)")
        }
    }

    private var grain: Int { Swift.max(1, 16384 / Swift.max(1, s.outputSpatial * s.kernelVolume)) }

    private func fastRun(_ xp: UnsafeMutablePointer<Float>, _ yp: UnsafeMutablePointer<Float>) {
        let inPlane = s.inputSpatial
        let outPlane = s.outputSpatial
        Parallel.forEach(planes, grain: grain) { range in
            for p in range { self.fastPlane(xp + p * inPlane, yp + p * outPlane) }
        }
    }

    private func generalRun<T: PoolElement>(
        _ xp: UnsafeMutablePointer<T>, _ yp: UnsafeMutablePointer<T>, _ ip: UnsafeMutablePointer<Int64>?
    ) {
        let inPlane = s.inputSpatial
        let outPlane = s.outputSpatial
        Parallel.forEach(planes, grain: grain) { range in
            for p in range {
                self.plane(xp + p * inPlane, yp + p * outPlane, ip.map { $0 + p * outPlane }, base: p * inPlane)
            }
        }
    }

    /// Taps of a window starting at `start` (step `dil`, `k` taps) inside `0..<size`: `lo..<hi`.
    @inline(__always)
    private static func taps(_ start: Int, _ dil: Int, _ k: Int, _ size: Int) -> (Int, Int) {
        let lo = start >= 0 ? 0 : Swift.min(k, (-start + dil - 1) / dil)
        let hi = size - 1 - start < 0 ? 0 : Swift.min(k, (size - 1 - start) / dil + 1)
        return (lo, Swift.max(lo, hi))
    }

    /// The general path: any type, 1 to 3 axes, optional Indices.
    private func plane<T: PoolElement>(
        _ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ indices: UnsafeMutablePointer<Int64>?, base: Int
    ) {
        let s = self.s
        for od in 0..<s.od {
            let d0 = od * s.sd - s.pd
            let (kdLo, kdHi) = Self.taps(d0, s.dd, s.kd, s.d)
            let padD = Self.taps(d0, s.dd, s.kd, limD).1
            for oh in 0..<s.oh {
                let h0 = oh * s.sh - s.ph
                let (khLo, khHi) = Self.taps(h0, s.dh, s.kh, s.h)
                let padH = Self.taps(h0, s.dh, s.kh, limH).1
                for ow in 0..<s.ow {
                    let w0 = ow * s.sw - s.pw
                    let (kwLo, kwHi) = Self.taps(w0, s.dw, s.kw, s.w)
                    let o = (od * s.oh + oh) * s.ow + ow
                    if isMax {
                        var best = T.lowest
                        var at = -1
                        for kd in kdLo..<kdHi {
                            let id = d0 + kd * s.dd
                            for kh in khLo..<khHi {
                                let ih = h0 + kh * s.dh
                                let row = x + (id * s.h + ih) * s.w
                                for kw in kwLo..<kwHi {
                                    let iw = w0 + kw * s.dw
                                    let v = row[iw]
                                    if at < 0 || v > best {
                                        best = v
                                        at = columnMajorIndices ? (iw * s.h + ih) * s.d + id : (id * s.h + ih) * s.w + iw
                                    }
                                }
                            }
                        }
                        y[o] = best
                        indices?[o] = Int64(base + Swift.max(at, 0))
                    } else {
                        var sum = 0.0
                        for kd in kdLo..<kdHi {
                            let id = d0 + kd * s.dd
                            for kh in khLo..<khHi {
                                let row = x + (id * s.h + h0 + kh * s.dh) * s.w
                                for kw in kwLo..<kwHi { sum += row[w0 + kw * s.dw].asDouble }
                            }
                        }
                        let count: Int
                        if countIncludePad {
                            // Taps inside the padded input: from the window start (never before the begin padding)
                            // to the end padding.
                            count = padD * padH * Self.taps(w0, s.dw, s.kw, limW).1
                        } else {
                            count = (kdHi - kdLo) * (khHi - khLo) * (kwHi - kwLo)
                        }
                        y[o] = T(average: sum / Double(count))
                    }
                }
            }
        }
    }

    /// float32, 2-D (or 1-D), no Indices: the interior of each output row 8 outputs at a time.
    @inline(never)
    private func fastPlane(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        let s = self.s
        for oh in 0..<s.oh {
            let h0 = oh * s.sh - s.ph
            let (khLo, khHi) = Self.taps(h0, s.dh, s.kh, s.h)
            let row = y + oh * s.ow
            // Divisor of the interior, where every column tap is inside the image.
            let rowsCounted = countIncludePad ? Self.taps(h0, s.dh, s.kh, limH).1 : khHi - khLo
            let interiorScale = 1 / Float(rowsCounted * s.kw)
            for ow in 0..<owLo { row[ow] = fastBorder(x, h0, khLo, khHi, rowsCounted, ow) }
            var ow = owLo
            if s.sw <= 2 && owHiVector - owLo >= 8 {
                let scale = SIMD8<Float>(repeating: interiorScale)
                while ow + 32 <= owHiVector {
                    fastVector(x, h0, khLo, khHi, ow, row, scale, count: 4)
                    ow += 32
                }
                while ow + 8 <= owHiVector {
                    fastVector(x, h0, khLo, khHi, ow, row, scale, count: 1)
                    ow += 8
                }
                if ow < owHiVector {
                    // One vector ending at the interior's end, rewriting a few outputs with the same values.
                    fastVector(x, h0, khLo, khHi, owHiVector - 8, row, scale, count: 1)
                    ow = owHiVector
                }
            }
            while ow < s.ow {
                row[ow] = fastBorder(x, h0, khLo, khHi, rowsCounted, ow)
                ow += 1
            }
        }
    }

    /// `count` (1 or 4) vectors of 8 interior outputs from `ow`, independent chains to hide latency.
    @inline(__always)
    private func fastVector(
        _ x: UnsafePointer<Float>, _ h0: Int, _ khLo: Int, _ khHi: Int, _ ow: Int, _ row: UnsafeMutablePointer<Float>,
        _ scale: SIMD8<Float>, count: Int
    ) {
        let s = self.s
        let initial = SIMD8<Float>(repeating: isMax ? -.infinity : 0)
        var a0 = initial, a1 = initial, a2 = initial, a3 = initial
        let step = 8 &* s.sw
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
            if s.sw == 1 { return UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }
            return UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self).evenHalf
        }
        for kh in khLo..<khHi {
            let r = x + ((h0 &+ kh &* s.dh) &* s.w &+ ow &* s.sw &- s.pw)
            for kw in 0..<s.kw {
                let p = r + kw &* s.dw
                if isMax {
                    a0 = maxLanes(a0, load(p))
                    if count == 4 {
                        a1 = maxLanes(a1, load(p + step))
                        a2 = maxLanes(a2, load(p + 2 &* step))
                        a3 = maxLanes(a3, load(p + 3 &* step))
                    }
                } else {
                    a0 += load(p)
                    if count == 4 {
                        a1 += load(p + step)
                        a2 += load(p + 2 &* step)
                        a3 += load(p + 3 &* step)
                    }
                }
            }
        }
        if !isMax {
            a0 *= scale
            a1 *= scale
            a2 *= scale
            a3 *= scale
        }
        let o = UnsafeMutableRawPointer(row + ow)
        o.storeBytes(of: a0, as: SIMD8<Float>.self)
        if count == 4 {
            o.storeBytes(of: a1, toByteOffset: 32, as: SIMD8<Float>.self)
            o.storeBytes(of: a2, toByteOffset: 64, as: SIMD8<Float>.self)
            o.storeBytes(of: a3, toByteOffset: 96, as: SIMD8<Float>.self)
        }
    }

    @inline(__always)
    private func fastBorder(
        _ x: UnsafePointer<Float>, _ h0: Int, _ khLo: Int, _ khHi: Int, _ rowsCounted: Int, _ ow: Int
    ) -> Float {
        let s = self.s
        let w0 = ow * s.sw - s.pw
        let (kwLo, kwHi) = Self.taps(w0, s.dw, s.kw, s.w)
        if isMax {
            var best = -Float.infinity
            for kh in khLo..<khHi {
                let r = x + (h0 + kh * s.dh) * s.w + w0
                for kw in kwLo..<kwHi { best = Swift.max(best, r[kw * s.dw]) }
            }
            return best
        }
        var sum: Float = 0
        for kh in khLo..<khHi {
            let r = x + (h0 + kh * s.dh) * s.w + w0
            for kw in kwLo..<kwHi { sum += r[kw * s.dw] }
        }
        let cols = countIncludePad ? Self.taps(w0, s.dw, s.kw, limW).1 : kwHi - kwLo
        return sum / Float(rowsCounted * cols)
    }
}

/// GlobalAveragePool / GlobalMaxPool: one reduction per (image, channel) plane.
final class GlobalPoolKernel: Kernel {
    private let dtype: DType
    private let planes: Int
    private let size: Int
    private let isMax: Bool

    init(_ shape: [Int], _ dtype: DType, max: Bool) {
        self.dtype = dtype
        planes = shape[0] * shape[1]
        size = ShapeUtil.count(Array(shape[2...]))
        isMax = max
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        guard let x = inputs.first ?? nil, let y = outputs.first else {
            throw AidgeError.invalidModel("global pooling needs an input X")
        }
        switch dtype {
        case .float32: reduce(x.pointer(as: Float.self), y.pointer(as: Float.self))
        case .float64: reduce(x.pointer(as: Double.self), y.pointer(as: Double.self))
        default: throw AidgeError.unsupportedType("global pooling has no CPU kernel for \(dtype)")
        }
    }

    private func reduce<T: PoolElement>(_ xp: UnsafeMutablePointer<T>, _ yp: UnsafeMutablePointer<T>) {
        let size = self.size
        Parallel.forEach(planes, grain: Swift.max(1, 32768 / Swift.max(size, 1))) { range in
            for p in range {
                let src = xp + p * size
                if T.self == Float.self {
                    let f = UnsafeRawPointer(src).assumingMemoryBound(to: Float.self)
                    let v = self.isMax ? Self.maxFloat(f, size) : Self.sumFloat(f, size) / Float(size)
                    UnsafeMutableRawPointer(yp + p).storeBytes(of: v, as: Float.self)
                } else if self.isMax {
                    var best = T.lowest
                    for i in 0..<size { best = Swift.max(best, src[i]) }
                    yp[p] = best
                } else {
                    var sum = 0.0
                    for i in 0..<size { sum += src[i].asDouble }
                    yp[p] = T(average: sum / Double(size))
                }
            }
        }
    }

    @inline(__always)
    private static func sumFloat(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc0 = SIMD8<Float>()
        var acc1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            acc0 += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
            acc1 += UnsafeRawPointer(p + i + 8).loadUnaligned(as: SIMD8<Float>.self)
            i += 16
        }
        var s = (acc0 + acc1).sum()
        while i < n {
            s += p[i]
            i += 1
        }
        return s
    }

    @inline(__always)
    private static func maxFloat(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: -.infinity)
        var i = 0
        while i + 8 <= n {
            acc = maxLanes(acc, UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self))
            i += 8
        }
        var m = acc.max()
        while i < n {
            m = Swift.max(m, p[i])
            i += 1
        }
        return m
    }
}

/// Lane-wise maximum as one compare and blend (the standard library's `pointwiseMax` goes lane by lane).
/// A NaN in `b` is skipped, as the ONNX reference skips NaN inputs of MaxPool.
@inline(__always)
func maxLanes(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
    a.replacing(with: b, where: b .> a)
}

/// LpPool on any number of spatial dimensions: (sum of |x|^p over each window's taps inside the input)^(1/p),
/// in double.
private struct LpPoolFamily: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        let shape = try request.input(0).shape
        let window = try PoolGeometry.window(request.attributes, shape, what: "LpPool")
        let p = Double(try request.attributes.int("p", default: 2))
        let planes = shape[0] * shape[1]
        let inputPlane = ShapeUtil.count(window.input)
        let outputPlane = ShapeUtil.count(window.output)
        let taps = ShapeUtil.count(window.kernel)
        let inputStrides = ShapeUtil.contiguousStrides(window.input)
        let rank = window.rank
        return ClosureKernel { inputs, outputs in
            let x = try presentInput(inputs, 0).pointer(as: T.self)
            let y = try firstOutput(outputs).pointer(as: T.self)
            Parallel.forEach(planes * outputPlane, grain: max(1, 4096 / max(taps, 1))) { range in
                for item in range {
                    let (plane, o) = (item / outputPlane, item % outputPlane)
                    var sum: Double = 0
                    for t in 0..<taps {
                        var offset = 0
                        var inside = true
                        var (oRest, tRest) = (o, t)
                        for d in stride(from: rank - 1, through: 0, by: -1) {
                            let out = oRest % window.output[d]
                            let tap = tRest % window.kernel[d]
                            oRest /= window.output[d]
                            tRest /= window.kernel[d]
                            let i = out * window.strides[d] - window.padsBegin[d] + tap * window.dilations[d]
                            if i < 0 || i >= window.input[d] { inside = false; break }
                            offset += i * inputStrides[d]
                        }
                        if inside { sum += Double(x[plane * inputPlane + offset].magnitude).power(p) }
                    }
                    y[item] = T(sum.power(1 / p))
                }
            }
        }
    }
}

extension Double {
    /// self^p; squares and square roots exactly rounded.
    @inline(__always) fileprivate func power(_ p: Double) -> Double {
        if p == 2 { return self * self }
        if p == 0.5 { return squareRoot() }
        if p == 1 { return self }
        return Double.mathPow(self, p)
    }
}
