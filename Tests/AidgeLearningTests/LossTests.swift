import Aidge
import XCTest

/// Losses: the gradient each writes equals the finite difference of its value (float64), and bad targets fail.
final class LossTests: XCTestCase {
    private func values(_ n: Int, seed: Double) -> [Double] {
        (0..<n).map { sin(Double($0) * 1.7 + seed) * 2 }
    }

    /// Checks `loss`'s written gradient against central differences of its value.
    private func check(_ shape: [Int], target: Tensor, _ loss: (Tensor, Tensor) throws -> Tensor, transform: (Double) -> Double = { $0 }) throws {
        let p = values(shape.reduce(1, *), seed: 0.3).map(transform)
        let prediction = try Tensor(p, shape: shape).withGradient()
        _ = try loss(prediction, target)
        let written = try XCTUnwrap(prediction.gradient?.tensor).doubles()
        let h = 1e-6
        for i in p.indices {
            var plus = p, minus = p
            plus[i] += h
            minus[i] -= h
            let numeric = (try loss(Tensor(plus, shape: shape), target).doubles()[0]
                - loss(Tensor(minus, shape: shape), target).doubles()[0]) / (2 * h)
            XCTAssertEqual(written[i], numeric, accuracy: 1e-7 + 1e-6 * abs(numeric), "element \(i)")
        }
    }

    func testGradientsMatchFiniteDifferences() throws {
        let shape = [4, 5]
        let real = try Tensor(values(20, seed: 1.1), shape: shape)
        let binary = try Tensor(values(20, seed: 2.2).map { $0 > 0 ? 1.0 : 0.0 }, shape: shape)
        var probabilities = values(20, seed: 0.7).map { exp($0) }
        for r in 0..<4 {
            let sum = probabilities[(r * 5)..<(r * 5 + 5)].reduce(0, +)
            for c in 0..<5 { probabilities[r * 5 + c] /= sum }
        }
        try check(shape, target: real, Loss.mse)
        try check(shape, target: binary, Loss.bce, transform: { 1 / (1 + exp(-$0)) })
        try check(shape, target: binary, Loss.bceWithLogits)
        try check(shape, target: try Tensor(probabilities, shape: shape)) {
            try Loss.crossEntropy($0, probabilities: $1)
        }
        let labels = try Tensor([Int64(0), 4, 2, 1], shape: [4])
        try check(shape, target: labels) { try Loss.crossEntropy($0, classIndices: $1, labelSmoothing: 0.1) }
    }

    func testGradientsAccumulateAcrossLosses() throws {
        let prediction = try Tensor([1.0, 2.0], shape: [2]).withGradient()
        let target = try Tensor([0.0, 0.0], shape: [2])
        _ = try Loss.mse(prediction, target)
        _ = try Loss.mse(prediction, target)
        // d/dp of 2 · mean(p²) = 2 · 2p / 2.
        XCTAssertEqual(try prediction.gradient?.tensor?.scalars(as: Double.self), [2, 4])
    }

    func testBadTargetsAreClearErrors() throws {
        let prediction = Tensor(zeros: [3, 4])
        XCTAssertThrowsError(try Loss.mse(prediction, Tensor(zeros: [4, 3]))) { error in
            XCTAssertTrue("\(error)".contains("shape"), "\(error)")
        }
        XCTAssertThrowsError(try Loss.crossEntropy(prediction, classIndices: try Tensor([Int64(0), 9, 1], shape: [3]))) {
            XCTAssertTrue("\($0)".contains("out of range"), "\($0)")
        }
        XCTAssertThrowsError(try Loss.mse(Tensor(zeros: [2], dtype: .int32), Tensor(zeros: [2], dtype: .int32)))
    }
}
