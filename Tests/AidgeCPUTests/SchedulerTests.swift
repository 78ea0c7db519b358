import AidgeCPU
import AidgeCore
import XCTest

final class SchedulerTests: XCTestCase {
    override func setUp() { _ = cpuRegistered }

    /// x -> Relu -> Tanh -> Relu -> Add(x) : a chain whose intermediates can share memory.
    private func chain() throws -> GraphView {
        let r1 = ReLU(name: "s_r1")
        let t = Tanh(name: "s_t")
        let r2 = ReLU(name: "s_r2")
        let add = Add(name: "s_add")
        try r1.addChild(t)
        try t.addChild(r2)
        try r2.addChild(add, input: 0)
        let graph = GraphView(nodes: [r1, t, r2, add])
        graph.inputs = [GraphInput(name: "x", dtype: .float32, shape: [.symbolic("N"), .fixed(4)], consumers: [(r1, 0), (add, 1)])]
        graph.outputs = [GraphOutput(name: "y", node: add)]
        return graph
    }

    private func reference(_ x: [Float]) -> [Float] {
        x.map { v in max(Float(tanh(Double(max(v, 0)))), 0) + v }
    }

    func testRunsAndMatchesReference() throws {
        let graph = try chain()
        let x = randomFloats(8)
        let y = try Scheduler(graph).forward([try Tensor(x, shape: [2, 4])])
        XCTAssertEqual(y[0].shape, [2, 4])
        assertClose(y[0].converted(to: Float.self), reference(x))
    }

    func testPlanIsCachedPerShapeAndReusesMemory() throws {
        let scheduler = Scheduler(try chain())
        let a = try scheduler.plan(for: [[2, 4]])
        XCTAssertTrue(a === (try scheduler.plan(for: [[2, 4]])))
        let b = try scheduler.plan(for: [[3, 4]])
        XCTAssertFalse(a === b)
        XCTAssertEqual(a.stepCount, 4)
        // Three intermediates of 32 bytes each, but at most two are alive at once.
        XCTAssertLessThanOrEqual(a.arenaBytes, 2 * Storage.alignment)
        let x3 = randomFloats(12, seed: 7)
        let y3 = try scheduler.forward([try Tensor(x3, shape: [3, 4])])
        assertClose(y3[0].converted(to: Float.self), reference(x3))
    }

    func testOutputsStayValidAfterLaterRuns() throws {
        let scheduler = Scheduler(try chain())
        let x1 = randomFloats(8, seed: 1)
        let first = try scheduler.forward([try Tensor(x1, shape: [2, 4])])
        _ = try scheduler.forward([try Tensor(randomFloats(8, seed: 2), shape: [2, 4])])
        assertClose(first[0].converted(to: Float.self), reference(x1))
    }

    func testBadInputsAreRejected() throws {
        let scheduler = Scheduler(try chain())
        XCTAssertThrowsError(try scheduler.forward([])) { XCTAssertTrue("\($0)".contains("takes 1 inputs")) }
        XCTAssertThrowsError(try scheduler.forward([Tensor(zeros: [2, 4], dtype: .float64)])) {
            XCTAssertTrue("\($0)".contains("float32") && "\($0)".contains("float64"))
        }
        XCTAssertThrowsError(try scheduler.forward([Tensor(zeros: [2, 5])])) { XCTAssertTrue("\($0)".contains("shape")) }
        XCTAssertThrowsError(try scheduler.forward([Tensor(zeros: [2, 4, 1])])) { XCTAssertTrue("\($0)".contains("shape")) }
    }

    func testStridedInputIsRead() throws {
        let graph = try chain()
        let x = randomFloats(8, seed: 3)
        let t = try Tensor(x, shape: [4, 2]).permuted([1, 0])  // a [2, 4] view, not contiguous
        let y = try Scheduler(graph).forward([t])
        XCTAssertEqual(y[0].shape, [2, 4])
        XCTAssertEqual(y[0].converted(to: Float.self), try Scheduler(graph).forward([t.contiguous()])[0].converted(to: Float.self))
    }
}
