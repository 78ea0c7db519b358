import Aidge
import Foundation
import XCTest

/// The CUDA backend on this machine: the real GPU when there is one, else the CPU emulator of the driver, NVRTC
/// and cuBLAS (built from `Tests/CUDAEmulator` by `scripts/build_cuda_emulator.sh`), so the backend's code and
/// kernel sources are exercised everywhere.
enum CUDATestDevice {
    static let registered: Result<Void, Error> = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        if ProcessInfo.processInfo.environment["AIDGE_CUDA_EMULATOR"] == nil
            && !FileManager.default.fileExists(atPath: "/dev/nvidia0")
        {
            let build = Process()
            build.executableURL = URL(fileURLWithPath: "/bin/bash")
            build.arguments = [root.appendingPathComponent("scripts/build_cuda_emulator.sh").path]
            let output = Pipe()
            build.standardOutput = output
            do {
                try build.run()
                build.waitUntilExit()
            } catch {
                return .failure(error)
            }
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            guard build.terminationStatus == 0, let path = text.split(separator: "\n").last else {
                return .failure(AidgeError.device("building the CUDA emulator failed: \(text)"))
            }
            setenv("AIDGE_CUDA_EMULATOR", String(path), 1)
            // The real NVRTC (a pip wheel of the development environment) must also accept every kernel source.
            let lib = root.appendingPathComponent(".venv/lib")
            let versions = (try? FileManager.default.contentsOfDirectory(atPath: lib.path)) ?? []
            for version in versions {
                let nvrtc = lib.appendingPathComponent("\(version)/site-packages/nvidia/cu13/lib/libnvrtc.so.13").path
                if FileManager.default.fileExists(atPath: nvrtc) { setenv("AIDGE_EMULATOR_NVRTC", nvrtc, 1) }
            }
        }
        return Result {
            try CPUBackend.register()
            try CUDABackend.register()
            // Exact float32 (the tolerance of the comparisons); the TF32 test turns it on where it checks it.
            CUDABackend.allowsTF32Convolutions = false
        }
    }()

    /// Registers both backends; fails the test (never skips it) when the CUDA backend cannot be loaded.
    static func require() throws {
        try registered.get()
    }
}

/// Runs one operator on the CPU and on CUDA and returns both outputs, the CUDA ones copied to the host.
func runBoth(
    _ type: String, _ attributes: Attributes = [:], inputs: [Tensor?], constants: Set<Int> = [], outputs: Int? = nil
) throws -> (cpu: [Tensor], cuda: [Tensor]) {
    try CUDATestDevice.require()
    let cpu = try Scheduler.runOperator(type, attributes, inputs: inputs, constants: constants, outputs: outputs)
    let cuda = try Scheduler.runOperator(
        type, attributes, inputs: inputs, constants: constants, outputs: outputs, backend: "cuda")
    for t in cuda { XCTAssertEqual(t.device, .cuda(0), "\(type) output is on the device") }
    return (cpu, try cuda.map { try $0.onHost() })
}

/// Asserts CUDA's results match the CPU's: same dtypes and shapes, and values within the fp32 tolerance
/// |d| <= rtol·|ref| + atol·max|ref| (16-bit floats: 2e-2 relative).
func assertMatches(
    _ results: (cpu: [Tensor], cuda: [Tensor]), rtol: Double = 1e-4, atol: Double = 1e-5, _ message: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(results.cpu.count, results.cuda.count, message, file: file, line: line)
    for (reference, actual) in zip(results.cpu, results.cuda) {
        XCTAssertEqual(reference.dtype, actual.dtype, message, file: file, line: line)
        XCTAssertEqual(reference.shape, actual.shape, message, file: file, line: line)
        let expected = reference.doubles(), values = actual.doubles()
        let scale = expected.map(abs).filter(\.isFinite).max() ?? 0
        let relative = [DType.float16, .bfloat16].contains(reference.dtype) ? max(rtol, 2e-2) : rtol
        for (i, (e, v)) in zip(expected, values).enumerated() where !(e.isNaN && v.isNaN) && e != v {
            if abs(e - v) > relative * abs(e) + atol * scale {
                XCTFail("\(message) element \(i): cuda \(v), cpu \(e)", file: file, line: line)
                return
            }
        }
    }
}

/// Deterministic pseudo-random floats in [-scale, scale).
func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1, dtype: DType = .float32) throws -> Tensor {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    let values = (0..<shape.reduce(1, *)).map { _ -> Float in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
    let t = try Tensor(values, shape: shape)
    return dtype == .float32 ? t : t.cast(to: dtype)
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
