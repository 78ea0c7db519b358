import Aidge
import XCTest

final class ImportTests: XCTestCase {
    func testLibraryLinks() {
        XCTAssertNotNil(OperatorSchema.registry)
    }
}
