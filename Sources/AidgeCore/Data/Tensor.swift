/// An n-dimensional view of typed elements in a `Storage`: dtype, shape, strides and offset (both in elements).
///
/// Copying a `Tensor` copies the view, not the data: two copies share one storage.
public struct Tensor: Sendable {
    public let storage: Storage
    public let dtype: DType
    public let shape: [Int]
    public let strides: [Int]
    public let offset: Int
    /// The gradient of this value, when it takes part in training (parameters, outputs of a recorded forward).
    public var gradient: GradientCell?

    /// A view of `storage`; strides default to row-major. Throws when the view reaches outside the storage.
    public init(storage: Storage, dtype: DType, shape: [Int], strides: [Int]? = nil, offset: Int = 0) throws {
        let strides = strides ?? ShapeUtil.contiguousStrides(shape)
        guard strides.count == shape.count else {
            throw AidgeError.invalidArgument("\(shape.count) dimensions but \(strides.count) strides")
        }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw AidgeError.invalidArgument("negative dimension in shape \(shape)")
        }
        if ShapeUtil.count(shape) > 0 {
            let (low, high) = ShapeUtil.extent(shape, strides)
            guard offset + low >= 0, (offset + high + 1) * dtype.byteSize <= storage.byteCount else {
                throw AidgeError.invalidArgument(
                    "a \(dtype) view of shape \(shape), strides \(strides), offset \(offset) "
                        + "does not fit in \(storage.byteCount) bytes")
            }
        }
        self.init(unchecked: storage, dtype: dtype, shape: shape, strides: strides, offset: offset)
    }

    /// This view with a gradient cell (a new one unless it has one).
    public func withGradient() -> Tensor {
        var t = self
        if t.gradient == nil { t.gradient = GradientCell() }
        return t
    }

    /// A view that the caller has checked.
    @usableFromInline
    init(unchecked storage: Storage, dtype: DType, shape: [Int], strides: [Int], offset: Int) {
        self.storage = storage
        self.dtype = dtype
        self.shape = shape
        self.strides = strides
        self.offset = offset
    }

    /// A new zero-filled contiguous tensor.
    public init(zeros shape: [Int], dtype: DType = .float32) {
        let shape = shape.map { max($0, 0) }
        let storage = Storage(byteCount: ShapeUtil.count(shape) * dtype.byteSize)
        self.init(unchecked: storage, dtype: dtype, shape: shape, strides: ShapeUtil.contiguousStrides(shape), offset: 0)
    }

    /// A new contiguous tensor holding `values` in row-major order.
    public init<T: TensorElement>(_ values: [T], shape: [Int]) throws {
        guard shape.allSatisfy({ $0 >= 0 }), ShapeUtil.count(shape) == values.count else {
            throw AidgeError.shapeMismatch("\(values.count) values do not fill shape \(shape)")
        }
        self.init(zeros: shape, dtype: T.dtype)
        let p = rawPointer.assumingMemoryBound(to: T.self)
        for (i, v) in values.enumerated() { p[i] = v }
    }

    /// A 1-D tensor holding `values`.
    public init<T: TensorElement>(_ values: [T]) {
        self.init(zeros: [values.count], dtype: T.dtype)
        let p = rawPointer.assumingMemoryBound(to: T.self)
        for (i, v) in values.enumerated() { p[i] = v }
    }

    /// A 0-d tensor.
    public init<T: TensorElement>(scalar: T) {
        self.init(zeros: [], dtype: T.dtype)
        rawPointer.assumingMemoryBound(to: T.self).pointee = scalar
    }

    public var rank: Int { shape.count }
    public var count: Int { ShapeUtil.count(shape) }
    public var byteCount: Int { count * dtype.byteSize }
    public var device: Device { storage.device }

    /// True when elements are laid out row-major with no gaps.
    public var isContiguous: Bool {
        var expected = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) where shape[i] != 1 {
            if strides[i] != expected { return false }
            expected *= shape[i]
        }
        return true
    }

    /// Address of the first element.
    @inlinable public var rawPointer: UnsafeMutableRawPointer { storage.pointer + offset * dtype.byteSize }

    /// Typed address of the first element. The caller has checked the dtype.
    @inlinable public func pointer<T>(as type: T.Type) -> UnsafeMutablePointer<T> {
        rawPointer.assumingMemoryBound(to: T.self)
    }

    /// The same elements viewed with another shape (no copy when contiguous).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard newShape.allSatisfy({ $0 >= 0 }), ShapeUtil.count(newShape) == count else {
            throw AidgeError.shapeMismatch("cannot reshape a tensor of shape \(shape) to \(newShape)")
        }
        let base = contiguous()
        return Tensor(
            unchecked: base.storage, dtype: dtype, shape: newShape, strides: ShapeUtil.contiguousStrides(newShape),
            offset: base.offset)
    }

    /// A view with dimensions permuted (no copy).
    public func permuted(_ perm: [Int]) throws -> Tensor {
        guard perm.count == rank, Set(perm) == Set(0..<rank) else {
            throw AidgeError.invalidArgument("permutation \(perm) is not valid for rank \(rank)")
        }
        return Tensor(
            unchecked: storage, dtype: dtype, shape: perm.map { shape[$0] }, strides: perm.map { strides[$0] },
            offset: offset)
    }

    /// This tensor if it is contiguous, else a contiguous copy.
    public func contiguous() -> Tensor { isContiguous ? self : copy() }

    /// A contiguous copy in new storage.
    public func copy() -> Tensor {
        let out = Tensor(zeros: shape, dtype: dtype)
        copyElements(from: self, to: out)
        return out
    }

    /// Elements converted to `dtype` with NumPy's `astype` rules, in new contiguous storage.
    public func cast(to target: DType) -> Tensor {
        if target == dtype { return copy() }
        let src = contiguous()
        let out = Tensor(zeros: shape, dtype: target)
        castElements(src.rawPointer, src.dtype, out.rawPointer, target, count)
        return out
    }

    /// The elements in row-major order; `T` must be this tensor's element type.
    public func scalars<T: TensorElement>(as type: T.Type = T.self) throws -> [T] {
        guard T.dtype == dtype else {
            throw AidgeError.unsupportedType("tensor holds \(dtype), not \(T.dtype)")
        }
        let c = contiguous()
        return Array(UnsafeBufferPointer(start: c.pointer(as: T.self), count: count))
    }

    /// The elements converted to `T`, in row-major order (for shape arithmetic and tests).
    public func converted<T: TensorElement>(to type: T.Type) -> [T] {
        let c = dtype == T.dtype ? contiguous() : cast(to: T.dtype)
        return Array(UnsafeBufferPointer(start: c.pointer(as: T.self), count: count))
    }

    /// Integer values of a shape-like tensor (int64/int32, or any dtype converted).
    public func integers() -> [Int] { converted(to: Int64.self).map { Int($0) } }

    /// Values as doubles.
    public func doubles() -> [Double] { converted(to: Double.self) }
}

/// Copies `src` elements into `dst` (same dtype and shape; any strides on both sides).
public func copyElements(from src: Tensor, to dst: Tensor) {
    let n = src.count
    if n == 0 { return }
    let size = src.dtype.byteSize
    if src.isContiguous && dst.isContiguous {
        dst.rawPointer.copyMemory(from: src.rawPointer, byteCount: n * size)
        return
    }
    switch size {
    case 1: stridedCopy(src, dst, UInt8.self)
    case 2: stridedCopy(src, dst, UInt16.self)
    case 4: stridedCopy(src, dst, UInt32.self)
    default: stridedCopy(src, dst, UInt64.self)
    }
}

private func stridedCopy<T>(_ src: Tensor, _ dst: Tensor, _: T.Type) {
    let shape = src.shape
    let rank = shape.count
    let s = src.pointer(as: T.self)
    let d = dst.pointer(as: T.self)
    if rank == 0 {
        d.pointee = s.pointee
        return
    }
    let inner = shape[rank - 1]
    let ss = src.strides[rank - 1]
    let ds = dst.strides[rank - 1]
    var index = [Int](repeating: 0, count: rank)
    let outer = src.count / max(inner, 1)
    for _ in 0..<outer {
        var so = 0
        var dO = 0
        for k in 0..<(rank - 1) {
            so += index[k] * src.strides[k]
            dO += index[k] * dst.strides[k]
        }
        for i in 0..<inner { d[dO + i * ds] = s[so + i * ss] }
        var k = rank - 2
        while k >= 0 {
            index[k] += 1
            if index[k] < shape[k] { break }
            index[k] = 0
            k -= 1
        }
    }
}

/// Converts `count` contiguous elements of `from` at `src` into `to` at `dst`.
public func castElements(
    _ src: UnsafeRawPointer, _ from: DType, _ dst: UnsafeMutableRawPointer, _ to: DType, _ count: Int
) {
    if from == .string || to == .string {
        castStrings(src, from, dst, to, count)
        return
    }
    struct Outer: DTypeVisitor {
        let src: UnsafeRawPointer, dst: UnsafeMutableRawPointer, to: DType, count: Int
        func visit<S: TensorElement>(_: S.Type) throws {
            try to.visit(CastInto<S>(src: src.assumingMemoryBound(to: S.self), dst: dst, count: count))
        }
    }
    try? from.visit(Outer(src: src, dst: dst, to: to, count: count))
}

private struct CastInto<S: TensorElement>: DTypeVisitor {
    let src: UnsafePointer<S>, dst: UnsafeMutableRawPointer, count: Int
    func visit<D: TensorElement>(_: D.Type) throws {
        let d = dst.assumingMemoryBound(to: D.self)
        for i in 0..<count { d[i] = D(converting: src[i]) }
    }
}
