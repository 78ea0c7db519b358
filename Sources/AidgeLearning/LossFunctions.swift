#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The element formulas of the losses (see `Loss` for their semantics).

struct MSE: LossFunction {
    func evaluate<T: BinaryFloatingPoint & Sendable>(
        _ p: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>, _ g: UnsafeMutablePointer<T>, _ shape: [Int]
    ) -> Double {
        let n = shape.reduce(1, *)
        let scale = T(2) / T(n)
        var sum = 0.0
        for i in 0..<n {
            let d = p[i] - y[i]
            sum += Double(d * d)
            g[i] = scale * d
        }
        return sum / Double(n)
    }
}

struct BCE: LossFunction {
    func evaluate<T: BinaryFloatingPoint & Sendable>(
        _ p: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>, _ g: UnsafeMutablePointer<T>, _ shape: [Int]
    ) -> Double {
        let n = shape.reduce(1, *)
        var sum = 0.0
        for i in 0..<n {
            let (pd, yd) = (Double(p[i]), Double(y[i]))
            sum -= yd * max(log(pd), -100) + (1 - yd) * max(log(1 - pd), -100)
            g[i] = T((pd - yd) / max((1 - pd) * pd, 1e-12) / Double(n))
        }
        return sum / Double(n)
    }
}

struct BCEWithLogits: LossFunction {
    func evaluate<T: BinaryFloatingPoint & Sendable>(
        _ p: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>, _ g: UnsafeMutablePointer<T>, _ shape: [Int]
    ) -> Double {
        let n = shape.reduce(1, *)
        var sum = 0.0
        for i in 0..<n {
            let (x, t) = (Double(p[i]), Double(y[i]))
            sum += max(x, 0) - x * t + log1p(exp(-abs(x)))
            g[i] = T((1 / (1 + exp(-x)) - t) / Double(n))
        }
        return sum / Double(n)
    }
}

/// Softmax cross-entropy over axis 1 of `[N, C, d...]`, against probabilities (`indices == nil`: the target
/// tensor) or class indices (one per `[N, d...]` position, with label smoothing and an ignored index).
struct CrossEntropy: LossFunction {
    let classes: Int
    let indices: [Int]?
    var smoothing = 0.0
    var ignoreIndex = -100

    func evaluate<T: BinaryFloatingPoint & Sendable>(
        _ p: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>, _ g: UnsafeMutablePointer<T>, _ shape: [Int]
    ) -> Double {
        let batch = shape[0]
        let inner = shape.dropFirst(2).reduce(1, *)
        let c = classes
        // Positions that count (all of them for probability targets).
        var counted = batch * inner
        if let indices { counted = indices.filter { $0 != ignoreIndex }.count }
        let denominator = Double(max(counted, 1))
        var total = 0.0
        var logProbabilities = [Double](repeating: 0, count: c)
        for b in 0..<batch {
            for s in 0..<inner {
                let base = b * c * inner + s
                var peak = -Double.infinity
                for k in 0..<c { peak = max(peak, Double(p[base + k * inner])) }
                var sum = 0.0
                for k in 0..<c { sum += exp(Double(p[base + k * inner]) - peak) }
                let logSum = log(sum) + peak
                for k in 0..<c { logProbabilities[k] = Double(p[base + k * inner]) - logSum }
                if let indices {
                    let target = indices[b * inner + s]
                    if target == ignoreIndex { continue }
                    // Target distribution: (1 - ε) one-hot + ε / C.
                    let off = smoothing / Double(c)
                    for k in 0..<c {
                        let t = (k == target ? 1 - smoothing : 0) + off
                        total -= t * logProbabilities[k]
                        g[base + k * inner] = T((exp(logProbabilities[k]) - t) / denominator)
                    }
                } else {
                    var mass = 0.0
                    for k in 0..<c {
                        let t = Double(y[base + k * inner])
                        mass += t
                        total -= t * logProbabilities[k]
                    }
                    for k in 0..<c {
                        let t = Double(y[base + k * inner])
                        g[base + k * inner] = T((exp(logProbabilities[k]) * mass - t) / denominator)
                    }
                }
            }
        }
        return total / denominator
    }
}
