import AidgeCore
import XCTest

/// Finite-difference checks (float64) of the activation backwards.
final class ActivationGradientTests: XCTestCase {
    override func setUp() { _ = cpuRegistered }

    /// Random values in [-3, 3) kept `gap` away from each of `kinks` (where the finite difference is not exact).
    func values(_ shape: [Int], seed: UInt64 = 7, kinks: [Double] = [0], gap: Double = 0.05) throws -> Tensor {
        let v = randomTensor(shape, seed: seed, scale: 3).doubles().map { v -> Double in
            var v = v
            for k in kinks where abs(v - k) < gap { v = k + (v < k ? -gap : gap) }
            return v
        }
        return try Tensor(v, shape: shape)
    }

    func testRelu() throws {
        try checkGradients("Relu", inputs: [try values([3, 5, 7])])
    }

    func testSmoothActivations() throws {
        let x = try values([4, 5, 6], seed: 3)
        for type in ["Sigmoid", "Tanh", "Softplus", "Gelu"] { try checkGradients(type, inputs: [x]) }
        try checkGradients("Gelu", ["approximate": .string("tanh")], inputs: [x])
        try checkGradients("Gelu", inputs: [randomTensor([40], seed: 4, scale: 12)])  // both tails
    }

    func testPiecewiseActivations() throws {
        let x = try values([4, 5, 6], seed: 5, kinks: [-3, 0, 3])
        try checkGradients("LeakyRelu", inputs: [x])
        try checkGradients("LeakyRelu", ["alpha": .float(0.3)], inputs: [x])
        try checkGradients("Elu", inputs: [x])
        try checkGradients("Elu", ["alpha": .float(0.5)], inputs: [x])
        try checkGradients("Selu", inputs: [x])
        try checkGradients("Selu", ["alpha": .float(1.5), "gamma": .float(2)], inputs: [x])
        try checkGradients("HardSwish", inputs: [x])
        try checkGradients("HardSigmoid", inputs: [try values([4, 5, 6], seed: 6, kinks: [-2.5, 2.5])])
        try checkGradients(
            "HardSigmoid", ["alpha": .float(0.5), "beta": .float(0.25)],
            inputs: [try values([4, 5, 6], seed: 6, kinks: [-0.5, 1.5])])
    }

    func testKinksFollowPyTorch() throws {
        // LeakyRelu and PRelu give alpha at 0, HardSwish is x/3 + 1/2 at ±3, HardSigmoid is 0 at its ends.
        func gradient(_ type: String, _ attributes: Attributes = [:], _ x: [Double]) throws -> [Double] {
            let (_, grads) = try Scheduler.operatorGradients(
                type, attributes, inputs: [try Tensor(x, shape: [x.count])],
                outputGradients: [try Tensor([Double](repeating: 1, count: x.count), shape: [x.count])])
            return try XCTUnwrap(grads[0]).doubles()
        }
        XCTAssertEqual(try gradient("LeakyRelu", ["alpha": .float(0.5)], [0, 1, -1]), [0.5, 1, 0.5])
        XCTAssertEqual(try gradient("HardSwish", [:], [-3, 3, -4, 4]), [-0.5, 1.5, 0, 1])
        XCTAssertEqual(try gradient("HardSigmoid", ["alpha": .float(0.5), "beta": .float(0.5)], [-1, 1, 0]), [0, 0, 0.5])
        XCTAssertEqual(try gradient("Relu", [:], [0, 1, -1]), [0, 1, 0])
    }

    func testClip() throws {
        let x = try values([4, 6], seed: 8, kinks: [-1, 0.5])
        let lo = Tensor(scalar: -1.0)
        let hi = Tensor(scalar: 0.5)
        try checkGradients("Clip", inputs: [x, lo, hi], constants: [1, 2])
        try checkGradients("Clip", inputs: [x, lo, hi])  // bounds fed at run time: no gradient for them
        try checkGradients("Clip", inputs: [x, lo], constants: [1])
        try checkGradients("Clip", inputs: [x, nil, hi], constants: [2])
        try checkGradients("Clip", inputs: [x])
        // At exactly a bound the gradient passes (torch.clamp); with min > max nothing passes.
        let edge = try Tensor([-1.0, 0.5, 2.0, -2.0, 0.0], shape: [5])
        let g = try Tensor([1.0, 1.0, 1.0, 1.0, 1.0], shape: [5])
        let (_, grads) = try Scheduler.operatorGradients("Clip", inputs: [edge, lo, hi], outputGradients: [g])
        XCTAssertEqual(try XCTUnwrap(grads[0]).doubles(), [1, 1, 0, 0, 1])
        XCTAssertEqual(grads[1]?.doubles() ?? [0], [0])  // not differentiable: none, or zero
        let (_, crossed) = try Scheduler.operatorGradients("Clip", inputs: [edge, hi, lo], outputGradients: [g])
        XCTAssertEqual(try XCTUnwrap(crossed[0]).doubles(), [0, 0, 0, 0, 0])
    }

    func testPRelu() throws {
        let x = try values([2, 3, 4, 4], seed: 9)
        try checkGradients("PRelu", inputs: [x, randomTensor([3, 1, 1], seed: 10, scale: 0.5)])
        try checkGradients("PRelu", inputs: [x, randomTensor([1], seed: 11)])
        try checkGradients("PRelu", inputs: [x, randomTensor([4], seed: 12)])
        try checkGradients("PRelu", inputs: [x, randomTensor([2, 3, 4, 4], seed: 13)])
    }

    func testSoftmax() throws {
        let x = randomTensor([3, 4, 5], seed: 14, scale: 2)
        for type in ["Softmax", "LogSoftmax"] {
            for axis in [0, 1, 2, -1, -3] { try checkGradients(type, ["axis": .int(axis)], inputs: [x]) }
            try checkGradients(type, inputs: [randomTensor([7], seed: 15)])
            // Many columns (several blocks of the strided path), and long rows (vector loops with a tail).
            try checkGradients(type, ["axis": .int(0)], inputs: [randomTensor([3, 300], seed: 16)])
            try checkGradients(type, inputs: [randomTensor([2, 45], seed: 17)])
        }
    }

    func testFloat32MatchesFloat64() throws {
        // The vectorised float32 derivatives against float64, on sizes with a partial last vector.
        let x = randomTensor([3, 37], seed: 18, scale: 6)
        let g = randomTensor([3, 37], seed: 19)
        let cases: [(String, Attributes)] = [
            ("Gelu", [:]), ("Gelu", ["approximate": .string("tanh")]), ("Elu", [:]), ("Selu", [:]),
            ("Softplus", [:]), ("Sigmoid", [:]), ("Tanh", [:]), ("Softmax", ["axis": .int(0)]),
            ("LogSoftmax", [:]), ("LogSoftmax", ["axis": .int(0)]),
        ]
        for (type, attributes) in cases {
            let (_, g64) = try Scheduler.operatorGradients(type, attributes, inputs: [x], outputGradients: [g])
            let (_, g32) = try Scheduler.operatorGradients(
                type, attributes, inputs: [x.cast(to: .float32)], outputGradients: [g.cast(to: .float32)])
            let want = try XCTUnwrap(g64[0]).doubles()
            let got = try XCTUnwrap(g32[0]).doubles()
            let scale = want.map(abs).max() ?? 1
            for (i, (u, v)) in zip(got, want).enumerated() {
                XCTAssertEqual(u, v, accuracy: 1e-5 * scale + 1e-4 * abs(v), "\(type) \(attributes.values) [\(i)]")
            }
        }
    }
}
