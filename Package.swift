// swift-tools-version:6.0
import PackageDescription

/// The CPU kernels are compiled for AVX2 + FMA on x86-64 (Swift SIMD types only vectorise with target features);
/// the program checks the processor at start-up and refuses clearly on one without them.
#if arch(x86_64)
let kernelFlags: [SwiftSetting] = [
    .unsafeFlags(["-Xcc", "-mavx2", "-Xcc", "-mfma", "-Xcc", "-mf16c", "-enforce-exclusivity=unchecked"])
]
/// The AVX-512 kernels live in a module of their own, called only after a run-time check of the processor.
let wideKernelFlags: [SwiftSetting] = [
    .unsafeFlags([
        "-Xcc", "-mavx512f", "-Xcc", "-mavx512vl", "-Xcc", "-mavx512dq", "-Xcc", "-mavx512bw",
        "-Xcc", "-mavx2", "-Xcc", "-mfma", "-enforce-exclusivity=unchecked",
    ])
]
#else
let kernelFlags: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
let wideKernelFlags = kernelFlags
#endif

let package = Package(
    name: "Aidge",
    products: [
        .library(name: "Aidge", targets: ["Aidge"]),
        .executable(name: "aidge", targets: ["AidgeCLI"]),
        /// The ONNX importer alone, for the fuzz target in `fuzz/`.
        .library(name: "AidgeONNX", targets: ["AidgeCore", "AidgeONNX"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
    ],
    targets: [
        .target(name: "CAidgePlatform"),
        .target(name: "AidgeCore", dependencies: ["CAidgePlatform"]),
        .target(name: "AidgeCPUAVX512", swiftSettings: wideKernelFlags),
        .target(name: "AidgeCPU", dependencies: ["AidgeCore", "AidgeCPUAVX512", "CAidgePlatform"], swiftSettings: kernelFlags),
        .target(
            name: "AidgeONNX",
            dependencies: ["AidgeCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "AidgeNPY", dependencies: ["AidgeCore"]),
        .target(name: "AidgeLearning", dependencies: ["AidgeCore"]),
        /// The CUDA backend: loads the NVIDIA libraries at run time, so it builds without them.
        .target(name: "AidgeCUDA", dependencies: ["AidgeCore"]),
        .target(name: "Aidge", dependencies: ["AidgeCore", "AidgeCPU", "AidgeCUDA", "AidgeONNX", "AidgeLearning"]),
        .executableTarget(
            name: "AidgeCLI",
            dependencies: ["Aidge", "AidgeNPY", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(name: "AidgeCoreTests", dependencies: ["AidgeCore"]),
        .testTarget(name: "AidgeCPUTests", dependencies: ["AidgeCore", "AidgeCPU", "AidgeNPY"]),
        .testTarget(
            name: "AidgeONNXTests",
            dependencies: ["Aidge", .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .testTarget(name: "AidgeNPYTests", dependencies: ["AidgeNPY"]),
        .testTarget(name: "AidgeLearningTests", dependencies: ["Aidge"]),
        .testTarget(name: "AidgeCUDATests", dependencies: ["Aidge"]),
    ]
)
