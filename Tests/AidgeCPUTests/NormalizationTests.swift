import AidgeCPU
import AidgeCore
import XCTest

/// Mean and population variance in Double.
private func statistics(_ v: [Double]) -> (mean: Double, variance: Double) {
    let mean = v.reduce(0, +) / Double(v.count)
    return (mean, v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count))
}

private func doubles(_ v: [Float]) -> [Double] { v.map(Double.init) }

final class NormalizationTests: XCTestCase {
    // MARK: BatchNormalization

    /// ONNX's inference formula, per channel (axis 1), in Double.
    private func referenceBatchNorm(
        _ x: [Double], _ shape: [Int], _ scale: [Double], _ bias: [Double], _ mean: [Double], _ variance: [Double],
        epsilon: Double
    ) -> [Double] {
        let channels = shape[1]
        let spatial = ShapeUtil.count(Array(shape.dropFirst(2)))
        return x.indices.map { i in
            let c = (i / spatial) % channels
            return (x[i] - mean[c]) / (variance[c] + epsilon).squareRoot() * scale[c] + bias[c]
        }
    }

    func testBatchNormalization() throws {
        for shape in [[2, 3], [1, 2, 3], [2, 3, 4, 5], [3, 5, 17], [2, 4, 0, 3]] {
            let c = shape[1]
            let x = randomFloats(ShapeUtil.count(shape), seed: 1).map { $0 * 4 }
            let scale = randomFloats(c, seed: 2)
            let bias = randomFloats(c, seed: 3)
            let mean = randomFloats(c, seed: 4)
            let variance = randomFloats(c, seed: 5).map { $0 + 1.2 }
            let expected = referenceBatchNorm(
                doubles(x), shape, doubles(scale), doubles(bias), doubles(mean), doubles(variance), epsilon: 1e-3)
            let inputs = [try Tensor(x, shape: shape), Tensor(scale), Tensor(bias), Tensor(mean), Tensor(variance)]
            // Parameters known when planning (folded once) or fed at run time.
            for constants in [Set([1, 2, 3, 4]), Set<Int>()] {
                let y = try runOperator(
                    "BatchNormalization", ["epsilon": .float(1e-3)], inputs: inputs, constants: constants)[0]
                XCTAssertEqual(y.shape, shape)
                assertClose(try y.scalars(as: Float.self), expected.map { Float($0) }, "shape \(shape)")
            }
        }
    }

    func testBatchNormalizationFloat64AndDefaultEpsilon() throws {
        let shape = [2, 2, 3]
        let x = doubles(randomFloats(12, seed: 8))
        let p: [[Double]] = [[0.5, -2], [0.1, 0.2], [0.3, -0.3], [0.0, 4.0]]
        let y = try runOperator(
            "BatchNormalization", inputs: [try Tensor(x, shape: shape)] + p.map { Tensor($0) }, constants: [1, 2, 3, 4])[0]
        let expected = referenceBatchNorm(x, shape, p[0], p[1], p[2], p[3], epsilon: 1e-5)
        for (a, e) in zip(try y.scalars(as: Double.self), expected) { XCTAssertEqual(a, e, accuracy: 1e-6 * max(1, abs(e))) }
    }

    /// A node with ONNX's running_mean and running_var outputs (training graphs): in inference they are the
    /// running statistics, unchanged.
    func testBatchNormalizationRunningStatisticsOutputs() throws {
        let x = try Tensor(randomFloats(24, seed: 1), shape: [2, 3, 4])
        let scale = Tensor(randomFloats(3, seed: 2))
        let bias = Tensor(randomFloats(3, seed: 3))
        let mean = Tensor(randomFloats(3, seed: 4))
        let variance = Tensor(randomFloats(3, seed: 5).map { $0 + 1.5 })
        for constants in [Set<Int>(), [1, 2, 3, 4]] {
            let outputs = try runOperator(
                "BatchNormalization", inputs: [x, scale, bias, mean, variance], constants: constants, outputs: 3)
            XCTAssertEqual(outputs.count, 3)
            XCTAssertEqual(outputs[0].shape, [2, 3, 4])
            XCTAssertEqual(try outputs[1].scalars(as: Float.self), try mean.scalars(as: Float.self))
            XCTAssertEqual(try outputs[2].scalars(as: Float.self), try variance.scalars(as: Float.self))
            let single = try runOperator("BatchNormalization", inputs: [x, scale, bias, mean, variance], constants: constants)
            XCTAssertEqual(try outputs[0].scalars(as: Float.self), try single[0].scalars(as: Float.self))
        }
    }

    func testBatchNormalizationErrors() throws {
        let p = Tensor([Float](repeating: 1, count: 3))
        XCTAssertThrowsError(try runOperator("BatchNormalization", inputs: [Tensor(zeros: [2, 4]), p, p, p, p])) { error in
            XCTAssertTrue("\(error)".contains("one value per channel (4)"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("BatchNormalization", inputs: [Tensor(zeros: [3]), p, p, p, p])) { error in
            XCTAssertTrue("\(error)".contains("rank >= 2"), "\(error)")
        }
        XCTAssertThrowsError(
            try runOperator("BatchNormalization", inputs: [Tensor(zeros: [1, 3], dtype: .int32), p, p, p, p])
        ) { error in
            XCTAssertTrue("\(error)".contains("dtype int32"), "\(error)")
        }
    }

    // MARK: LayerNormalization

    func testLayerNormalization() throws {
        let shape = [2, 3, 37]
        let x = randomFloats(ShapeUtil.count(shape), seed: 9).map { $0 * 3 + 1 }
        let xd = doubles(x)
        for axis in [-1, 1, 2, 0, -2] {
            let a = axis < 0 ? axis + 3 : axis
            let normalized = Array(shape[a...])
            let width = ShapeUtil.count(normalized)
            let rows = x.count / width
            // Scale and bias of the normalised shape, and ones that broadcast to it.
            let scaleShapes = [normalized, [1] + Array(normalized.dropFirst()), [1]]
            for scaleShape in scaleShapes {
                let scale = randomFloats(ShapeUtil.count(scaleShape), seed: 10)
                let bias = randomFloats(ShapeUtil.count(scaleShape), seed: 11)
                let scaleAt = { (j: Int) -> Double in Double(scale[scale.count == 1 ? 0 : j % scale.count]) }
                let biasAt = { (j: Int) -> Double in Double(bias[bias.count == 1 ? 0 : j % bias.count]) }
                for withBias in [true, false] {
                    var expected: [Float] = []
                    var means: [Float] = []
                    var invs: [Float] = []
                    for r in 0..<rows {
                        let row = Array(xd[(r * width)..<((r + 1) * width)])
                        let (m, v) = statistics(row)
                        let inv = 1 / (v + 1e-5).squareRoot()
                        means.append(Float(m))
                        invs.append(Float(inv))
                        for j in 0..<width {
                            expected.append(Float((row[j] - m) * inv * scaleAt(j) + (withBias ? biasAt(j) : 0)))
                        }
                    }
                    var inputs: [Tensor?] = [try Tensor(x, shape: shape), try Tensor(scale, shape: scaleShape)]
                    if withBias { inputs.append(try Tensor(bias, shape: scaleShape)) }
                    let outputs = try runOperator(
                        "LayerNormalization", ["axis": .int(axis)], inputs: inputs, constants: [1, 2])
                    let context = "axis \(axis) scale \(scaleShape) bias \(withBias)"
                    XCTAssertEqual(outputs.count, 3)
                    XCTAssertEqual(outputs[0].shape, shape)
                    assertClose(try outputs[0].scalars(as: Float.self), expected, context)
                    let statsShape = shape.enumerated().map { $0.offset < a ? $0.element : 1 }
                    XCTAssertEqual(outputs[1].shape, statsShape)
                    XCTAssertEqual(outputs[2].dtype, .float32)
                    assertClose(try outputs[1].scalars(as: Float.self), means, context)
                    assertClose(try outputs[2].scalars(as: Float.self), invs, context)
                }
            }
        }
    }

    func testLayerNormalizationFloat64OneOutput() throws {
        let x = doubles(randomFloats(24, seed: 12))
        let scale = doubles(randomFloats(8, seed: 13))
        // Through runOperator with one output: the kernel writes Y only.
        let y = try runOperator(
            "LayerNormalization", ["epsilon": .float(1e-3)], inputs: [try Tensor(x, shape: [3, 8]), Tensor(scale)],
            outputs: 1)
        XCTAssertEqual(y.count, 1)
        let values = try y[0].scalars(as: Double.self)
        for r in 0..<3 {
            let row = Array(x[(r * 8)..<(r * 8 + 8)])
            let (m, v) = statistics(row)
            let eps = Double(Float(1e-3))
            for j in 0..<8 {
                XCTAssertEqual(values[r * 8 + j], (row[j] - m) / (v + eps).squareRoot() * scale[j], accuracy: 1e-9)
            }
        }
    }

    func testLayerNormalizationErrors() throws {
        let x = Tensor(zeros: [2, 3, 4])
        XCTAssertThrowsError(try runOperator("LayerNormalization", inputs: [x, Tensor(zeros: [3])])) { error in
            XCTAssertTrue("\(error)".contains("does not broadcast to the normalised shape [4]"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("LayerNormalization", ["axis": .int(3)], inputs: [x, Tensor(zeros: [4])])) {
            error in
            XCTAssertTrue("\(error)".contains("out of range"), "\(error)")
        }
        XCTAssertThrowsError(
            try runOperator("LayerNormalization", inputs: [x, Tensor(zeros: [4], dtype: .float64)])
        ) { error in
            XCTAssertTrue("\(error)".contains("dtype float64"), "\(error)")
        }
    }

    // MARK: InstanceNormalization

    func testInstanceNormalization() throws {
        for shape in [[2, 3, 5, 7], [1, 4, 3], [2, 2, 40]] {
            let (n, c) = (shape[0], shape[1])
            let spatial = ShapeUtil.count(Array(shape.dropFirst(2)))
            let x = randomFloats(ShapeUtil.count(shape), seed: 14).map { $0 * 2 - 0.5 }
            let scale = randomFloats(c, seed: 15)
            let bias = randomFloats(c, seed: 16)
            var expected: [Float] = []
            for r in 0..<(n * c) {
                let row = doubles(Array(x[(r * spatial)..<((r + 1) * spatial)]))
                let (m, v) = statistics(row)
                let ch = r % c
                for value in row {
                    expected.append(Float((value - m) / (v + 1e-2).squareRoot() * Double(scale[ch]) + Double(bias[ch])))
                }
            }
            let y = try runOperator(
                "InstanceNormalization", ["epsilon": .float(1e-2)],
                inputs: [try Tensor(x, shape: shape), Tensor(scale), Tensor(bias)])[0]
            XCTAssertEqual(y.shape, shape)
            // epsilon is a float attribute: compare with a tolerance above its rounding.
            assertClose(try y.scalars(as: Float.self), expected, atol: 1e-5, rtol: 1e-4, "shape \(shape)")
        }
        let d = try runOperator(
            "InstanceNormalization", inputs: [try Tensor([1.0, 3.0, 2.0, 2.0], shape: [1, 2, 2]), Tensor([2.0, 1.0]),
                                             Tensor([0.0, 5.0])])[0]
        let values = try d.scalars(as: Double.self)
        let k = 1 / (1 + 1e-5 as Double).squareRoot()
        XCTAssertEqual(values[0], -2 * k, accuracy: 1e-6)
        XCTAssertEqual(values[1], 2 * k, accuracy: 1e-6)
        XCTAssertEqual(values[2], 5, accuracy: 1e-12)
    }

    func testInstanceNormalizationErrors() throws {
        XCTAssertThrowsError(
            try runOperator("InstanceNormalization", inputs: [Tensor(zeros: [1, 3, 4]), Tensor(zeros: [2]), Tensor(zeros: [3])])
        ) { error in
            XCTAssertTrue("\(error)".contains("scale must hold one value per channel (3)"), "\(error)")
        }
    }
}
