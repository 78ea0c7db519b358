@preconcurrency import CPython
import Aidge

/// Tensors over memory that Python objects own: anything with the buffer protocol (NumPy arrays, memoryviews,
/// bytearrays), and raw addresses (`Tensor.from_data_ptr`).
enum BufferImport {
    /// A tensor sharing `object`'s buffer (any strides, read-only when the buffer is), keeping the buffer
    /// exported until the tensor's storage dies. `dtype` reinterprets the elements (same width), for
    /// types the buffer protocol cannot name (bfloat16 arrives as uint16).
    static func share(_ object: PyObjectRef, as dtype: DType? = nil) throws -> Tensor {
        let view = UnsafeMutablePointer<Py_buffer>.allocate(capacity: 1)
        guard PyObject_GetBuffer(object, view, PyBUF_RECORDS_RO) == 0 else {
            view.deallocate()
            throw PythonError.alreadySet
        }
        var handedOver = false
        do {
            return try tensor(over: view, as: dtype, handedOver: &handedOver)
        } catch {
            if !handedOver {
                PyBuffer_Release(view)
                view.deallocate()
            }
            throw error
        }
    }

    /// `handedOver` turns true once a storage owns the view (and releases it when it dies).
    private static func tensor(
        over view: UnsafeMutablePointer<Py_buffer>, as override: DType?, handedOver: inout Bool
    ) throws -> Tensor {
        let b = view.pointee
        let item = b.itemsize
        let found = try elementType(format: b.format.map { String(cString: $0) } ?? "B", itemsize: item)
        var dtype = found
        if let override {
            guard override.byteSize == item else {
                throw PythonError.value("cannot view \(found) elements (\(item) bytes) as \(override)")
            }
            dtype = override
        }
        let rank = Int(b.ndim)
        guard rank <= 64 else { throw PythonError.value("\(rank) dimensions: at most 64 are supported") }
        let shape = (0..<rank).map { d in b.shape.map { Int($0[d]) } ?? (rank == 1 ? b.len / max(item, 1) : 0) }
        var strides: [Int] = []
        for d in 0..<rank {
            let bytes = b.strides.map { Int($0[d]) } ?? (d == rank - 1 ? item : shape[(d + 1)...].reduce(item, *))
            guard bytes % item == 0 else {
                throw PythonError.value("a stride of \(bytes) bytes is not a multiple of the \(item)-byte element")
            }
            strides.append(bytes / item)
        }
        // Negative strides reach below the first element.
        let (low, high) = ShapeUtil.extent(shape, strides)
        let count = ShapeUtil.count(shape)
        guard let buf = b.buf else { throw PythonError.value("the buffer has no memory") }
        let start = buf + low * item
        let address = Int(bitPattern: UnsafeMutableRawPointer(view))
        let storage = Storage(
            borrowing: start, byteCount: count == 0 ? 0 : (high - low + 1) * item, readOnly: b.readonly != 0,
            release: { _ in
                guard let view = UnsafeMutablePointer<Py_buffer>(bitPattern: address) else { return }
                // After the interpreter is gone there is nobody to give the buffer back to.
                guard Py_IsInitialized() != 0 else { return }
                let state = PyGILState_Ensure()
                PyBuffer_Release(view)
                PyGILState_Release(state)
                view.deallocate()
            })
        handedOver = true
        return try Tensor(storage: storage, dtype: dtype, shape: shape, strides: strides, offset: -low)
    }

    /// The dtype of a PEP 3118 format string with elements of `itemsize` bytes.
    static func elementType(format: String, itemsize: Int) throws -> DType {
        var code = Substring(format)
        if let first = code.first, "@=<>!".contains(first) {
            if first == ">" || first == "!" {
                throw PythonError.value(
                    "big-endian (byte-swapped) data is not supported: convert it with "
                        + "array.astype(array.dtype.newbyteorder('='))")
            }
            code = code.dropFirst()
        }
        guard code.count == 1, let c = code.first else {
            throw PythonError(kind: .unsupportedType, message: "unsupported buffer format '\(format)' (object, structured and complex arrays are not tensors)")
        }
        let dtype: DType?
        switch c {
        case "b", "h", "i", "l", "q", "n":
            dtype = [1: .int8, 2: .int16, 4: .int32, 8: .int64][itemsize]
        case "B", "H", "I", "L", "Q", "N":
            dtype = [1: .uint8, 2: .uint16, 4: .uint32, 8: .uint64][itemsize]
        case "e", "f", "d":
            dtype = [2: .float16, 4: .float32, 8: .float64][itemsize]
        case "?":
            dtype = itemsize == 1 ? .bool : nil
        default:
            dtype = nil
        }
        guard let dtype else {
            throw PythonError(kind: .unsupportedType, message: "unsupported element type '\(format)' of \(itemsize) bytes")
        }
        return dtype
    }

    /// A tensor over `count` elements at a raw address, kept alive by `owner` (a Python object, retained until the
    /// storage dies).
    static func wrap(
        address: Int, shape: [Int], dtype: DType, strides: [Int]?, owner: PyObjectRef?, readOnly: Bool
    ) throws -> Tensor {
        guard let pointer = UnsafeMutableRawPointer(bitPattern: address) else {
            throw PythonError.value("data_ptr is null")
        }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw PythonError.value("negative dimension in \(shape)") }
        let strides = strides ?? ShapeUtil.contiguousStrides(shape)
        guard strides.count == shape.count else {
            throw PythonError.value("\(shape.count) dimensions but \(strides.count) strides")
        }
        guard strides.allSatisfy({ $0 >= 0 }) else { throw PythonError.value("negative strides need an offset") }
        let span = ShapeUtil.count(shape) == 0 ? 0 : ShapeUtil.extent(shape, strides).high + 1
        var release: (@Sendable (UnsafeMutableRawPointer) -> Void)? = nil
        if let owner {
            let ownerAddress = Int(bitPattern: UnsafeMutableRawPointer(Py_NewRef(owner)))
            release = { _ in
                guard Py_IsInitialized() != 0, let o = UnsafeMutablePointer<PyObject>(bitPattern: ownerAddress) else { return }
                let state = PyGILState_Ensure()
                Py_DecRef(o)
                PyGILState_Release(state)
            }
        }
        let storage = Storage(borrowing: pointer, byteCount: span * dtype.byteSize, readOnly: readOnly, release: release)
        return try Tensor(storage: storage, dtype: dtype, shape: shape, strides: strides)
    }
}
