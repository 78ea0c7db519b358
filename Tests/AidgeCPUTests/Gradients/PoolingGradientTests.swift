import AidgeCore
import XCTest

/// Backward of the pooling operators against finite differences (float64), and MaxPool's tie rule and Indices.
final class PoolingGradientTests: XCTestCase {
    func testMaxPool2DPadsStrides() throws {
        try checkGradients(
            "MaxPool", ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])],
            inputs: [randomTensor([2, 3, 7, 8])])
    }

    func testMaxPool2DCeilModeDilations() throws {
        try checkGradients(
            "MaxPool",
            ["kernel_shape": .ints([2, 3]), "strides": .ints([2, 1]), "dilations": .ints([2, 1]), "ceil_mode": .int(1),
             "pads": .ints([0, 1, 1, 0])],
            inputs: [randomTensor([2, 2, 9, 6], seed: 3)])
    }

    func testMaxPool1DAnd3D() throws {
        try checkGradients(
            "MaxPool", ["kernel_shape": .ints([3]), "strides": .ints([2]), "ceil_mode": .int(1)],
            inputs: [randomTensor([2, 3, 10], seed: 4)])
        try checkGradients(
            "MaxPool", ["kernel_shape": .ints([2, 2, 2]), "strides": .ints([2, 1, 2])],
            inputs: [randomTensor([1, 2, 4, 3, 5], seed: 5)])
    }

    func testMaxPoolFloat32() throws {
        _ = cpuRegistered
        let x = try Tensor([Float(1), 5, 2, 0, 3, 4, 8, 7, 6], shape: [1, 1, 3, 3])
        let dy = try Tensor([Float(1), 2, 3, 4], shape: [1, 1, 2, 2])
        let (outputs, grads) = try Scheduler.operatorGradients(
            "MaxPool", ["kernel_shape": .ints([2, 2])], inputs: [x], outputGradients: [dy])
        XCTAssertEqual(try outputs[0].scalars(as: Float.self), [5, 5, 8, 7])
        XCTAssertEqual(try grads[0]?.scalars(as: Float.self), [0, 3, 0, 0, 0, 0, 3, 4, 0])
    }

    /// Equal values in a window: the gradient goes to the first in scan order, as PyTorch.
    func testMaxPoolTiesGoToTheFirstMaximum() throws {
        _ = cpuRegistered
        let x = try Tensor([Double](repeating: 2, count: 16), shape: [1, 1, 4, 4])
        let dy = try Tensor([1.0, 10, 100, 1000], shape: [1, 1, 2, 2])
        let (_, grads) = try Scheduler.operatorGradients(
            "MaxPool", ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])], inputs: [x], outputGradients: [dy])
        XCTAssertEqual(
            try grads[0]?.scalars(as: Double.self),
            [1, 0, 10, 0, 0, 0, 0, 0, 100, 0, 1000, 0, 0, 0, 0, 0])
        // Overlapping windows add up where they share their maximum.
        let (_, overlap) = try Scheduler.operatorGradients(
            "MaxPool", ["kernel_shape": .ints([3, 3]), "strides": .ints([1, 1])], inputs: [x], outputGradients: [dy])
        XCTAssertEqual(
            try overlap[0]?.scalars(as: Double.self),
            [1, 10, 0, 0, 100, 1000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    /// The training forward's Indices output equals the inference kernel's.
    func testMaxPoolIndicesOutput() throws {
        _ = cpuRegistered
        for order in [0, 1] {
            let attributes: Attributes = [
                "kernel_shape": .ints([3, 2]), "strides": .ints([2, 1]), "pads": .ints([1, 0, 1, 1]),
                "storage_order": .int(order),
            ]
            let x = randomTensor([2, 3, 5, 4], seed: 9)
            let inference = try Scheduler.runOperator("MaxPool", attributes, inputs: [x], outputs: 2)
            let dy = randomTensor(inference[0].shape, seed: 10)
            let (outputs, _) = try Scheduler.operatorGradients(
                "MaxPool", attributes, inputs: [x], outputs: 2, outputGradients: [dy, nil], training: true)
            XCTAssertEqual(outputs[0].doubles(), inference[0].doubles())
            XCTAssertEqual(try outputs[1].scalars(as: Int64.self), try inference[1].scalars(as: Int64.self))
        }
        try checkGradients(
            "MaxPool", ["kernel_shape": .ints([2, 2])], inputs: [randomTensor([1, 2, 4, 5], seed: 11)], outputCount: 2)
    }

    func testAveragePoolExcludingPad() throws {
        try checkGradients(
            "AveragePool", ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])],
            inputs: [randomTensor([2, 3, 7, 8])])
    }

    func testAveragePoolIncludingPadCeilMode() throws {
        for ceil in [0, 1] {
            try checkGradients(
                "AveragePool",
                ["kernel_shape": .ints([3, 2]), "strides": .ints([2, 2]), "pads": .ints([1, 0, 1, 1]),
                 "count_include_pad": .int(1), "ceil_mode": .int(ceil)],
                inputs: [randomTensor([2, 2, 8, 7], seed: 12)])
        }
        try checkGradients(
            "AveragePool", ["kernel_shape": .ints([2]), "strides": .ints([3]), "ceil_mode": .int(1)],
            inputs: [randomTensor([2, 2, 11], seed: 13)])
    }

    func testGlobalPools() throws {
        try checkGradients("GlobalAveragePool", inputs: [randomTensor([2, 3, 4, 5])])
        try checkGradients("GlobalMaxPool", inputs: [randomTensor([2, 3, 4, 5], seed: 14)])
        try checkGradients("GlobalMaxPool", inputs: [randomTensor([2, 3, 3, 2, 2], seed: 15)])
    }

    /// The float32 training forward (8 outputs at a time in row interiors) gives the inference kernel's values
    /// and Indices, ties included (few distinct values), and backward routes to those Indices.
    func testMaxPoolFloat32VectorPathMatchesInference() throws {
        _ = cpuRegistered
        let cases: [(shape: [Int], attributes: Attributes)] = [
            ([2, 3, 9, 40], ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]),
            ([2, 2, 8, 41], ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
            ([1, 2, 7, 37], ["kernel_shape": .ints([3, 2]), "strides": .ints([1, 1]), "pads": .ints([0, 1, 2, 1])]),
            ([1, 2, 6, 50], ["kernel_shape": .ints([2, 3]), "strides": .ints([1, 2]), "dilations": .ints([2, 2]),
                             "ceil_mode": .int(1)]),
            ([2, 3, 35], ["kernel_shape": .ints([4]), "strides": .ints([1])]),
            ([1, 2, 3, 4, 33], ["kernel_shape": .ints([2, 2, 2]), "strides": .ints([1, 2, 2])]),
        ]
        for (k, c) in cases.enumerated() {
            for distinct in [true, false] {
                let values = randomFloats(ShapeUtil.count(c.shape), seed: UInt64(k) + 50).map { distinct ? $0 : ($0 * 2).rounded() }
                let x = try Tensor(values, shape: c.shape)
                let inference = try Scheduler.runOperator("MaxPool", c.attributes, inputs: [x], outputs: 2)
                let dy = try Tensor(randomFloats(inference[0].count, seed: 7), shape: inference[0].shape)
                let (outputs, grads) = try Scheduler.operatorGradients(
                    "MaxPool", c.attributes, inputs: [x], outputs: 2, outputGradients: [dy, nil])
                XCTAssertEqual(try outputs[0].scalars(as: Float.self), try inference[0].scalars(as: Float.self), "case \(k)")
                let indices = try inference[1].scalars(as: Int64.self)
                XCTAssertEqual(try outputs[1].scalars(as: Int64.self), indices, "case \(k)")
                var expected = [Float](repeating: 0, count: x.count)
                for (o, i) in indices.enumerated() { expected[Int(i)] += try dy.scalars(as: Float.self)[o] }
                XCTAssertEqual(try grads[0]?.scalars(as: Float.self), expected, "case \(k)")
            }
        }
    }

    /// An int8 MaxPool (no gradient) runs its inference kernel in a training plan.
    func testIntegerMaxPoolRunsInTrainingPlans() throws {
        _ = cpuRegistered
        let x = try Tensor((0..<16).map { Int8($0) }, shape: [1, 1, 4, 4])
        let (outputs, _) = try Scheduler.operatorGradients(
            "MaxPool", ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])], inputs: [x], outputGradients: [nil],
            training: true)
        XCTAssertEqual(try outputs[0].scalars(as: Int8.self), [5, 7, 13, 15])
    }
}
