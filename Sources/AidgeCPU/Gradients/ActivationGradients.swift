import AidgeCore

/// Backward of the activations: element-wise non-linearities, Clip, PRelu, Softmax and LogSoftmax.
func registerActivationGradients(_ registry: KernelRegistry) {
    registry.registerGradient("Relu", backend: "cpu") { request in
        UnaryGradientKernel(ReluDerivative(), try gradientType(try request.input(0).dtype, request))
    }
}

/// The derivative of an element-wise function, from its input `x` and output `y`.
protocol UnaryDerivative {
    /// Whether the derivative reads the input (else only the output).
    var readsInput: Bool { get }
    func derivative<T: GradientFloat>(x: T, y: T) -> T
}

/// Relu: 1 where the output is positive.
struct ReluDerivative: UnaryDerivative {
    var readsInput: Bool { false }
    @inline(__always) func derivative<T: GradientFloat>(x: T, y: T) -> T { y > 0 ? 1 : 0 }
}

/// `dx += dy * f'(x, y)` for an element-wise function.
final class UnaryGradientKernel<D: UnaryDerivative>: GradientKernel {
    let derivative: D
    let dtype: DType

    init(_ derivative: D, _ dtype: DType) {
        self.derivative = derivative
        self.dtype = dtype
    }

    func readsInput(_ index: Int) -> Bool { derivative.readsInput }

    func backward(_ pass: BackwardPass) throws {
        guard let dx = pass.inputGradient(0), let dy = pass.outputGradient(0) else { return }
        try dispatch(dtype, Body(derivative: derivative, x: try pass.input(0), y: pass.outputs[0], dy: dy, dx: dx))
    }

    private struct Body: GradientBody {
        let derivative: D
        let x: Tensor, y: Tensor, dy: Tensor, dx: Tensor
        func run<T: GradientFloat>(_: T.Type) {
            let (xp, yp, gp, dp) = (x.pointer(as: T.self), y.pointer(as: T.self), dy.pointer(as: T.self), dx.pointer(as: T.self))
            let d = derivative
            Parallel.forEach(dx.count, grain: 1 << 13) { range in
                for i in range { dp[i] += gp[i] * d.derivative(x: xp[i], y: yp[i]) }
            }
        }
    }
}
