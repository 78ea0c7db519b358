import AidgeCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Kernels of the loss operators on the float types: NegativeLogLikelihoodLoss reads log-probabilities,
/// SoftmaxCrossEntropyLoss computes them (log_softmax along the class axis) first. Sums run in double.
func registerLossKernels(_ registry: KernelRegistry) {
    registry.register("NegativeLogLikelihoodLoss", backend: "cpu") { try makeKernel(LossFamily(softmax: false), $0) }
    registry.register("SoftmaxCrossEntropyLoss", backend: "cpu") { try makeKernel(LossFamily(softmax: true), $0) }
}

private struct LossFamily: KernelFamily {
    let softmax: Bool

    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try LossKernel<T>(request, softmax: softmax)
    }
}

private final class LossKernel<T: MathFloat>: Kernel {
    let batch: Int
    let classes: Int
    /// Elements per (sample, class): the product of the trailing dimensions.
    let inner: Int
    let reduction: LossReduction
    let ignoreIndex: Int?
    let softmax: Bool
    /// log_softmax of the scores when the node does not output it.
    let scratch: Tensor

    init(_ request: KernelRequest, softmax: Bool) throws {
        let shape = try request.input(0).shape
        batch = shape[0]
        classes = shape[1]
        inner = ShapeUtil.count(Array(shape[2...]))
        reduction = try OperatorSchema.lossReduction(request.attributes)
        ignoreIndex = request.attributes.has("ignore_index") ? try request.attributes.int("ignore_index") : nil
        self.softmax = softmax
        scratch = Tensor(zeros: softmax ? shape : [], dtype: T.dtype)
    }

    func run(_ inputs: [Tensor?], _ outputs: [Tensor]) throws {
        let x = try presentInput(inputs, 0).pointer(as: T.self)
        let target = try presentInput(inputs, 1)
        let weight = inputs.count > 2 ? inputs[2]?.pointer(as: T.self) : nil
        let loss = try firstOutput(outputs).pointer(as: T.self)
        var logProbabilities = x
        if softmax {
            let p = (outputs.count > 1 ? outputs[1] : scratch).pointer(as: T.self)
            logSoftmax(x, into: p)
            logProbabilities = p
        }
        var total: Double = 0
        var weights: Double = 0
        for n in 0..<batch {
            for i in 0..<inner {
                let position = n * inner + i
                let label = target.dtype == .int64
                    ? Int(target.pointer(as: Int64.self)[position]) : Int(target.pointer(as: Int32.self)[position])
                var value: Double = 0
                if label != ignoreIndex {
                    guard label >= 0, label < classes else {
                        throw AidgeError.invalidArgument(
                            "target \(label) at position \(position) is out of range for \(classes) classes")
                    }
                    let w = weight.map { Double($0[label]) } ?? 1
                    value = -Double(logProbabilities[(n * classes + label) * inner + i]) * w
                    weights += w
                }
                if reduction == .none { loss[position] = T(value) } else { total += value }
            }
        }
        switch reduction {
        case .none: break
        case .sum: loss[0] = T(total)
        case .mean:
            // Without weights or an ignored index every element counts (NumPy's mean).
            let count = weight == nil && ignoreIndex == nil ? Double(batch * inner) : weights
            loss[0] = T(total / count)
        }
    }

    /// log_softmax along the class axis, computed in double.
    private func logSoftmax(_ x: UnsafeMutablePointer<T>, into y: UnsafeMutablePointer<T>) {
        for n in 0..<batch {
            for i in 0..<inner {
                let base = n * classes * inner + i
                var top = -Double.infinity
                for c in 0..<classes { top = max(top, Double(x[base + c * inner])) }
                var sum: Double = 0
                for c in 0..<classes { sum += exp(Double(x[base + c * inner]) - top) }
                let shift = top + log(sum)
                for c in 0..<classes { y[base + c * inner] = T(Double(x[base + c * inner]) - shift) }
            }
        }
    }
}
