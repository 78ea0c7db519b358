import AidgeCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Tan, the inverse trigonometric functions and the hyperbolic ones (Sin and Cos are `UnaryMath`). Rarely on a hot
/// path: each element goes through the double-precision libm function, so float32 and float16 results are the
/// correctly rounded ones whatever the platform's float functions do.
func registerTrigonometryKernels(_ registry: KernelRegistry) {
    registry.register("Tan", backend: "cpu") { try makeKernel(Trigonometric<TanFunction>(), $0) }
    registry.register("Asin", backend: "cpu") { try makeKernel(Trigonometric<AsinFunction>(), $0) }
    registry.register("Acos", backend: "cpu") { try makeKernel(Trigonometric<AcosFunction>(), $0) }
    registry.register("Atan", backend: "cpu") { try makeKernel(Trigonometric<AtanFunction>(), $0) }
    registry.register("Sinh", backend: "cpu") { try makeKernel(Trigonometric<SinhFunction>(), $0) }
    registry.register("Cosh", backend: "cpu") { try makeKernel(Trigonometric<CoshFunction>(), $0) }
    registry.register("Asinh", backend: "cpu") { try makeKernel(Trigonometric<AsinhFunction>(), $0) }
    registry.register("Acosh", backend: "cpu") { try makeKernel(Trigonometric<AcoshFunction>(), $0) }
    registry.register("Atanh", backend: "cpu") { try makeKernel(Trigonometric<AtanhFunction>(), $0) }
}

/// A double-precision function, resolved statically (no per-element indirection).
protocol DoubleFunction { static func apply(_ x: Double) -> Double }

enum TanFunction: DoubleFunction { @inline(__always) static func apply(_ x: Double) -> Double { tan(x) } }
enum AsinFunction: DoubleFunction { @inline(__always) static func apply(_ x: Double) -> Double { asin(x) } }
enum AcosFunction: DoubleFunction { @inline(__always) static func apply(_ x: Double) -> Double { acos(x) } }
enum AtanFunction: DoubleFunction { @inline(__always) static func apply(_ x: Double) -> Double { atan(x) } }
enum SinhFunction: DoubleFunction { @inline(__always) static func apply(_ x: Double) -> Double { sinh(x) } }
enum CoshFunction: DoubleFunction { @inline(__always) static func apply(_ x: Double) -> Double { cosh(x) } }
enum AsinhFunction: DoubleFunction { @inline(__always) static func apply(_ x: Double) -> Double { asinh(x) } }
enum AcoshFunction: DoubleFunction { @inline(__always) static func apply(_ x: Double) -> Double { acosh(x) } }
enum AtanhFunction: DoubleFunction { @inline(__always) static func apply(_ x: Double) -> Double { atanh(x) } }

/// The kernels of one function `F` on the float types.
struct Trigonometric<F: DoubleFunction>: KernelFamily {
    func float<T: MathFloat>(_ type: T.Type, _ request: KernelRequest) throws -> any Kernel {
        try unaryKernel(DoubleFunctionOp<T, F>(), request, grain: ElementCost.scalar)
    }
}

struct DoubleFunctionOp<T: MathFloat, F: DoubleFunction>: UnaryElementOp {
    @inline(__always) func callAsFunction(_ x: T) -> T { T(F.apply(Double(x))) }
}
