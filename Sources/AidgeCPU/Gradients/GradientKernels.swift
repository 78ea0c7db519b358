import AidgeCore

/// Registers the backward (and training forward) kernels, one family per file in this folder.
func registerGradientKernels(_ registry: KernelRegistry) {
    registerElementwiseGradients(registry)
    registerActivationGradients(registry)
    registerReductionGradients(registry)
    registerLinearGradients(registry)
    registerConvolutionGradients(registry)
    registerPoolingGradients(registry)
    registerNormalizationGradients(registry)
    registerShapeGradients(registry)
    registerRecurrentGradients(registry)
}

/// The float types gradients are computed in.
protocol GradientFloat: MathFloat {}
extension Float: GradientFloat {}
extension Double: GradientFloat {}

/// `dtype` when gradients are computed in it (float32, float64), else an error naming the node.
func gradientType(_ dtype: DType, _ request: KernelRequest) throws -> DType {
    guard dtype == .float32 || dtype == .float64 else {
        throw AidgeError.unsupportedType(
            "\(request.op.type) (node \(request.nodeName)) has no backward for \(dtype) (float32 and float64 only)")
    }
    return dtype
}

/// Code generic over the gradient's float type, run for a dtype chosen at run time.
protocol GradientBody {
    func run<T: GradientFloat>(_: T.Type) throws
}

/// Runs `body` with Float for float32 and Double for float64.
func dispatch<B: GradientBody>(_ dtype: DType, _ body: B) throws {
    switch dtype {
    case .float32: try body.run(Float.self)
    case .float64: try body.run(Double.self)
    default: throw AidgeError.unsupportedType("gradients of \(dtype) values are not supported")
    }
}

/// Adds `gradient` (contiguous, of the broadcast shape) into `target` (contiguous, of a shape that broadcasts to
/// it), summing over the broadcast dimensions: the gradient of an input that NumPy broadcasting expanded.
func accumulateReduced<T: GradientFloat>(_ gradient: Tensor, into target: Tensor, _: T.Type) {
    let g = gradient.pointer(as: T.self)
    let t = target.pointer(as: T.self)
    let n = gradient.count
    if target.count == n {
        Parallel.forEach(n, grain: 1 << 14) { range in
            for i in range { t[i] += g[i] }
        }
        return
    }
    if target.count == 1 {
        var sum: T = 0
        for i in 0..<n { sum += g[i] }
        t[0] += sum
        return
    }
    // Strides of the target in the gradient's shape (0 along broadcast dimensions), innermost runs merged.
    let shape = gradient.shape
    let rank = shape.count
    let padded = Array(repeating: 1, count: rank - target.rank) + target.shape
    let contiguous = ShapeUtil.contiguousStrides(padded)
    let strides = (0..<rank).map { padded[$0] == 1 && shape[$0] != 1 ? 0 : contiguous[$0] }
    let inner = shape.last ?? 1
    let innerStride = strides.last ?? 0
    let outer = n / max(inner, 1)
    var index = [Int](repeating: 0, count: max(rank - 1, 0))
    var base = 0
    for o in 0..<outer {
        let row = g + o * inner
        if innerStride == 0 {
            var sum: T = 0
            for i in 0..<inner { sum += row[i] }
            t[base] += sum
        } else {
            for i in 0..<inner { t[base + i] += row[i] }
        }
        // Next outer index.
        var k = rank - 2
        while k >= 0 {
            index[k] += 1
            base += strides[k]
            if index[k] < shape[k] { break }
            base -= strides[k] * shape[k]
            index[k] = 0
            k -= 1
        }
    }
}
