import AidgeCore
import XCTest

/// An int64 vector, for shape, axes and pads inputs.
func int64Vector(_ values: [Int]) -> Tensor { Tensor(values.map { Int64($0) }) }

final class ShapeGradientTests: XCTestCase {
    func testReshapeFamily() throws {
        let x = randomTensor([2, 3, 4])
        try checkGradients("Identity", inputs: [x])
        try checkGradients("Reshape", inputs: [x, int64Vector([4, -1])], constants: [1])
        try checkGradients("Flatten", ["axis": .int(2)], inputs: [x])
        try checkGradients("Squeeze", inputs: [randomTensor([2, 1, 3, 1]), int64Vector([1, -1])], constants: [1])
        try checkGradients("Unsqueeze", inputs: [x, int64Vector([0, 4])], constants: [1])
    }

    func testTranspose() throws {
        try checkGradients("Transpose", ["perm": .ints([2, 0, 1])], inputs: [randomTensor([3, 4, 5])])
        try checkGradients("Transpose", inputs: [randomTensor([2, 3, 4, 5], seed: 3)])
        // Large enough for the tiled walk, with partial tiles.
        try checkGradients("Transpose", ["perm": .ints([0, 2, 1])], inputs: [randomTensor([1, 35, 33], seed: 4)])
    }

    func testConcat() throws {
        let inputs = [randomTensor([2, 1, 3], seed: 1), randomTensor([2, 4, 3], seed: 2), randomTensor([2, 2, 3], seed: 3)]
        try checkGradients("Concat", ["axis": .int(1)], inputs: inputs)
        try checkGradients(
            "Concat", ["axis": .int(-1)], inputs: [randomTensor([3, 2], seed: 4), randomTensor([3, 5], seed: 5)])
    }

    func testSplit() throws {
        let x = randomTensor([2, 7, 3])
        try checkGradients("Split", ["axis": .int(1), "num_outputs": .int(3)], inputs: [x], outputCount: 3)
        try checkGradients(
            "Split", ["axis": .int(-1)], inputs: [randomTensor([4, 6]), int64Vector([1, 0, 5])], constants: [1],
            outputCount: 3)
        // Outputs without a gradient add nothing.
        try checkGradients(
            "Split", ["axis": .int(1), "num_outputs": .int(3)], inputs: [x], outputCount: 3, seeded: [0, 2])
    }

    func testSlice() throws {
        let x = randomTensor([5, 6, 7])
        try checkGradients("Slice", inputs: [x, int64Vector([1, 0]), int64Vector([4, 5])], constants: [1, 2])
        // Negative steps, negative and out-of-range bounds (clamped), explicit axes.
        try checkGradients(
            "Slice",
            inputs: [x, int64Vector([-1, 100, 1]), int64Vector([-100, 0, 7]), int64Vector([2, 0, 1]), int64Vector([-2, -1, 2])],
            constants: [1, 2, 3, 4])
        // An empty slice.
        try checkGradients("Slice", inputs: [x, int64Vector([3]), int64Vector([3])], constants: [1, 2])
    }

    func testExpand() throws {
        try checkGradients("Expand", inputs: [randomTensor([3, 1]), int64Vector([2, 3, 4])], constants: [1])
        try checkGradients("Expand", inputs: [randomTensor([1]), int64Vector([5])], constants: [1])
        try checkGradients("Expand", inputs: [randomTensor([2, 3]), int64Vector([2, 3])], constants: [1])
        // Summed dimensions before, between and after kept ones; an input of higher rank than the shape.
        try checkGradients("Expand", inputs: [randomTensor([2, 1, 4]), int64Vector([3, 2, 5, 4])], constants: [1])
        try checkGradients("Expand", inputs: [randomTensor([1, 3, 1, 1]), int64Vector([2, 1, 4, 70])], constants: [1])
        try checkGradients("Expand", inputs: [randomTensor([4, 1, 2]), int64Vector([3, 1])], constants: [1])
    }

    func testTile() throws {
        try checkGradients("Tile", inputs: [randomTensor([2, 1, 3]), int64Vector([2, 3, 2])], constants: [1])
        try checkGradients("Tile", inputs: [randomTensor([4]), int64Vector([1])], constants: [1])
        try checkGradients("Tile", inputs: [randomTensor([3, 2]), int64Vector([1, 0])], constants: [1])
        try checkGradients("Tile", inputs: [randomTensor([1, 70]), int64Vector([3, 2])], constants: [1])
    }

    func testPad() throws {
        let x = randomTensor([3, 4, 5])
        for mode in ["constant", "reflect", "edge", "wrap"] {
            // Padding wider than the input repeats the border several times (all but reflect).
            let wide = mode == "reflect" ? 3 : 6
            try checkGradients(
                "Pad", ["mode": .string(mode)], inputs: [x, int64Vector([1, 2, wide, 2, 0, 1])], constants: [1])
            // Negative pads crop first; axes select the padded dimensions.
            try checkGradients(
                "Pad", ["mode": .string(mode)], inputs: [x, int64Vector([-1, 2, 1, -2]), nil, int64Vector([0, 2])],
                constants: [1, 3])
        }
        try checkGradients(
            "Pad", inputs: [x, int64Vector([0, 1, 1, 1, 0, 2]), try Tensor([2.5], shape: [])], constants: [1])
    }

    func testCast() throws {
        try checkGradients("Cast", ["to": .int(11)], inputs: [randomTensor([3, 4])])
        // float64 -> float32: the float32 gradient comes back as float64.
        let x = randomTensor([2, 5])
        let dy = randomTensor([2, 5], seed: 9).cast(to: .float32)
        let (_, grads) = try Scheduler.operatorGradients(
            "Cast", ["to": .int(1)], inputs: [x], outputGradients: [dy])
        let dx = try XCTUnwrap(grads[0])
        XCTAssertEqual(dx.dtype, .float64)
        XCTAssertEqual(dx.doubles(), dy.doubles())
        // float32 -> int64: nothing flows back.
        let (_, none) = try Scheduler.operatorGradients(
            "Cast", ["to": .int(7)], inputs: [x.cast(to: .float32)], outputGradients: [nil])
        XCTAssertEqual(try XCTUnwrap(none[0]).doubles(), [Double](repeating: 0, count: 10))
    }

    /// Integer data (shape arithmetic) plans in training mode: its backward is never asked for.
    func testIntegerDataNeedsNoGradient() throws {
        let outputs = try Scheduler.operatorGradients(
            "Concat", ["axis": .int(0)], inputs: [int64Vector([1, 2]), int64Vector([3])], outputGradients: [nil],
            training: true)
        XCTAssertEqual(outputs.outputs[0].integers(), [1, 2, 3])
    }
}
