@preconcurrency import CPython
import Aidge

#if canImport(Glibc)
import Glibc
#endif

/// What a Python tensor object holds: an engine tensor (a view over a storage that may be someone else's memory).
final class TensorBox {
    var tensor: Tensor
    init(_ tensor: Tensor) { self.tensor = tensor }
}

/// The type `_aidge.TensorBase` (subclassed in Python by `aidge.Tensor`), and the class new tensors get.
enum TensorType {
    nonisolated(unsafe) static var base: OpaquePointer?
    /// `aidge.Tensor`, registered by the Python package; falls back to the base type.
    nonisolated(unsafe) static var instanceClass: OpaquePointer?

    /// A new Python tensor holding `tensor`.
    static func wrap(_ tensor: Tensor) throws -> PyObjectRef {
        guard let type = instanceClass ?? base else { throw PythonError.runtime("the tensor type is not initialised") }
        return try makeObject(of: type, holding: TensorBox(tensor))
    }

    /// The engine tensor of a Python tensor object, in host memory: everything that reads or computes on the
    /// values goes through here, so a tensor on a GPU is a clear error, never read (or copied) on the host.
    static func unwrap(_ o: PyObjectRef, _ what: String = "argument") throws -> Tensor {
        let tensor = try box(o, what).tensor
        guard tensor.device == .cpu else {
            throw PythonError(
                kind: .notSupported,
                message: "\(what) is on \(tensor.device): this needs it on the host (graphs on the CUDA backend take "
                    + "device tensors as inputs); copy it with .cpu(), it is never copied behind your back")
        }
        return tensor
    }

    /// The engine tensor on whatever device it is: for metadata and DLPack, which never touch the values.
    static func unwrapOnAnyDevice(_ o: PyObjectRef, _ what: String = "argument") throws -> Tensor {
        try box(o, what).tensor
    }

    static func box(_ o: PyObjectRef, _ what: String = "argument") throws -> TensorBox {
        guard isInstance(o, of: base) else { throw PythonError.type("\(what) must be an aidge.Tensor, got \(typeName(o))") }
        guard let box = payload(o, as: TensorBox.self) else {
            throw PythonError.value("\(what) is an empty aidge.Tensor (made without data)")
        }
        return box
    }

    static func install(in module: PyObjectRef) throws {
        let methods = methodTable([
            keywordMethod("__dlpack__", dlpackMethod, "__dlpack__(*, stream=None, max_version=None, dl_device=None, copy=None)\n--\n\nA DLPack capsule sharing this tensor's memory."),
            plainMethod("__dlpack_device__", dlpackDeviceMethod, "__dlpack_device__()\n--\n\n(device type, device id): (1, 0) for the CPU."),
            plainMethod("to_dlpack", toDLPackMethod, "to_dlpack()\n--\n\nA legacy 'dltensor' capsule (for TensorFlow and JAX)."),
            plainMethod("contiguous", contiguousMethod, "contiguous()\n--\n\nThis tensor if it is C-contiguous, else a contiguous copy."),
            oneArgumentMethod("to_device", toDeviceMethod, "to_device(device)\n--\n\nA contiguous copy on `device` ('cpu', 'cuda', 'cuda:0'), or this tensor when it is already there."),
            plainMethod("clone", cloneMethod, "clone()\n--\n\nA contiguous copy with its own memory."),
            oneArgumentMethod("astype", astypeMethod, "astype(dtype)\n--\n\nA copy converted to `dtype` (NumPy's astype rounding; float to int saturates, NaN gives 0)."),
            oneArgumentMethod("reshape", reshapeMethod, "reshape(dims)\n--\n\nA view with new dimensions (same memory); contiguous tensors only."),
            plainMethod("_strings", stringsMethod, "_strings()\n--\n\nThe strings of a string tensor, as a flat list in row-major order."),
            plainMethod("_bits", bitsMethod, "_bits()\n--\n\nThe same memory seen as unsigned integers of the element's width (bfloat16 -> uint16)."),
            oneArgumentMethod("_assign", assignMethod, "_assign(tensor)\n--\n\nMakes this object hold `tensor` (Aidge's in-place set_datatype and friends)."),
        ])
        let getters = getterTable([
            ("shape", shapeGetter, "Dimensions, as a tuple."),
            ("dtype_name", dtypeGetter, "Element type name ('float32', 'int64', 'bfloat16', ...)."),
            ("device_name", deviceNameGetter, "Where the elements are: 'cpu' or 'cuda:N'."),
            ("strides", stridesGetter, "Strides in elements, as a tuple."),
            ("readonly", readonlyGetter, "Whether the memory may not be written (a read-only NumPy array's, for instance)."),
            ("data_ptr", dataPointerGetter, "Address of the first element."),
            ("grad", gradientGetter, "The gradient (an aidge.Tensor sharing its memory), or None."),
            ("is_contiguous", contiguousGetter, "Whether the elements are laid out in C order without gaps."),
        ])
        let repr: reprfunc = representation
        base = try makeType(
            "TensorBase", in: module, subclassable: true,
            slots: [
                (Py_tp_dealloc, unsafeBitCast(deallocate, to: UnsafeMutableRawPointer.self)),
                (Py_tp_methods, UnsafeMutableRawPointer(methods)),
                (Py_tp_getset, UnsafeMutableRawPointer(getters)),
                (Py_bf_getbuffer, unsafeBitCast(getBuffer, to: UnsafeMutableRawPointer.self)),
                (Py_bf_releasebuffer, unsafeBitCast(releaseBuffer, to: UnsafeMutableRawPointer.self)),
                (Py_tp_repr, unsafeBitCast(repr, to: UnsafeMutableRawPointer.self)),
                (Py_tp_doc, UnsafeMutableRawPointer(mutating: permanentCString("An n-dimensional array viewed by the engine (the base of aidge.Tensor)."))),
            ])
    }
}

// MARK: - Buffer protocol (export)

/// PEP 3118 format strings, one per dtype (bfloat16 and the low-precision types have none).
nonisolated(unsafe) private let formats: [DType: UnsafePointer<CChar>] = {
    var table: [DType: UnsafePointer<CChar>] = [:]
    let codes: [(DType, String)] = [
        (.float32, "f"), (.float64, "d"), (.float16, "e"), (.int8, "b"), (.uint8, "B"), (.int16, "h"),
        (.uint16, "H"), (.int32, "i"), (.uint32, "I"), (.int64, "q"), (.uint64, "Q"), (.bool, "?"),
    ]
    for (dtype, code) in codes { table[dtype] = permanentCString(code) }
    return table
}()

private let getBuffer: @convention(c) (PyObjectRef?, UnsafeMutablePointer<Py_buffer>?, Int32) -> Int32 = { o, view, flags in
    guard let o, let view else { return -1 }
    let ok = pyCall { () -> PyObjectRef? in
        let tensor = try TensorType.unwrap(o, "tensor")
        guard tensor.device == .cpu else { throw PythonError.buffer("a tensor on \(tensor.device) has no CPU buffer") }
        if flags & PyBUF_WRITABLE != 0 && tensor.storage.isReadOnly {
            throw PythonError.buffer("this tensor is read-only (it views read-only memory)")
        }
        let wantsStrides = flags & PyBUF_STRIDES == PyBUF_STRIDES
        let wantsShape = flags & PyBUF_ND == PyBUF_ND
        if !wantsStrides && !tensor.isContiguous {
            throw PythonError.buffer("this tensor is not contiguous: ask for a strided buffer or call contiguous()")
        }
        // A consumer that asks for C, Fortran or any contiguous memory reads it as one block, whatever strides it
        // is given: a strided view would hand it the wrong elements, so refuse as NumPy does.
        let isC = tensor.isContiguous
        let isFortran = isFortranContiguous(tensor)
        if (flags & PyBUF_C_CONTIGUOUS == PyBUF_C_CONTIGUOUS && !isC)
            || (flags & PyBUF_F_CONTIGUOUS == PyBUF_F_CONTIGUOUS && !isFortran)
            || (flags & PyBUF_ANY_CONTIGUOUS == PyBUF_ANY_CONTIGUOUS && !isC && !isFortran)
        {
            throw PythonError.buffer("this tensor is not contiguous in the order asked for: call contiguous() first")
        }
        var format: UnsafePointer<CChar>? = nil
        if flags & PyBUF_FORMAT != 0 {
            guard let f = formats[tensor.dtype] else {
                throw PythonError.buffer(
                    "\(tensor.dtype) has no buffer-protocol format: use Tensor.numpy() (an ml_dtypes view)")
            }
            format = f
        }
        let rank = tensor.rank
        let arrays = UnsafeMutablePointer<Py_ssize_t>.allocate(capacity: max(2 * rank, 1))
        let item = tensor.dtype.byteSize
        for d in 0..<rank {
            arrays[d] = tensor.shape[d]
            arrays[rank + d] = tensor.strides[d] * item
        }
        view.pointee.buf = tensor.rawPointer
        view.pointee.obj = Py_NewRef(o)
        view.pointee.len = tensor.count * item
        view.pointee.readonly = tensor.storage.isReadOnly ? 1 : 0
        view.pointee.itemsize = item
        view.pointee.format = UnsafeMutablePointer(mutating: format)
        view.pointee.ndim = Int32(rank)
        view.pointee.shape = wantsShape ? arrays : nil
        view.pointee.strides = wantsStrides ? arrays + rank : nil
        view.pointee.suboffsets = nil
        view.pointee.internal = UnsafeMutableRawPointer(arrays)
        return aidge_none_borrowed()
    }
    return ok == nil ? -1 : 0
}

/// Whether the elements are laid out in Fortran (column-major) order without gaps; dimensions of size 1 may have
/// any stride (as for `Tensor.isContiguous`).
private func isFortranContiguous(_ tensor: Tensor) -> Bool {
    var expected = 1
    for (n, s) in zip(tensor.shape, tensor.strides) where n != 1 {
        if s != expected { return false }
        expected *= n
    }
    return true
}

private let releaseBuffer: @convention(c) (PyObjectRef?, UnsafeMutablePointer<Py_buffer>?) -> Void = { _, view in
    guard let view, let arrays = view.pointee.internal else { return }
    arrays.assumingMemoryBound(to: Py_ssize_t.self).deallocate()
    view.pointee.internal = nil
}

// MARK: - Getters and methods

private let shapeGetter: getter = { o, _ in
    pyCall { try makeTuple(try TensorType.unwrapOnAnyDevice(o!).shape.map(makeInt)) }
}
private let stridesGetter: getter = { o, _ in
    pyCall { try makeTuple(try TensorType.unwrapOnAnyDevice(o!).strides.map(makeInt)) }
}
private let dtypeGetter: getter = { o, _ in
    pyCall { try makeString(try TensorType.unwrapOnAnyDevice(o!).dtype.rawValue) }
}
private let readonlyGetter: getter = { o, _ in
    pyCall { makeBool(try TensorType.unwrapOnAnyDevice(o!).storage.isReadOnly) }
}
private let dataPointerGetter: getter = { o, _ in
    pyCall { try makeInt(Int(bitPattern: try TensorType.unwrapOnAnyDevice(o!).rawPointer)) }
}
private let gradientGetter: getter = { o, _ in
    pyCall { try TensorType.unwrap(o!).gradient?.tensor.map(TensorType.wrap) ?? aidge_none() }
}
private let contiguousGetter: getter = { o, _ in
    pyCall { makeBool(try TensorType.unwrapOnAnyDevice(o!).isContiguous) }
}

private let representation: reprfunc = { o in
    pyCall {
        guard let box = payload(o!, as: TensorBox.self) else { return try makeString("Tensor(<empty>)") }
        let t = box.tensor
        guard t.device == .cpu else {
            return try makeString("Tensor(\(t.dtype.rawValue), shape \(t.shape), on \(t.device))")
        }
        return try makeString("\(t)")
    }
}

private let contiguousMethod: PyCFunction = { o, _ in
    pyCall {
        let tensor = try TensorType.unwrap(o!)
        return tensor.isContiguous ? Py_NewRef(o!) : try TensorType.wrap(withoutGIL { tensor.copy() })
    }
}

private let deviceNameGetter: getter = { o, _ in
    pyCall { try makeString(try TensorType.unwrapOnAnyDevice(o!).device.description) }
}

private let toDeviceMethod: PyCFunction = { o, arg in
    pyCall {
        let tensor = try TensorType.unwrapOnAnyDevice(o!)
        let device = try Backends.device(try stringValue(arg!, "device"))
        if tensor.device == device { return Py_NewRef(o!) }
        return try TensorType.wrap(try withoutGIL { try tensor.copy(to: device) })
    }
}

private let cloneMethod: PyCFunction = { o, _ in
    pyCall {
        let tensor = try TensorType.unwrap(o!)
        return try TensorType.wrap(withoutGIL { tensor.copy() })
    }
}

private let astypeMethod: PyCFunction = { o, arg in
    pyCall {
        let tensor = try TensorType.unwrap(o!)
        let dtype = try dtypeValue(arg!)
        return try TensorType.wrap(withoutGIL { tensor.cast(to: dtype) })
    }
}

private let reshapeMethod: PyCFunction = { o, arg in
    pyCall {
        var tensor = try TensorType.unwrapOnAnyDevice(o!)
        if !tensor.isContiguous { tensor = try TensorType.unwrap(o!) }  // a copy, read on the host
        let dims = try intList(arg!, "dims")
        return try TensorType.wrap(try tensor.reshaped(dims))
    }
}

private let stringsMethod: PyCFunction = { o, _ in
    pyCall { try makeList(try TensorType.unwrap(o!).strings().map(makeString)) }
}

private let bitsMethod: PyCFunction = { o, _ in
    pyCall {
        let t = try TensorType.unwrap(o!)
        let bits: DType
        switch t.dtype.byteSize {
        case 1: bits = .uint8
        case 2: bits = .uint16
        case 4: bits = .uint32
        default: bits = .uint64
        }
        return try TensorType.wrap(
            try Tensor(storage: t.storage, dtype: bits, shape: t.shape, strides: t.strides, offset: t.offset))
    }
}

private let assignMethod: PyCFunction = { o, arg in
    pyCall {
        guard isInstance(o!, of: TensorType.base) else { throw PythonError.type("not a tensor") }
        let value = try TensorType.unwrap(arg!, "tensor")
        if let box = payload(o!, as: TensorBox.self) {
            box.tensor = value
        } else {
            let object = UnsafeMutableRawPointer(o!).assumingMemoryBound(to: AidgeObject.self)
            object.pointee.swift = Unmanaged.passRetained(TensorBox(value) as AnyObject).toOpaque()
        }
        return aidge_none()
    }
}

/// A dtype given by name ('float32', ...) or by an object whose `name` attribute is one.
func dtypeValue(_ o: PyObjectRef) throws -> DType {
    var name: String
    if PyUnicode_Check_(o) != 0 {
        name = try stringValue(o, "dtype")
    } else if let n = attribute(o, "name") {
        defer { Py_DecRef(n) }
        name = try stringValue(n, "dtype.name")
    } else {
        throw PythonError.type("dtype must be a name such as 'float32', got \(typeName(o))")
    }
    if name == "boolean" { name = "bool" }
    guard let dtype = DType(rawValue: name) else {
        throw PythonError(kind: .unsupportedType, message: "unsupported dtype '\(name)' (supported: \(DType.allCases.map(\.rawValue).joined(separator: ", ")))")
    }
    return dtype
}
