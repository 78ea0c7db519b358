// swift-tools-version:6.0
import PackageDescription

/// The Python extension `aidge._aidge`, kept in a package of its own so that the engine's package (and its tests)
/// never needs Python headers. `setup.py` builds it with the interpreter's include folder and the Swift runtime
/// linked in statically.
let package = Package(
    name: "AidgePython",
    products: [.library(name: "AidgePython", type: .dynamic, targets: ["AidgePython"])],
    dependencies: [.package(name: "Aidge", path: "../..")],
    targets: [
        .systemLibrary(name: "CPython", path: "Sources/CPython"),
        .target(
            name: "AidgePython",
            dependencies: ["CPython", .product(name: "Aidge", package: "Aidge")],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]),
    ]
)
