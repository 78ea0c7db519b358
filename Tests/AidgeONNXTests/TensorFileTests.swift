import Aidge
import Foundation
import XCTest

/// ONNX `.pb` tensor files: every dtype goes out and back byte for byte; typed fields and bad files are read as
/// the format says.
final class TensorFileTests: XCTestCase {
    private func bytes(of tensor: Tensor) -> [UInt8] {
        let c = tensor.contiguous()
        return Array(UnsafeRawBufferPointer(start: c.rawPointer, count: c.byteCount))
    }

    func testEveryDTypeRoundTripsExactly() throws {
        for dtype in DType.allCases where dtype != .string {
            let tensor = Tensor(zeros: [2, 3, 2], dtype: dtype)
            let raw = tensor.rawPointer.assumingMemoryBound(to: UInt8.self)
            // Sub-byte elements (packed in the file) keep their value in the low bits of their byte.
            let mask = UInt8((1 << (8 / dtype.elementsPerPackedByte)) - 1)
            for i in 0..<tensor.byteCount {
                raw[i] = dtype == .bool ? UInt8(i % 3 == 0 ? 1 : 0) : UInt8((i * 37 + 11) & 0xFF) & mask
            }
            let decoded = try TensorFile.decode(try TensorFile.encode(tensor, name: "t"))
            XCTAssertEqual(decoded.dtype, dtype)
            XCTAssertEqual(decoded.shape, [2, 3, 2])
            XCTAssertEqual(bytes(of: decoded), bytes(of: tensor), "\(dtype)")
        }
        let text = ["", "plain", "déjà vu", "日本語", String(repeating: "x", count: 300)]
        let strings = try TensorFile.decode(try TensorFile.encode(try Tensor(strings: text, shape: [5, 1])))
        XCTAssertEqual(strings.shape, [5, 1])
        XCTAssertEqual(try strings.strings(), text)
        let scalar = try TensorFile.decode(try TensorFile.encode(Tensor(scalar: Int64(-7))))
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(scalar.integers(), [-7])
    }

    func testTypedFieldsAndFiles() throws {
        var proto = Onnx_TensorProto()
        proto.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        proto.dims = [3]
        proto.floatData = [1.5, -2, 0.25]
        let tensor = try TensorFile.decode(try proto.serializedBytes())
        XCTAssertEqual(tensor.converted(to: Float.self), [1.5, -2, 0.25])

        let path = "/tmp/aidge-tensor-file-\(getpid()).pb"
        defer { unlink(path) }
        try TensorFile.write(try Tensor([Int32(4), 5, 6], shape: [1, 3]), name: "x", to: path)
        let read = try TensorFile.read(path)
        XCTAssertEqual(read.shape, [1, 3])
        XCTAssertEqual(read.integers(), [4, 5, 6])
        XCTAssertEqual(try Onnx_TensorProto(serializedBytes: try FileIO.read(path)).name, "x")
    }

    func testBadFilesAreClearErrors() throws {
        XCTAssertThrowsError(try TensorFile.decode([0xFF, 0xFF, 0xFF, 0x07])) { error in
            XCTAssertTrue("\(error)".contains("TensorProto"), "\(error)")
        }
        XCTAssertThrowsError(try TensorFile.read("/nonexistent/input_0.pb")) { error in
            XCTAssertTrue("\(error)".contains("input_0.pb"), "\(error)")
        }
        var short = Onnx_TensorProto()
        short.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        short.dims = [4]
        short.rawData = Data([0, 0, 128, 63])
        XCTAssertThrowsError(try TensorFile.decode(try short.serializedBytes())) { error in
            XCTAssertTrue("\(error)".contains("needs 16"), "\(error)")
        }
    }
}
