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
}
