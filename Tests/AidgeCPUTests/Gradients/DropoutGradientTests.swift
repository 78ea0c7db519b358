import AidgeCore
import XCTest

/// Dropout's training forward and backward: statistics of the mask, scaling, identity where nothing drops, the
/// training_mode input, and seeds.
final class DropoutGradientTests: XCTestCase {
    private func run(
        _ x: Tensor, ratio: Tensor? = nil, mode: Tensor? = nil, dy: Tensor, attributes: Attributes = [:],
        training: Bool, outputs: Int = 2
    ) throws -> (outputs: [Tensor], dx: Tensor?) {
        _ = cpuRegistered
        var inputs: [Tensor?] = [x, ratio]
        if let mode { inputs.append(mode) }
        let (out, grads) = try Scheduler.operatorGradients(
            "Dropout", attributes, inputs: inputs, constants: [1, 2], outputs: outputs,
            outputGradients: [dy] + [Tensor?](repeating: nil, count: outputs - 1), training: training)
        return (out, grads[0])
    }

    /// Over a large tensor the kept fraction is 1 - ratio (within 5 standard deviations), kept values are scaled
    /// by 1 / (1 - ratio), the mask output marks them, and backward scales the gradient by the same mask.
    func testTrainingStatistics() throws {
        let count = 200_000
        for ratio in [0.3, 0.5, 0.9] {
            let x = try Tensor([Float](repeating: 2, count: count), shape: [400, 500])
            let dy = try Tensor((0..<count).map { Float($0 % 7) }, shape: [400, 500])
            let (outputs, dx) = try run(
                x, ratio: try Tensor([Float(ratio)], shape: []), dy: dy, training: true)
            let y = try outputs[0].scalars(as: Float.self)
            let mask = try outputs[1].scalars(as: Bool.self)
            // The ratio as the float32 input holds it.
            let scale = Float(1 / (1 - Double(Float(ratio))))
            let kept = mask.filter { $0 }.count
            let expected = Double(count) * (1 - ratio)
            let sigma = (Double(count) * ratio * (1 - ratio)).squareRoot()
            XCTAssertLessThan(abs(Double(kept) - expected), 5 * sigma, "ratio \(ratio): kept \(kept)")
            let gradient = try XCTUnwrap(dx).scalars(as: Float.self)
            let g = try dy.scalars(as: Float.self)
            let wrong = (0..<count).filter { i in
                y[i] != (mask[i] ? 2 * scale : 0) || gradient[i] != (mask[i] ? g[i] * scale : 0)
            }
            XCTAssertEqual(wrong.count, 0, "ratio \(ratio): first wrong element \(wrong.first ?? -1)")
            // No long runs of one value: neighbours are independent (a broken generator repeats).
            let changes = zip(mask, mask.dropFirst()).filter { $0 != $1 }.count
            XCTAssertGreaterThan(Double(changes), 0.9 * 2 * ratio * (1 - ratio) * Double(count))
        }
    }

    /// The default ratio is 0.5; ratio 1 drops everything.
    func testDefaultAndFullRatio() throws {
        let x = randomTensor([100, 100], seed: 3)
        let dy = randomTensor([100, 100], seed: 4)
        let (half, _) = try run(x, dy: dy, training: true)
        let kept = try half[1].scalars(as: Bool.self).filter { $0 }.count
        XCTAssertLessThan(abs(kept - 5000), 250)
        let (all, dx) = try run(x, ratio: try Tensor([1.0], shape: []), dy: dy, training: true)
        XCTAssertEqual(all[0].doubles(), [Double](repeating: 0, count: 10_000))
        XCTAssertEqual(dx?.doubles(), [Double](repeating: 0, count: 10_000))
    }

    /// A size that is not a multiple of the 8-element blocks: the tail follows the same mask.
    func testTail() throws {
        let x = randomTensor([7, 143], seed: 8, shift: 3)
        let dy = randomTensor([7, 143], seed: 9)
        let (outputs, dx) = try run(x, ratio: try Tensor([0.25], shape: []), dy: dy, training: true)
        let mask = try outputs[1].scalars(as: Bool.self)
        let (xs, ys, gs, dxs) = (x.doubles(), outputs[0].doubles(), dy.doubles(), try XCTUnwrap(dx).doubles())
        for i in 0..<1001 {
            XCTAssertEqual(ys[i], mask[i] ? xs[i] / 0.75 : 0, accuracy: 1e-12)
            XCTAssertEqual(dxs[i], mask[i] ? gs[i] / 0.75 : 0, accuracy: 1e-12)
        }
        XCTAssertTrue(mask.suffix(9).contains(true) && mask.contains(false))
    }

    /// Ratio 0 in training and any ratio in evaluation: the identity, forward and backward.
    func testIdentityWithoutDropping() throws {
        let x = randomTensor([3, 50], seed: 5)
        let dy = randomTensor([3, 50], seed: 6)
        for (ratio, training) in [(0.0, true), (0.5, false)] {
            let (outputs, dx) = try run(x, ratio: try Tensor([ratio], shape: []), dy: dy, training: training)
            XCTAssertEqual(outputs[0].doubles(), x.doubles())
            XCTAssertEqual(try outputs[1].scalars(as: Bool.self), [Bool](repeating: true, count: 150))
            XCTAssertEqual(dx?.doubles(), dy.doubles())
        }
        // A node without the mask output.
        let (outputs, dx) = try run(x, dy: dy, training: false, outputs: 1)
        XCTAssertEqual(outputs[0].doubles(), x.doubles())
        XCTAssertEqual(dx?.doubles(), dy.doubles())
    }

    /// The training_mode input overrides the graph's mode.
    func testTrainingModeInput() throws {
        let x = try Tensor([Float](repeating: 1, count: 1000), shape: [1000])
        let dy = try Tensor([Float](repeating: 1, count: 1000), shape: [1000])
        let ratio = try Tensor([Float(0.5)], shape: [])
        let (on, _) = try run(x, ratio: ratio, mode: try Tensor([true], shape: []), dy: dy, training: false)
        XCTAssertTrue(try on[1].scalars(as: Bool.self).contains(false))
        let (off, dx) = try run(x, ratio: ratio, mode: try Tensor([false], shape: []), dy: dy, training: true)
        XCTAssertEqual(try off[0].scalars(as: Float.self), [Float](repeating: 1, count: 1000))
        XCTAssertEqual(try dx?.scalars(as: Float.self), [Float](repeating: 1, count: 1000))
    }

    /// With a seed, kernels draw the same masks; successive runs of one kernel draw different ones.
    func testSeed() throws {
        _ = cpuRegistered
        let x = try Tensor([Float](repeating: 1, count: 4096), shape: [4096])
        let dy = try Tensor([Float](repeating: 1, count: 4096), shape: [4096])
        let seeded: Attributes = ["seed": .int(1234)]
        let a = try run(x, dy: dy, attributes: seeded, training: true).outputs[1].scalars(as: Bool.self)
        let b = try run(x, dy: dy, attributes: seeded, training: true).outputs[1].scalars(as: Bool.self)
        XCTAssertEqual(a, b)
        let c = try run(x, dy: dy, attributes: ["seed": .int(99)], training: true).outputs[1].scalars(as: Bool.self)
        XCTAssertNotEqual(a, c)

        let node = Node(Operator("Dropout", attributes: seeded), outputCount: 2)
        let graph = GraphView(nodes: [node])
        graph.updateInputsOutputs()
        let scheduler = Scheduler(graph)
        let first = try scheduler.forward([x], mode: PlanMode(training: true)).outputs[1].scalars(as: Bool.self)
        let second = try scheduler.forward([x], mode: PlanMode(training: true)).outputs[1].scalars(as: Bool.self)
        XCTAssertEqual(first, a)
        XCTAssertNotEqual(first, second)
    }

    func testBadRatioIsAnError() throws {
        let x = randomTensor([4], seed: 7)
        XCTAssertThrowsError(
            try run(x, ratio: try Tensor([1.5], shape: []), dy: randomTensor([4]), training: true)
        ) { error in XCTAssertTrue("\(error)".contains("ratio"), "\(error)") }
    }
}
