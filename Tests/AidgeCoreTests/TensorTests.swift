import AidgeCore
import XCTest

final class TensorTests: XCTestCase {
    func testZerosAreContiguousAndAligned() {
        let t = Tensor(zeros: [2, 3, 4])
        XCTAssertEqual(t.strides, [12, 4, 1])
        XCTAssertTrue(t.isContiguous)
        XCTAssertEqual(Int(bitPattern: t.rawPointer) % Storage.alignment, 0)
        XCTAssertEqual(t.converted(to: Float.self), [Float](repeating: 0, count: 24))
    }

    func testValuesAndShapeMismatch() throws {
        let t = try Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(try t.scalars(as: Float.self), [1, 2, 3, 4, 5, 6])
        XCTAssertThrowsError(try Tensor([1, 2, 3] as [Float], shape: [2, 2])) { error in
            XCTAssertTrue("\(error)".contains("[2, 2]"))
        }
        XCTAssertThrowsError(try t.scalars(as: Double.self))
    }

    func testPermutedViewAndStridedCopy() throws {
        let t = try Tensor((0..<24).map { Int32($0) }, shape: [2, 3, 4])
        let p = try t.permuted([2, 0, 1])
        XCTAssertEqual(p.shape, [4, 2, 3])
        XCTAssertFalse(p.isContiguous)
        let c = p.contiguous()
        XCTAssertTrue(c.isContiguous)
        // Reference: out[i, j, k] = t[j, k, i] = j*12 + k*4 + i.
        var expected: [Int32] = []
        for i in 0..<4 { for j in 0..<2 { for k in 0..<3 { expected.append(Int32(j * 12 + k * 4 + i)) } } }
        XCTAssertEqual(try c.scalars(as: Int32.self), expected)
        XCTAssertThrowsError(try t.permuted([0, 0, 1]))
    }

    func testReshapeKeepsCountAndRejectsMismatch() throws {
        let t = try Tensor((0..<6).map { Float($0) }, shape: [2, 3])
        let r = try t.reshaped([3, 2])
        XCTAssertTrue(r.storage === t.storage, "a contiguous reshape is a view")
        XCTAssertThrowsError(try t.reshaped([4, 2]))
    }

    func testViewOutsideStorageIsRejected() {
        let storage = Storage(byteCount: 16)
        XCTAssertNoThrow(try Tensor(storage: storage, dtype: .float32, shape: [4]))
        XCTAssertThrowsError(try Tensor(storage: storage, dtype: .float32, shape: [5]))
        XCTAssertThrowsError(try Tensor(storage: storage, dtype: .float32, shape: [2], offset: 3))
    }

    func testBorrowedStorageIsReleasedOnce() {
        final class Counter: @unchecked Sendable { var n = 0 }
        let counter = Counter()
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: 8, alignment: 4)
        do {
            let storage = Storage(borrowing: pointer, byteCount: 8, release: { p in counter.n += 1; p.deallocate() })
            let t = try? Tensor(storage: storage, dtype: .float32, shape: [2])
            XCTAssertNotNil(t)
        }
        XCTAssertEqual(counter.n, 1)
    }

    func testDescription() throws {
        let t = try Tensor([1, 2, 3, 4] as [Float], shape: [2, 2])
        XCTAssertEqual(t.description, "Tensor(float32, shape [2, 2]) [[1.0, 2.0], [3.0, 4.0]]")
        XCTAssertTrue(Tensor((0..<100).map { Int64($0) }).description.contains("..."))
    }
}

/// Casts follow NumPy's `astype` where NumPy defines the result (values below are what NumPy 2.x returns), and
/// saturate where it does not.
final class CastTests: XCTestCase {
    func testFloatToIntTruncatesTowardZero() throws {
        let t = try Tensor([2.7, -2.7, 0.5, -0.5, 126.9] as [Float], shape: [5])
        XCTAssertEqual(t.cast(to: .int32).converted(to: Int32.self), [2, -2, 0, 0, 126])
        XCTAssertEqual(t.cast(to: .int8).converted(to: Int8.self), [2, -2, 0, 0, 126])
    }

    func testFloatToIntOutOfRangeSaturatesAndNaNIsZero() throws {
        let t = try Tensor([1e10, -1e10, .nan, .infinity, -.infinity] as [Float], shape: [5])
        XCTAssertEqual(t.cast(to: .int32).converted(to: Int32.self), [.max, .min, 0, .max, .min])
        XCTAssertEqual(t.cast(to: .uint8).converted(to: UInt8.self), [255, 0, 0, 255, 0])
        XCTAssertEqual(t.cast(to: .int64).converted(to: Int64.self), [10_000_000_000, -10_000_000_000, 0, .max, .min])
        XCTAssertEqual(try Tensor([-1.5] as [Double], shape: [1]).cast(to: .uint64).converted(to: UInt64.self), [0])
    }

    func testIntToIntWraps() throws {
        let t = try Tensor([300, -129, 255, -1] as [Int32], shape: [4])
        XCTAssertEqual(t.cast(to: .int8).converted(to: Int8.self), [44, 127, -1, -1])
        XCTAssertEqual(t.cast(to: .uint8).converted(to: UInt8.self), [44, 127, 255, 255])
        XCTAssertEqual(try Tensor([UInt64.max] as [UInt64], shape: [1]).cast(to: .int64).converted(to: Int64.self), [-1])
    }

    func testToBoolIsNonZero() throws {
        let t = try Tensor([0, -0.0, .nan, 0.1] as [Float], shape: [4])
        XCTAssertEqual(t.cast(to: .bool).converted(to: Bool.self), [false, false, true, true])
        XCTAssertEqual(try Tensor([true, false] as [Bool], shape: [2]).cast(to: .float32).converted(to: Float.self), [1, 0])
    }

    func testIntToFloatRoundsOnce() throws {
        let t = try Tensor([16_777_217, 16_777_219] as [Int64], shape: [2])
        XCTAssertEqual(t.cast(to: .float32).converted(to: Float.self), [16_777_216, 16_777_220])
    }

    func testFloat16Rounding() throws {
        let t = try Tensor([65520, 65519, 1.0 / 3.0, 1e-8] as [Float], shape: [4])
        let h = t.cast(to: .float16).converted(to: Float16.self)
        XCTAssertEqual(h[0], .infinity)  // halfway to 65536, rounds to even: overflow
        XCTAssertEqual(h[1], 65504)
        XCTAssertEqual(Float(h[2]), 0.33325195)
        XCTAssertEqual(h[3], 0)
    }

    func testBFloat16RoundsToNearestEven() throws {
        let t = try Tensor([1.00390625, 1.01171875, -3.0, .infinity] as [Float], shape: [4])
        let b = t.cast(to: .bfloat16).converted(to: BFloat16.self).map(\.floatValue)
        XCTAssertEqual(b, [1.0, 1.015625, -3.0, .infinity])
        XCTAssertTrue(try Tensor([Float.nan], shape: [1]).cast(to: .bfloat16).converted(to: BFloat16.self)[0].floatValue.isNaN)
        // From double, a value just above a float32 tie must round up (no double rounding through float32).
        let d = try Tensor([1 + 1.0 / 256 + 1.0 / 1_073_741_824] as [Double], shape: [1])
        XCTAssertEqual(d.cast(to: .bfloat16).converted(to: BFloat16.self)[0].floatValue, 1.0078125)
    }

    func testEveryPairConverts() throws {
        for from in DType.allCases {
            for to in DType.allCases {
                // 0 and 1 are in every dtype's range (int2 holds -2...1) but e8m0's (powers of two only); 2 and 100
                // in every other dtype's.
                let lowPrecision = from.isLowPrecision || to.isLowPrecision
                let scale = from == .float8E8M0 || to == .float8E8M0
                let values: [Int32] = scale ? [1] : lowPrecision ? [0, 1] : [0, 1, 2, 100]
                let a = Tensor(values).cast(to: from)
                let b = a.cast(to: to)
                XCTAssertEqual(b.dtype, to)
                let expected: [Double] = values.map { from == .bool || to == .bool ? ($0 == 0 ? 0 : 1) : Double($0) }
                XCTAssertEqual(b.doubles(), expected, "\(from) -> \(to)")
            }
        }
    }
}
