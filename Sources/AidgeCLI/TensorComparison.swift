import Aidge

/// How far a tensor is from a reference, element by element.
///
/// An element passes when `|actual - expected| <= atol + rtol * |expected|` (NumPy's `allclose`) for floating-point
/// dtypes, and when it is equal for integers and booleans. NaN matches NaN, and an infinity the same infinity.
struct TensorComparison {
    /// Largest `|actual - expected|` (infinity where one side is NaN and the other is not).
    var maxAbs = 0.0
    /// Largest `|actual - expected| / max(|expected|, tiny)`.
    var maxRel = 0.0
    /// Elements outside the tolerance.
    var mismatches = 0
    /// A shape or dtype that differs; nil when both agree.
    var problem: String?
    /// Whether the elements were compared (the shapes are the same).
    var comparedElements = true

    var passed: Bool { problem == nil && mismatches == 0 }

    /// Denominator floor of the relative difference.
    static let tiny = 1e-12

    init(_ actual: Tensor, _ expected: Tensor, rtol: Double, atol: Double) {
        guard actual.shape == expected.shape else {
            problem = "shape \(ShapeUtil.text(actual.shape)), ONNX Runtime \(ShapeUtil.text(expected.shape))"
            comparedElements = false
            return
        }
        if actual.dtype != expected.dtype { problem = "dtype \(actual.dtype), ONNX Runtime \(expected.dtype)" }
        let exact = !actual.dtype.isFloatingPoint && !expected.dtype.isFloatingPoint
        if exact {
            // Through Int64, so that 64-bit integers compare exactly.
            let a = actual.converted(to: Int64.self)
            let b = expected.converted(to: Int64.self)
            for i in a.indices where a[i] != b[i] {
                record(abs(Double(a[i]) - Double(b[i])), Double(b[i]), passes: false)
            }
        } else {
            let a = actual.doubles()
            let b = expected.doubles()
            for i in a.indices where !(a[i] == b[i] || (a[i].isNaN && b[i].isNaN)) {
                let diff = abs(a[i] - b[i])
                record(diff.isNaN ? .infinity : diff, b[i], passes: diff <= atol + rtol * abs(b[i]))
            }
        }
    }

    private mutating func record(_ diff: Double, _ expected: Double, passes: Bool) {
        maxAbs = max(maxAbs, diff)
        let scale = expected.isNaN ? Self.tiny : max(abs(expected), Self.tiny)
        maxRel = max(maxRel, diff / scale)
        if !passes { mismatches += 1 }
    }
}
