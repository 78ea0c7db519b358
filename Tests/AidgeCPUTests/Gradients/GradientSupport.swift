import AidgeCore
import XCTest

/// Deterministic pseudo-random doubles in [-1, 1).
func randomDoubles(_ count: Int, seed: UInt64 = 7) -> [Double] {
    randomFloats(count, seed: seed).map { Double($0) }
}

/// A float64 tensor of `shape` with random values in [-1, 1) (scaled by `scale`, shifted by `shift`).
func randomTensor(_ shape: [Int], seed: UInt64 = 7, scale: Double = 1, shift: Double = 0) -> Tensor {
    let values = randomDoubles(ShapeUtil.count(shape), seed: seed).map { $0 * scale + shift }
    return (try? Tensor(values, shape: shape)) ?? Tensor(zeros: shape, dtype: .float64)
}

/// Checks the backward of one operator against central finite differences in float64.
///
/// The operator runs on `inputs` (float64 for the inputs to check); the scalar `L = Σ_k Σ outputs[k] · r_k` with
/// fixed random `r_k` is differentiated numerically with respect to every element of every non-constant float
/// input, and compared with the gradients that backward writes (|analytic - numeric| <= atol + rtol·|numeric|).
/// `seeded` limits which outputs carry a gradient (default: all). With `training`, every forward (the numeric
/// ones too) runs the training form on fresh copies of the inputs, since it updates state such as running
/// statistics in place.
func checkGradients(
    _ type: String, _ attributes: Attributes = [:], inputs: [Tensor?], constants: Set<Int> = [],
    outputCount: Int? = nil, seeded: Set<Int>? = nil, training: Bool = false, step: Double = 1e-6,
    atol: Double = 1e-6, rtol: Double = 1e-5, file: StaticString = #filePath, line: UInt = #line
) throws {
    _ = cpuRegistered
    let inputs = training ? inputs.map { $0?.copy() } : inputs
    func forward(_ ins: [Tensor?]) throws -> [Tensor] {
        guard training else {
            return try Scheduler.runOperator(type, attributes, inputs: ins, constants: constants, outputs: outputCount)
        }
        let count = outputCount ?? OperatorSchema.registry[type]?.outputCount ?? 1
        return try Scheduler.operatorGradients(
            type, attributes, inputs: ins.map { $0?.copy() }, constants: constants, outputs: outputCount,
            outputGradients: [Tensor?](repeating: nil, count: count), training: true
        ).outputs
    }
    let base = try forward(inputs)
    let seeds: [Tensor?] = base.enumerated().map { k, out in
        guard seeded?.contains(k) ?? true, out.dtype == .float64 else { return nil }
        return randomTensor(out.shape, seed: 1000 + UInt64(k))
    }
    func objective(_ ins: [Tensor?]) throws -> Double {
        var sum = 0.0
        for (out, seed) in zip(try forward(ins), seeds) {
            guard let seed else { continue }
            for (a, b) in zip(out.doubles(), seed.doubles()) { sum += a * b }
        }
        return sum
    }
    let (_, analytic) = try Scheduler.operatorGradients(
        type, attributes, inputs: training ? inputs.map { $0?.copy() } : inputs, constants: constants,
        outputs: outputCount, outputGradients: seeds, training: training)
    for (i, input) in inputs.enumerated() {
        guard let input, !constants.contains(i), input.dtype == .float64,
            OperatorSchema.registry[type]?.isDifferentiable(input: i, dtype: .float64) ?? true
        else { continue }
        guard let gradient = analytic[i] else {
            XCTFail("\(type): no gradient for input \(i)", file: file, line: line)
            continue
        }
        XCTAssertEqual(gradient.shape, input.shape, "\(type): gradient shape of input \(i)", file: file, line: line)
        let got = gradient.doubles()
        var values = input.doubles()
        for e in values.indices {
            let saved = values[e]
            var perturbed = inputs
            values[e] = saved + step
            perturbed[i] = try Tensor(values, shape: input.shape)
            let plus = try objective(perturbed)
            values[e] = saved - step
            perturbed[i] = try Tensor(values, shape: input.shape)
            let minus = try objective(perturbed)
            values[e] = saved
            let numeric = (plus - minus) / (2 * step)
            if !(abs(got[e] - numeric) <= atol + rtol * abs(numeric)) {
                XCTFail(
                    "\(type): d/d input \(i)[\(e)]: backward \(got[e]), finite difference \(numeric)",
                    file: file, line: line)
                return
            }
        }
    }
}
