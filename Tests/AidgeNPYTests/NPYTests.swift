import AidgeCore
import AidgeNPY
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Reads files that NumPy wrote (scripts/fixtures/npy.py) and checks the values NumPy put in them.
final class NPYTests: XCTestCase {
    private func fixture(_ name: String) -> String {
        FileIO.directory(of: "\(#filePath)") + "/Fixtures/" + name
    }

    func testCOrderFloat32() throws {
        let t = try NPY.read(fixture("c_float32.npy"))
        XCTAssertEqual(t.dtype, .float32)
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(try t.scalars(as: Float.self), [0, 0.25, 0.5, 0.75, 1, 1.25])
    }

    func testFortranOrderIsReorderedToRowMajor() throws {
        let t = try NPY.read(fixture("fortran_float64.npy"))
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(try t.scalars(as: Double.self), [0, 1, 2, 3, 4, 5])
    }

    func testOtherDtypesAndScalar() throws {
        XCTAssertEqual(try NPY.read(fixture("bool.npy")).scalars(as: Bool.self), [true, false, true])
        let s = try NPY.read(fixture("scalar_int64.npy"))
        XCTAssertEqual(s.shape, [])
        XCTAssertEqual(try s.scalars(as: Int64.self), [-7])
        let u = try NPY.read(fixture("uint16_3d.npy"))
        XCTAssertEqual(u.shape, [2, 3, 4])
        XCTAssertEqual(try u.scalars(as: UInt16.self), (0..<24).map { UInt16($0) })
        XCTAssertEqual(try NPY.read(fixture("float16.npy")).scalars(as: Float16.self), [0.5, -2, 65504])
        XCTAssertEqual(try NPY.read(fixture("version2.npy")).scalars(as: Int32.self), [0, 1, 2, 3])
    }

    func testBigEndianIsRefused() {
        XCTAssertThrowsError(try NPY.read(fixture("big_endian.npy"))) { XCTAssertTrue("\($0)".contains("big-endian")) }
    }

    func testRoundTrip() throws {
        let path = "/tmp/aidge-npy-roundtrip-\(getpid()).npy"
        defer { unlink(path) }
        let t = try Tensor((0..<12).map { Int64($0) - 6 }, shape: [3, 1, 4])
        try NPY.write(t, to: path)
        let back = try NPY.read(path)
        XCTAssertEqual(back.shape, [3, 1, 4])
        XCTAssertEqual(try back.scalars(as: Int64.self), try t.scalars(as: Int64.self))
        XCTAssertThrowsError(try NPY.write(Tensor(zeros: [2], dtype: .bfloat16), to: path))
    }

    func testBadFilesGiveErrors() throws {
        XCTAssertThrowsError(try NPY.read("/nonexistent/x.npy")) { XCTAssertTrue("\($0)".contains("No such file")) }
        XCTAssertThrowsError(try NPY.decode(Array("hello world".utf8))) { XCTAssertTrue("\($0)".contains("magic")) }
        var bytes = try FileIO.read(fixture("c_float32.npy"))
        bytes.removeLast(4)
        XCTAssertThrowsError(try NPY.decode(bytes)) { XCTAssertTrue("\($0)".contains("truncated")) }
    }
}
