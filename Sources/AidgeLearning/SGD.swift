import AidgeCore

/// Stochastic gradient descent with PyTorch's update rule (momentum, dampening, Nesterov, weight decay):
/// `g += wd·p; b = g (first step) or μ·b + (1 - dampening)·g; g = nesterov ? g + μ·b : b; p -= lr·g`.
public final class SGD: Optimizer {
    public let momentum: Double
    public let dampening: Double
    public let weightDecay: Double
    public let nesterov: Bool

    public init(
        learningRate: Double = 0.01, momentum: Double = 0, dampening: Double = 0, weightDecay: Double = 0,
        nesterov: Bool = false
    ) throws {
        for (name, v) in [("momentum", momentum), ("dampening", dampening), ("weight decay", weightDecay)] {
            guard v.isFinite, v >= 0 else { throw AidgeError.invalidArgument("SGD \(name) must be finite and >= 0, got \(v)") }
        }
        guard !nesterov || (momentum > 0 && dampening == 0) else {
            throw AidgeError.invalidArgument("SGD: Nesterov momentum requires momentum > 0 and zero dampening")
        }
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        try super.init(learningRate: learningRate)
    }

    override func update(_ index: Int, _ value: Tensor, _ gradient: Tensor, rate: Double) throws {
        let buffer = momentum != 0 ? self.buffer(index, 0, like: value) : nil
        switch value.dtype {
        case .float32: apply(Float.self, value, gradient, buffer, rate)
        default: apply(Double.self, value, gradient, buffer, rate)
        }
    }

    private func apply<T: OptimizerFloat>(
        _: T.Type, _ value: Tensor, _ gradient: Tensor, _ buffer: (tensor: Tensor, isNew: Bool)?, _ rate: Double
    ) {
        let p = value.pointer(as: T.self)
        let g = gradient.pointer(as: T.self)
        let (wd, mu, keep, lr) = (T(weightDecay), T(momentum), T(1 - dampening), T(rate))
        let b = buffer?.tensor.pointer(as: T.self)
        let first = buffer?.isNew ?? false
        for i in 0..<value.count {
            var d = g[i]
            if wd != 0 { d = d + wd * p[i] }
            if let b {
                b[i] = first ? d : mu * b[i] + keep * d
                d = nesterov ? d + mu * b[i] : b[i]
            }
            p[i] = p[i] - lr * d
        }
    }
}
