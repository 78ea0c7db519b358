import AidgeCore

/// Adam, and AdamW with `decoupledWeightDecay`, with PyTorch's update rule and order of operations:
/// `m ← m + (1-β1)(g - m); v ← β2·v + (1-β2)·g²; p -= lr/(1-β1ᵗ) · m / (sqrt(v)/sqrt(1-β2ᵗ) + ε)`; weight decay
/// adds `wd·p` to the gradient (Adam) or scales `p` by `1 - lr·wd` first (AdamW).
public final class Adam: Optimizer {
    public let beta1: Double
    public let beta2: Double
    public let epsilon: Double
    public let weightDecay: Double
    public let decoupledWeightDecay: Bool

    public init(
        learningRate: Double = 0.001, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8,
        weightDecay: Double = 0, decoupledWeightDecay: Bool = false
    ) throws {
        for (name, v) in [("beta1", beta1), ("beta2", beta2)] where !(0..<1).contains(v) {
            throw AidgeError.invalidArgument("Adam \(name) must be in [0, 1), got \(v)")
        }
        guard epsilon.isFinite, epsilon >= 0 else { throw AidgeError.invalidArgument("Adam epsilon must be >= 0, got \(epsilon)") }
        guard weightDecay.isFinite, weightDecay >= 0 else {
            throw AidgeError.invalidArgument("Adam weight decay must be finite and >= 0, got \(weightDecay)")
        }
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
        try super.init(learningRate: learningRate)
    }

    /// AdamW with PyTorch's default weight decay (0.01).
    public static func adamW(
        learningRate: Double = 0.001, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8,
        weightDecay: Double = 0.01
    ) throws -> Adam {
        try Adam(
            learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay,
            decoupledWeightDecay: true)
    }

    override func update(_ index: Int, _ value: Tensor, _ gradient: Tensor, rate: Double) throws {
        let m = buffer(index, 0, like: value).tensor
        let v = buffer(index, 1, like: value).tensor
        switch value.dtype {
        case .float32: apply(Float.self, value, gradient, m, v, rate)
        default: apply(Double.self, value, gradient, m, v, rate)
        }
    }

    private func apply<T: OptimizerFloat>(
        _: T.Type, _ value: Tensor, _ gradient: Tensor, _ mt: Tensor, _ vt: Tensor, _ rate: Double
    ) {
        let t = Double(step + 1)
        let stepSize = T(rate / (1 - pow(beta1, t)))
        let correction2 = T((1 - pow(beta2, t)).squareRoot())
        let (wd, b2, eps) = (T(weightDecay), T(beta2), T(epsilon))
        let (oneMinusB1, oneMinusB2) = (T(1 - beta1), T(1 - beta2))
        let shrink = T(1 - rate * weightDecay)
        let p = value.pointer(as: T.self)
        let g = gradient.pointer(as: T.self)
        let m = mt.pointer(as: T.self)
        let v = vt.pointer(as: T.self)
        for i in 0..<value.count {
            var d = g[i]
            if wd != 0 {
                if decoupledWeightDecay { p[i] = p[i] * shrink } else { d = d + wd * p[i] }
            }
            m[i] = m[i] + oneMinusB1 * (d - m[i])
            v[i] = v[i] * b2 + oneMinusB2 * d * d
            let denominator = T.squareRoot(v[i]) / correction2 + eps
            p[i] = p[i] - stepSize * (m[i] / denominator)
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
