import AidgeCore
import XCTest

final class ActivationGradientTests: XCTestCase {
    func testRelu() throws {
        // Values away from the kink at 0, where the finite difference is exact.
        let x = randomTensor([3, 5, 7]).doubles().map { $0 < 0 ? $0 - 0.1 : $0 + 0.1 }
        try checkGradients("Relu", inputs: [try Tensor(x, shape: [3, 5, 7])])
    }
}
