import AidgeCPU
import AidgeCore
import Foundation
import XCTest

/// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss as graph operators, against loops written from the spec.
final class LossOperatorTests: XCTestCase {
    func testSoftmaxCrossEntropyMatchesTheDefinition() throws {
        let (n, c) = (4, 3)
        let scores = randomFloats(n * c, seed: 3)
        let labels: [Int64] = [2, 0, 1, 1]
        let weights: [Float] = [0.5, 2, 1]
        var total = 0.0
        var weightSum = 0.0
        for i in 0..<n {
            let row = scores[(i * c)..<(i * c + c)].map(Double.init)
            let logSum = log(row.map { exp($0) }.reduce(0, +))
            let w = Double(weights[Int(labels[i])])
            total += -(row[Int(labels[i])] - logSum) * w
            weightSum += w
        }
        let out = try runOperator(
            "SoftmaxCrossEntropyLoss", inputs: [try Tensor(scores, shape: [n, c]), Tensor(labels), Tensor(weights)])
        XCTAssertEqual(out[0].shape, [])
        XCTAssertEqual(out[0].doubles()[0], total / weightSum, accuracy: 1e-5)
    }

    func testIgnoredTargetsAndErrors() throws {
        let logProbabilities = try Tensor([-1, -2, -3, -4] as [Float], shape: [2, 2])
        let summed = try runOperator(
            "NegativeLogLikelihoodLoss", ["reduction": .string("none"), "ignore_index": .int(1)],
            inputs: [logProbabilities, Tensor([Int64(0), 1])])[0]
        XCTAssertEqual(try summed.scalars(as: Float.self), [1, 0])
        XCTAssertThrowsError(
            try runOperator("NegativeLogLikelihoodLoss", inputs: [logProbabilities, Tensor([Int64(0), 2])])
        ) { XCTAssertTrue("\($0)".contains("target 2 at position 1 is out of range for 2 classes"), "\($0)") }
        XCTAssertThrowsError(
            try runOperator("NegativeLogLikelihoodLoss", inputs: [logProbabilities, Tensor([Int64(0), 1, 1])])
        ) { XCTAssertTrue("\($0)".contains("the target must have shape [2]"), "\($0)") }
    }
}
