#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import AidgeCore

/// The learning rate as a function of the update step (0 for the first update), Aidge's `constant_lr`,
/// `step_lr` and `cosine_lr`, each with an optional linear warm-up.
public struct LearningRateSchedule: Sendable, Equatable {
    public enum Shape: Sendable, Equatable {
        case constant
        /// Multiplied by `gamma` every `stepSize` steps.
        case step(stepSize: Int, gamma: Double)
        /// Cosine from the base rate down to `minDecay ·` base rate at `maxSteps` (and flat after).
        case cosine(maxSteps: Int, minDecay: Double)
    }

    public let base: Double
    public let shape: Shape
    /// Steps of linear warm-up from `base / warmup` to `base` before the schedule starts.
    public let warmup: Int

    public init(base: Double, shape: Shape = .constant, warmup: Int = 0) throws {
        guard base.isFinite, base >= 0 else {
            throw AidgeError.invalidArgument("learning rate must be a finite number >= 0, got \(base)")
        }
        guard warmup >= 0 else { throw AidgeError.invalidArgument("warm-up steps must be >= 0, got \(warmup)") }
        switch shape {
        case .constant: break
        case .step(let stepSize, let gamma):
            guard stepSize > 0, gamma.isFinite, gamma >= 0 else {
                throw AidgeError.invalidArgument("step schedule: step size must be > 0 and gamma finite, got \(stepSize), \(gamma)")
            }
        case .cosine(let maxSteps, let minDecay):
            guard maxSteps > 0, minDecay.isFinite, minDecay >= 0 else {
                throw AidgeError.invalidArgument("cosine schedule: max steps must be > 0 and min decay >= 0, got \(maxSteps), \(minDecay)")
            }
        }
        self.base = base
        self.shape = shape
        self.warmup = warmup
    }

    public static func constant(_ rate: Double) throws -> LearningRateSchedule { try .init(base: rate) }

    /// The rate of update number `step` (0-based).
    public func rate(at step: Int) -> Double {
        if step < warmup { return base * Double(step + 1) / Double(warmup) }
        let t = step - warmup
        switch shape {
        case .constant:
            return base
        case .step(let stepSize, let gamma):
            return base * pow(gamma, Double(t / stepSize))
        case .cosine(let maxSteps, let minDecay):
            let progress = Double(min(t, maxSteps)) / Double(maxSteps)
            return base * (minDecay + (1 - minDecay) * (1 + cos(Double.pi * progress)) / 2)
        }
    }
}
