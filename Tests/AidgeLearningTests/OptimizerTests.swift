import Aidge
import XCTest

/// Optimizers against their update formulas written out independently, schedules, state and errors.
final class OptimizerTests: XCTestCase {
    private func parameter(_ values: [Float]) throws -> Tensor {
        try Tensor(values, shape: [values.count]).withGradient()
    }

    private func setGradient(_ p: Tensor, _ values: [Float]) throws {
        p.gradient?.tensor = try Tensor(values, shape: [values.count])
    }

    func testSGDMomentumNesterovAndWeightDecay() throws {
        let p = try parameter([1, -2])
        let sgd = try SGD(learningRate: 0.1, momentum: 0.9, weightDecay: 0.01, nesterov: true)
        try sgd.setParameters([p])
        var reference: [Double] = [1, -2]
        var buffer: [Double] = [0, 0]
        for step in 0..<4 {
            let g: [Double] = [0.5 * Double(step + 1), -0.25]
            try setGradient(p, g.map { Float($0) })
            try sgd.update()
            for i in 0..<2 {
                let d = g[i] + 0.01 * reference[i]
                buffer[i] = step == 0 ? d : 0.9 * buffer[i] + d
                reference[i] -= 0.1 * (d + 0.9 * buffer[i])
            }
            let got = try p.scalars(as: Float.self)
            for i in 0..<2 { XCTAssertEqual(Double(got[i]), reference[i], accuracy: 1e-5, "step \(step)") }
        }
    }

    func testAdamAndAdamW() throws {
        for decoupled in [false, true] {
            let p = try parameter([0.5, -1.5])
            let adam = try Adam(learningRate: 0.01, weightDecay: 0.1, decoupledWeightDecay: decoupled)
            try adam.setParameters([p])
            var reference: [Double] = [0.5, -1.5]
            var m: [Double] = [0, 0], v: [Double] = [0, 0]
            for step in 1...5 {
                let g: [Double] = [0.3, -0.2 * Double(step)]
                try setGradient(p, g.map { Float($0) })
                try adam.update()
                for i in 0..<2 {
                    var d = g[i]
                    if decoupled { reference[i] *= 1 - 0.01 * 0.1 } else { d += 0.1 * reference[i] }
                    m[i] = 0.9 * m[i] + 0.1 * d
                    v[i] = 0.999 * v[i] + 0.001 * d * d
                    let mh = m[i] / (1 - pow(0.9, Double(step)))
                    let vh = v[i] / (1 - pow(0.999, Double(step)))
                    reference[i] -= 0.01 * mh / (vh.squareRoot() + 1e-8)
                }
                let got = try p.scalars(as: Float.self).map(Double.init)
                for i in 0..<2 { XCTAssertEqual(got[i], reference[i], accuracy: 1e-5, "decoupled \(decoupled) step \(step)") }
            }
        }
    }

    func testParametersWithoutGradientAreSkippedAndStateRoundTrips() throws {
        let a = try parameter([1, 1])
        let b = try parameter([2, 2])
        let sgd = try SGD(learningRate: 1, momentum: 0.5)
        try sgd.setParameters([a, b])
        try setGradient(a, [1, 1])
        try sgd.update()
        XCTAssertEqual(try a.scalars(as: Float.self), [0, 0])
        XCTAssertEqual(try b.scalars(as: Float.self), [2, 2])
        let saved = sgd.state
        try sgd.update()
        XCTAssertEqual(try a.scalars(as: Float.self), [-1.5, -1.5])  // momentum buffer 0.5 · 1 + 1
        try sgd.load(saved)
        XCTAssertEqual(sgd.step, 1)
        sgd.resetGradients()
        XCTAssertNil(a.gradient?.tensor)
    }

    func testErrors() throws {
        XCTAssertThrowsError(try SGD(learningRate: .nan))
        XCTAssertThrowsError(try SGD(momentum: -1))
        XCTAssertThrowsError(try Adam(beta1: 1))
        XCTAssertThrowsError(try SGD().setParameters([Node(Operator("Relu"))])) {
            XCTAssertTrue("\($0)".contains("Producer"), "\($0)")
        }
        XCTAssertThrowsError(try SGD().setParameters([Tensor(zeros: [2])])) {
            XCTAssertTrue("\($0)".contains("gradient"), "\($0)")
        }
    }

    func testSchedules() throws {
        let step = try LearningRateSchedule(base: 1, shape: .step(stepSize: 2, gamma: 0.5))
        XCTAssertEqual((0..<5).map(step.rate), [1, 1, 0.5, 0.5, 0.25])
        let cosine = try LearningRateSchedule(base: 2, shape: .cosine(maxSteps: 4, minDecay: 0), warmup: 2)
        XCTAssertEqual(cosine.rate(at: 0), 1)
        XCTAssertEqual(cosine.rate(at: 2), 2)
        XCTAssertEqual(cosine.rate(at: 4), 1, accuracy: 1e-12)
        XCTAssertEqual(cosine.rate(at: 9), 0, accuracy: 1e-12)
        XCTAssertThrowsError(try LearningRateSchedule(base: .infinity))
    }
}
