import AidgeCPU
import AidgeCore
import XCTest

final class DataTests: XCTestCase {
    func testIdentityAndDropoutPassDataThrough() throws {
        let x = try Tensor(randomFloats(10), shape: [2, 5])
        XCTAssertEqual(try runOperator("Identity", inputs: [x])[0].scalars(as: Float.self), try x.scalars(as: Float.self))
        let flags = Tensor([true, false, true])
        XCTAssertEqual(try runOperator("Identity", inputs: [flags])[0].scalars(as: Bool.self), [true, false, true])
        let d = try runOperator("Dropout", inputs: [x, Tensor(scalar: Float(0.5))], constants: [1])
        XCTAssertEqual(d.count, 1)
        XCTAssertEqual(try d[0].scalars(as: Float.self), try x.scalars(as: Float.self))
        // With the mask output: all true.
        let m = try runOperator("Dropout", inputs: [x], outputs: 2)
        XCTAssertEqual(m[1].dtype, .bool)
        XCTAssertEqual(m[1].shape, [2, 5])
        XCTAssertEqual(try m[1].scalars(as: Bool.self), Array(repeating: true, count: 10))
        XCTAssertThrowsError(try runOperator("Dropout", inputs: [x, Tensor(scalar: Int64(1))], constants: [1]))
    }

    func testConstant() throws {
        let t = try Tensor([Int32(1), 2, 3, 4], shape: [2, 2])
        let a = try runOperator("Constant", ["value": .tensor(t)], inputs: [])[0]
        XCTAssertEqual(a.shape, [2, 2])
        XCTAssertEqual(try a.scalars(as: Int32.self), [1, 2, 3, 4])
        let b = try runOperator("Constant", ["value_floats": .floats([1.5, -2])], inputs: [])[0]
        XCTAssertEqual(try b.scalars(as: Float.self), [1.5, -2])
        let c = try runOperator("Constant", ["value_int": .int(7)], inputs: [])[0]
        XCTAssertEqual(c.shape, [])
        XCTAssertEqual(try c.scalars(as: Int64.self), [7])
        let d = try runOperator("Constant", ["value_ints": .ints([3, 4])], inputs: [])[0]
        XCTAssertEqual(try d.scalars(as: Int64.self), [3, 4])
        XCTAssertThrowsError(try runOperator("Constant", inputs: [])) { error in
            XCTAssertTrue("\(error)".contains("value"), "\(error)")
        }
    }

    func testConstantOfShape() throws {
        let shape = Tensor([Int64(2), 3])
        let zeros = try runOperator("ConstantOfShape", inputs: [shape], constants: [0])[0]
        XCTAssertEqual(zeros.dtype, .float32)
        XCTAssertEqual(zeros.shape, [2, 3])
        XCTAssertEqual(try zeros.scalars(as: Float.self), Array(repeating: 0, count: 6))
        let sevens = try runOperator(
            "ConstantOfShape", ["value": .tensor(Tensor([Int64(7)]))], inputs: [shape], constants: [0])[0]
        XCTAssertEqual(try sevens.scalars(as: Int64.self), Array(repeating: 7, count: 6))
        let halves = try runOperator(
            "ConstantOfShape", ["value": .tensor(Tensor([Float16(0.5)]))], inputs: [Tensor([Int64(300)])],
            constants: [0])[0]
        XCTAssertEqual(try halves.scalars(as: Float16.self), Array(repeating: 0.5, count: 300))
        let empty = try runOperator("ConstantOfShape", inputs: [Tensor([Int64(0), 4])], constants: [0])[0]
        XCTAssertEqual(empty.shape, [0, 4])
        let scalar = try runOperator("ConstantOfShape", inputs: [Tensor([Int64]())], constants: [0])[0]
        XCTAssertEqual(scalar.shape, [])
        XCTAssertThrowsError(try runOperator("ConstantOfShape", inputs: [Tensor([Int64(-1)])], constants: [0]))
        // A shape fed at run time plans per value.
        XCTAssertEqual(try runOperator("ConstantOfShape", inputs: [shape])[0].shape, [2, 3])
    }

    func testDTypeONNXCodes() {
        for dtype in DType.allCases {
            XCTAssertEqual(DType(onnx: dtype.onnxDataType), dtype)
        }
        XCTAssertEqual(DType(onnx: 1), .float32)
        XCTAssertEqual(DType(onnx: 7), .int64)
        XCTAssertEqual(DType(onnx: 9), .bool)
        XCTAssertEqual(DType(onnx: 16), .bfloat16)
        XCTAssertEqual(DType(onnx: 8), .string)
        XCTAssertNil(DType(onnx: 14))  // complex64
    }

    func testCast() throws {
        let x = Tensor([Float(1.7), -2.5, 0, 255.9, -0.0])
        let i = try runOperator("Cast", ["to": .int(6)], inputs: [x])[0]
        XCTAssertEqual(i.dtype, .int32)
        XCTAssertEqual(try i.scalars(as: Int32.self), [1, -2, 0, 255, 0])  // toward zero
        let b = try runOperator("Cast", ["to": .int(9)], inputs: [x])[0]
        XCTAssertEqual(try b.scalars(as: Bool.self), [true, true, false, true, false])
        let d = try runOperator("Cast", ["to": .int(11)], inputs: [Tensor([Int64(-3), 1 << 40])])[0]
        XCTAssertEqual(try d.scalars(as: Double.self), [-3, 1_099_511_627_776])
        let h = try runOperator("Cast", ["to": .int(10)], inputs: [Tensor([Int64(2049), -1])])[0]
        XCTAssertEqual(try h.scalars(as: Float16.self), [2048, -1])  // rounds to nearest even
        let u = try runOperator("Cast", ["to": .int(2)], inputs: [Tensor([Int32(300), -1])])[0]
        XCTAssertEqual(try u.scalars(as: UInt8.self), [44, 255])  // integers wrap
        let same = try runOperator("Cast", ["to": .int(1)], inputs: [x])[0]
        XCTAssertEqual(try same.scalars(as: Float.self), try x.scalars(as: Float.self))
        // A large cast runs in parallel chunks.
        let n = 100_003
        let big = Tensor((0..<n).map { Int32($0 - 50_000) })
        let f = try runOperator("Cast", ["to": .int(1)], inputs: [big])[0]
        XCTAssertEqual(try f.scalars(as: Float.self), (0..<n).map { Float($0 - 50_000) })
        // To text and back, as NumPy's astype writes and reads numbers.
        let text = try runOperator("Cast", ["to": .int(8)], inputs: [x])[0]
        XCTAssertEqual(try text.strings(), ["1.7", "-2.5", "0.0", "255.9", "-0.0"])
        let parsed = try runOperator("Cast", ["to": .int(7)], inputs: [try Tensor(strings: ["12", " -3 ", "1e3", "x"], shape: [4])])[0]
        XCTAssertEqual(try parsed.scalars(as: Int64.self), [12, -3, 1000, 0])
        XCTAssertThrowsError(try runOperator("Cast", ["to": .int(14)], inputs: [x])) { error in
            XCTAssertTrue("\(error)".contains("14"), "\(error)")
        }
        XCTAssertThrowsError(try runOperator("Cast", inputs: [x]))
    }

    func testCastLike() throws {
        let x = Tensor([Float(3.9), -1.2])
        let y = try runOperator("CastLike", inputs: [x, Tensor([Int8(0)])], constants: [1])[0]
        XCTAssertEqual(y.dtype, .int8)
        XCTAssertEqual(try y.scalars(as: Int8.self), [3, -1])
    }

    func testShapeAndSize() throws {
        let x = Tensor(zeros: [2, 3, 4, 5], dtype: .uint16)
        XCTAssertEqual(try runOperator("Shape", inputs: [x])[0].scalars(as: Int64.self), [2, 3, 4, 5])
        XCTAssertEqual(
            try runOperator("Shape", ["start": .int(1)], inputs: [x])[0].scalars(as: Int64.self), [3, 4, 5])
        XCTAssertEqual(
            try runOperator("Shape", ["end": .int(-1)], inputs: [x])[0].scalars(as: Int64.self), [2, 3, 4])
        XCTAssertEqual(
            try runOperator("Shape", ["start": .int(-10), "end": .int(2)], inputs: [x])[0].scalars(as: Int64.self),
            [2, 3])
        XCTAssertEqual(
            try runOperator("Shape", ["start": .int(3), "end": .int(1)], inputs: [x])[0].shape, [0])
        XCTAssertEqual(try runOperator("Shape", inputs: [Tensor(scalar: Float(1))])[0].shape, [0])
        let size = try runOperator("Size", inputs: [x])[0]
        XCTAssertEqual(size.shape, [])
        XCTAssertEqual(try size.scalars(as: Int64.self), [120])
    }

    func testRange() throws {
        let f = try runOperator(
            "Range", inputs: [Tensor(scalar: Float(0)), Tensor(scalar: Float(1)), Tensor(scalar: Float(0.3))],
            constants: [0, 1, 2])[0]
        XCTAssertEqual(f.shape, [4])
        assertClose(try f.scalars(as: Float.self), [0, 0.3, 0.6, 0.9])
        // Floating ranges accumulate in the element type (as ONNX Runtime does): compare bit for bit.
        let down = try runOperator(
            "Range", inputs: [Tensor(scalar: Float(1)), Tensor(scalar: Float(0)), Tensor(scalar: Float(-0.1))],
            constants: [0, 1, 2])[0]
        var expected: [Float] = []
        var v: Float = 1
        while expected.count < 10 {
            expected.append(v)
            v += -0.1
        }
        XCTAssertEqual(try down.scalars(as: Float.self), expected)
        let i = try runOperator(
            "Range", inputs: [Tensor(scalar: Int64(10)), Tensor(scalar: Int64(1)), Tensor(scalar: Int64(-3))],
            constants: [0, 1, 2])[0]
        XCTAssertEqual(try i.scalars(as: Int64.self), [10, 7, 4])
        let i32 = try runOperator(
            "Range", inputs: [Tensor(scalar: Int32(-2)), Tensor(scalar: Int32(3)), Tensor(scalar: Int32(1))],
            constants: [0, 1, 2])[0]
        XCTAssertEqual(try i32.scalars(as: Int32.self), [-2, -1, 0, 1, 2])
        let empty = try runOperator(
            "Range", inputs: [Tensor(scalar: Double(5)), Tensor(scalar: Double(1)), Tensor(scalar: Double(2))],
            constants: [0, 1, 2])[0]
        XCTAssertEqual(empty.shape, [0])
        // A long range is computed by its kernel when the plan runs.
        let long = try runOperator(
            "Range", inputs: [Tensor(scalar: Int64(0)), Tensor(scalar: Int64(200_000)), Tensor(scalar: Int64(2))],
            constants: [0, 1, 2])[0]
        XCTAssertEqual(try long.scalars(as: Int64.self), (0..<100_000).map { Int64(2 * $0) })
        XCTAssertThrowsError(
            try runOperator(
                "Range", inputs: [Tensor(scalar: Int64(0)), Tensor(scalar: Int64(3)), Tensor(scalar: Int64(0))],
                constants: [0, 1, 2])
        ) { error in
            XCTAssertTrue("\(error)".contains("delta is 0"), "\(error)")
        }
        XCTAssertThrowsError(
            try runOperator(
                "Range", inputs: [Tensor(scalar: Int64(0)), Tensor(scalar: Float(3)), Tensor(scalar: Int64(1))],
                constants: [0, 1, 2]))
    }
}
