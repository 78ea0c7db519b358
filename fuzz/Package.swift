// swift-tools-version:6.0
import PackageDescription

/// A libFuzzer target over the ONNX loader. Build and run it with `scripts/fuzz_onnx.sh`, which passes
/// `--sanitize=fuzzer --sanitize=address` so that the engine's modules and SwiftProtobuf are instrumented too.
let package = Package(
    name: "AidgeFuzz",
    dependencies: [
        .package(name: "Aidge", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "ONNXLoaderFuzzer",
            dependencies: [.product(name: "AidgeONNX", package: "Aidge")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]),
    ]
)
