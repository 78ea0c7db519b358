import AidgeCore
import XCTest

final class IndexingGradientTests: XCTestCase {
    func testGather() throws {
        let data = randomTensor([4, 5, 3])
        // Repeated and negative indices accumulate.
        let indices = try Tensor([Int64(1), -1, 1, 0, 4, 1], shape: [2, 3])
        try checkGradients("Gather", ["axis": .int(1)], inputs: [data, indices])
        try checkGradients("Gather", inputs: [data, try Tensor([Int32(3), 3, -4], shape: [3])])
        try checkGradients("Gather", ["axis": .int(-1)], inputs: [data, try Tensor([Int64(2), 2], shape: [2])])
        // A scalar index drops the axis.
        try checkGradients("Gather", ["axis": .int(2)], inputs: [data, Tensor(scalar: Int64(-2))])
        // Indices as a planning-time constant.
        try checkGradients("Gather", inputs: [data, try Tensor([Int64(0), 0], shape: [2])], constants: [1])
    }

    func testGatherEmbedding() throws {
        // Many rows into few, wide enough to split the inner elements over cores.
        let table = randomTensor([5, 200])
        let ids = try Tensor((0..<12).map { Int64(($0 * 7) % 5) }, shape: [3, 4])
        try checkGradients("Gather", inputs: [table, ids])
    }

    func testGatherBadIndex() throws {
        _ = cpuRegistered
        let data = randomTensor([3, 2])
        XCTAssertThrowsError(
            try Scheduler.operatorGradients(
                "Gather", inputs: [data, try Tensor([Int64(3)], shape: [1])], outputGradients: [randomTensor([1, 2])]))
    }

    func testGatherElements() throws {
        let data = randomTensor([3, 4, 2])
        let indices = try Tensor([Int64(0), 2, -1, 0, 2, 2, 1, 1, 0, 0, 3, -3], shape: [3, 2, 2])
        try checkGradients("GatherElements", ["axis": .int(1)], inputs: [data, indices])
        // Along the first and the last axis; indices smaller than the data outside the axis.
        let first = try Tensor([Int64(2), 2, 0, 1, -1, 0], shape: [3, 1, 2])
        try checkGradients("GatherElements", inputs: [data, first])
        let last = try Tensor([Int32(1), 1, 0, 1, 0, 0], shape: [2, 3, 1])
        try checkGradients("GatherElements", ["axis": .int(-1)], inputs: [data, last])
    }
}
