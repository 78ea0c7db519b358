import AidgeCPU
import AidgeCore
import XCTest

/// Registers the CPU kernels once for the whole test process.
let cpuRegistered: Void = {
    do { try CPUBackend.register() } catch { XCTFail("CPU backend: \(error)") }
}()

/// Runs one operator on `inputs` through a one-node graph and the scheduler (see `Scheduler.runOperator`).
func runOperator(
    _ type: String, _ attributes: Attributes = [:], inputs: [Tensor?], constants: Set<Int> = [],
    outputs: Int? = nil
) throws -> [Tensor] {
    _ = cpuRegistered
    return try Scheduler.runOperator(type, attributes, inputs: inputs, constants: constants, outputs: outputs)
}

/// The message of the error `body` throws ("no error" when it throws none).
func errorMessage(_ body: () throws -> Any) -> String {
    do {
        _ = try body()
        return "no error"
    } catch let error as AidgeError {
        return error.message
    } catch {
        return "\(error)"
    }
}

/// Asserts two float arrays agree within `atol + rtol * |expected|` elementwise.
func assertClose(
    _ actual: [Float], _ expected: [Float], atol: Float = 1e-5, rtol: Float = 1e-4, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(actual.count, expected.count, "count \(message)", file: file, line: line)
    for (i, (a, e)) in zip(actual, expected).enumerated() {
        if a.isNaN && e.isNaN { continue }
        if a == e { continue }
        if !(abs(a - e) <= atol + rtol * abs(e)) {
            XCTFail("element \(i): \(a) vs expected \(e) \(message)", file: file, line: line)
            return
        }
    }
}

/// Deterministic pseudo-random floats in [-1, 1) (a fixed LCG: tests are reproducible).
func randomFloats(_ count: Int, seed: UInt64 = 42) -> [Float] {
    var state = seed &* 6364136223846793005 &+ 1442695040888963407
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 23) - 1
    }
}
