import AidgeCore

/// Element types of the plain-loop matrix product (float64 and integers; float32 uses the packed engine).
protocol LoopGEMMElement: TensorElement {
    static var zeroValue: Self { get }
    /// acc + a * b (wrapping for integers).
    static func multiplyAdd(_ acc: Self, _ a: Self, _ b: Self) -> Self
}

/// float16 accumulates in float32, rounding to float16 once per product term as NumPy's float16 matmul does.
extension Float16: LoopGEMMElement {
    @inline(__always) static var zeroValue: Float16 { 0 }
    @inline(__always) static func multiplyAdd(_ acc: Float16, _ a: Float16, _ b: Float16) -> Float16 {
        Float16(Float(acc) + Float(a) * Float(b))
    }
}

extension Double: LoopGEMMElement {
    @inline(__always) static var zeroValue: Double { 0 }
    @inline(__always) static func multiplyAdd(_ acc: Double, _ a: Double, _ b: Double) -> Double { acc + a * b }
}

extension Int32: LoopGEMMElement {
    @inline(__always) static var zeroValue: Int32 { 0 }
    @inline(__always) static func multiplyAdd(_ acc: Int32, _ a: Int32, _ b: Int32) -> Int32 { acc &+ a &* b }
}

extension Int64: LoopGEMMElement {
    @inline(__always) static var zeroValue: Int64 { 0 }
    @inline(__always) static func multiplyAdd(_ acc: Int64, _ a: Int64, _ b: Int64) -> Int64 { acc &+ a &* b }
}

extension UInt32: LoopGEMMElement {
    @inline(__always) static var zeroValue: UInt32 { 0 }
    @inline(__always) static func multiplyAdd(_ acc: UInt32, _ a: UInt32, _ b: UInt32) -> UInt32 { acc &+ a &* b }
}

extension UInt64: LoopGEMMElement {
    @inline(__always) static var zeroValue: UInt64 { 0 }
    @inline(__always) static func multiplyAdd(_ acc: UInt64, _ a: UInt64, _ b: UInt64) -> UInt64 { acc &+ a &* b }
}

/// C (M x N, row stride `ldc`) = A * B with plain loops, blocked over K so a few rows of B stay in cache.
/// A's element (i, p) is at `a[i * aRow + p * aCol]`, B's (p, j) at `b[p * bRow + j * bCol]`.
func loopGEMM<T: LoopGEMMElement>(
    m: Int, n: Int, k: Int, a: UnsafePointer<T>, aRow: Int, aCol: Int, b: UnsafePointer<T>, bRow: Int, bCol: Int,
    c: UnsafeMutablePointer<T>, ldc: Int
) {
    for i in 0..<m { (c + i * ldc).update(repeating: T.zeroValue, count: n) }
    let kBlock = 128
    var p0 = 0
    while p0 < k {
        let p1 = min(k, p0 + kBlock)
        for i in 0..<m {
            let row = c + i * ldc
            for p in p0..<p1 {
                let av = a[i * aRow + p * aCol]
                let bp = b + p * bRow
                if bCol == 1 {
                    for j in 0..<n { row[j] = T.multiplyAdd(row[j], av, bp[j]) }
                } else {
                    for j in 0..<n { row[j] = T.multiplyAdd(row[j], av, bp[j * bCol]) }
                }
            }
        }
        p0 = p1
    }
}
