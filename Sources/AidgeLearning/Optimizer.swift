import AidgeCore

/// Updates parameters from their gradients (Aidge's optimizers: `set_parameters`, `reset_grad`, `update`).
///
/// Parameters are tensors with gradient cells (the tensors of Producer nodes); updates write into their storage,
/// so the Producers, Python and any framework sharing that memory see the new values. A parameter whose gradient
/// is empty is left alone for that step (as PyTorch skips `grad is None`).
public class Optimizer {
    public private(set) var parameters: [Tensor] = []
    public var schedule: LearningRateSchedule
    /// Updates done so far (the schedule's step).
    public internal(set) var step = 0
    /// Per-parameter buffers (momentum, moments), created on first use: `state[i]` belongs to `parameters[i]`.
    var buffers: [[Tensor]] = []

    init(learningRate: Double) throws {
        schedule = try .constant(learningRate)
    }

    /// The learning rate of the next update.
    public var learningRate: Double { schedule.rate(at: step) }

    /// Sets the parameters: Producer nodes (their tensors) or tensors with gradient cells. Resets the state.
    public func setParameters(_ nodes: [Node]) throws {
        try setParameters(
            nodes.map { node in
                guard node.type == "Producer", let tensor = node.producedTensor else {
                    throw AidgeError.invalidArgument(
                        "optimizer parameters must be Producer nodes; node \(node.name) is a \(node.type)")
                }
                guard tensor.gradient != nil else {
                    throw AidgeError.invalidArgument("Producer \(node.name) is constant: it has no gradient to train")
                }
                return tensor
            })
    }

    public func setParameters(_ tensors: [Tensor]) throws {
        for (i, t) in tensors.enumerated() {
            guard t.gradient != nil else {
                throw AidgeError.invalidArgument("parameter \(i) has no gradient cell (not a trainable Producer's tensor)")
            }
            guard t.dtype == .float32 || t.dtype == .float64 else {
                throw AidgeError.unsupportedType("parameter \(i) is \(t.dtype); optimizers update float32 and float64")
            }
            guard !t.storage.isReadOnly else {
                throw AidgeError.invalidArgument("parameter \(i) is read-only memory and cannot be updated")
            }
        }
        parameters = tensors
        buffers = Array(repeating: [], count: tensors.count)
        step = 0
    }

    /// Empties every parameter's gradient (Aidge's `reset_grad`, PyTorch's `zero_grad(set_to_none=True)`).
    public func resetGradients() {
        for p in parameters { p.gradient?.reset() }
    }

    /// One update of every parameter that has a gradient, then the schedule advances.
    public func update() throws {
        let rate = learningRate
        guard rate.isFinite else { throw AidgeError.invalidArgument("the learning rate is \(rate)") }
        for (i, p) in parameters.enumerated() {
            guard let g = p.gradient?.tensor else { continue }
            guard g.shape == p.shape, g.dtype == p.dtype else {
                throw AidgeError.shapeMismatch(
                    "parameter \(i) has shape \(ShapeUtil.text(p.shape)) but its gradient \(ShapeUtil.text(g.shape))")
            }
            let target = p.contiguous()
            try update(i, target, g.contiguous(), rate: rate)
            if !p.isContiguous { copyElements(from: target, to: p) }
        }
        step += 1
    }

    /// Updates parameter `index` (contiguous `value`) from `gradient`; subclasses implement it.
    func update(_ index: Int, _ value: Tensor, _ gradient: Tensor, rate: Double) throws {
        throw AidgeError.unsupported("this optimizer has no update rule")
    }

    /// The state buffer `k` of parameter `index`, created zero-filled on first use (`isNew` tells).
    func buffer(_ index: Int, _ k: Int, like value: Tensor) -> (tensor: Tensor, isNew: Bool) {
        if buffers[index].count > k { return (buffers[index][k], false) }
        let t = Tensor(zeros: value.shape, dtype: value.dtype)
        buffers[index].append(t)
        return (t, true)
    }

    // MARK: - Saved state

    /// Everything needed to resume training: the step and the per-parameter buffers (copies).
    public var state: OptimizerState {
        OptimizerState(step: step, buffers: buffers.map { $0.map { $0.copy() } })
    }

    /// Restores a state saved from an optimizer of the same kind over parameters of the same shapes.
    public func load(_ state: OptimizerState) throws {
        guard state.buffers.count == parameters.count else {
            throw AidgeError.invalidArgument(
                "optimizer state holds \(state.buffers.count) parameters, this optimizer has \(parameters.count)")
        }
        for (i, (saved, p)) in zip(state.buffers, parameters).enumerated() {
            for t in saved where t.shape != p.shape || t.dtype != p.dtype {
                throw AidgeError.shapeMismatch(
                    "optimizer state of parameter \(i) is \(t.dtype) \(ShapeUtil.text(t.shape)); the parameter is "
                        + "\(p.dtype) \(ShapeUtil.text(p.shape))")
            }
        }
        guard state.step >= 0 else { throw AidgeError.invalidArgument("optimizer state step \(state.step) < 0") }
        step = state.step
        buffers = state.buffers.map { $0.map { $0.copy() } }
    }
}

/// An optimizer's saved state.
public struct OptimizerState: Sendable {
    public var step: Int
    /// For each parameter, its buffers in the optimizer's order (SGD: momentum; Adam: first and second moments).
    public var buffers: [[Tensor]]

    public init(step: Int, buffers: [[Tensor]]) {
        self.step = step
        self.buffers = buffers
    }
}

/// Element types the update rules compute in.
protocol OptimizerFloat: BinaryFloatingPoint {
    static func squareRoot(_ x: Self) -> Self
}
extension Float: OptimizerFloat {
    static func squareRoot(_ x: Float) -> Float { x.squareRoot() }
}
extension Double: OptimizerFloat {
    static func squareRoot(_ x: Double) -> Double { x.squareRoot() }
}
