@preconcurrency import CPython
import Aidge

/// DLPack both ways: capsules that share a tensor's memory with NumPy, PyTorch, JAX or TensorFlow, and tensors
/// over the memory of their capsules.
enum DLPack {
    /// Capsule names: C strings that live as long as the process, as the protocol requires.
    nonisolated(unsafe) static let legacyName = permanentCString("dltensor")
    nonisolated(unsafe) static let versionedName = permanentCString("dltensor_versioned")
    nonisolated(unsafe) static let usedLegacyName = permanentCString("used_dltensor")
    nonisolated(unsafe) static let usedVersionedName = permanentCString("used_dltensor_versioned")

    static let readOnlyFlag: UInt64 = 1
    static let copiedFlag: UInt64 = 2
    static let cpu: Int32 = 1
    static let cuda: Int32 = 2
    static let cudaHost: Int32 = 3

    /// The DLPack device of a tensor's memory.
    static func device(of tensor: Tensor) -> DLDevice {
        switch tensor.device {
        case .cpu: return DLDevice(device_type: cpu, device_id: 0)
        case .cuda(let id): return DLDevice(device_type: cuda, device_id: Int32(id))
        }
    }

    // MARK: Export

    /// What a capsule's `manager_ctx` keeps alive: the tensor and the shape and stride arrays it points to.
    final class Export {
        let tensor: Tensor
        let shape: UnsafeMutablePointer<Int64>
        let strides: UnsafeMutablePointer<Int64>
        var legacy: UnsafeMutablePointer<DLManagedTensor>?
        var versioned: UnsafeMutablePointer<DLManagedTensorVersioned>?

        init(_ tensor: Tensor) {
            self.tensor = tensor
            shape = .allocate(capacity: max(tensor.rank, 1))
            strides = .allocate(capacity: max(tensor.rank, 1))
            for d in 0..<tensor.rank {
                shape[d] = Int64(tensor.shape[d])
                strides[d] = Int64(tensor.strides[d])
            }
        }

        var dlTensor: DLTensor {
            DLTensor(
                data: tensor.rawPointer, device: DLPack.device(of: tensor),
                ndim: Int32(tensor.rank), dtype: DLPack.dataType(tensor.dtype), shape: shape, strides: strides,
                byte_offset: 0)
        }

        deinit {
            shape.deallocate()
            strides.deallocate()
            legacy?.deallocate()
            versioned?.deallocate()
        }
    }

    /// A capsule for `tensor`: versioned (with READ_ONLY / IS_COPIED flags) when the consumer accepts DLPack 1.x,
    /// legacy otherwise. A contiguous copy is exported, unless `copy` is false, for a read-only tensor going to a
    /// legacy consumer (which cannot be told) and for negative strides (PyTorch aborts the process on them).
    static func capsule(for tensor: Tensor, versioned: Bool, copy: Bool?) throws -> PyObjectRef {
        var t = tensor
        var copied = false
        let readOnlyForLegacy = !versioned && tensor.storage.isReadOnly
        let negativeStrides = tensor.strides.contains { $0 < 0 }
        if copy == true || readOnlyForLegacy || negativeStrides {
            guard copy != false else {
                throw PythonError.buffer(
                    readOnlyForLegacy
                        ? "a read-only tensor cannot be shared with a legacy DLPack consumer without a copy"
                        : "a tensor with negative strides cannot be shared through DLPack without a copy")
            }
            t = try tensor.copy(to: tensor.device)  // on a GPU, a copy there (the backend must be loaded)
            copied = true
        }
        guard !t.dtype.isLowPrecision else {
            throw PythonError(
                kind: .unsupportedType,
                message: "\(t.dtype) tensors have no DLPack type: use Tensor.numpy() (an ml_dtypes view)")
        }
        let export = Export(t)
        let context = Unmanaged.passRetained(export).toOpaque()
        if versioned {
            let managed = UnsafeMutablePointer<DLManagedTensorVersioned>.allocate(capacity: 1)
            var flags: UInt64 = copied ? copiedFlag : 0
            if t.storage.isReadOnly { flags |= readOnlyFlag }
            managed.pointee = DLManagedTensorVersioned(
                version: DLPackVersion(major: 1, minor: 0), manager_ctx: context, deleter: versionedDeleter,
                flags: flags, dl_tensor: export.dlTensor)
            export.versioned = managed
            guard let capsule = PyCapsule_New(managed, versionedName, versionedCapsuleDestructor) else {
                Unmanaged<Export>.fromOpaque(context).release()
                throw PythonError.alreadySet
            }
            return capsule
        }
        let managed = UnsafeMutablePointer<DLManagedTensor>.allocate(capacity: 1)
        managed.pointee = DLManagedTensor(dl_tensor: export.dlTensor, manager_ctx: context, deleter: legacyDeleter)
        export.legacy = managed
        guard let capsule = PyCapsule_New(managed, legacyName, legacyCapsuleDestructor) else {
            Unmanaged<Export>.fromOpaque(context).release()
            throw PythonError.alreadySet
        }
        return capsule
    }

    /// Deleters: safe without the GIL (they only release Swift memory).
    static let legacyDeleter: @convention(c) (UnsafeMutablePointer<DLManagedTensor>?) -> Void = { managed in
        guard let context = managed?.pointee.manager_ctx else { return }
        Unmanaged<Export>.fromOpaque(context).release()
    }
    static let versionedDeleter: @convention(c) (UnsafeMutablePointer<DLManagedTensorVersioned>?) -> Void = { managed in
        guard let context = managed?.pointee.manager_ctx else { return }
        Unmanaged<Export>.fromOpaque(context).release()
    }

    /// A capsule nobody consumed still owns its tensor.
    static let legacyCapsuleDestructor: @convention(c) (PyObjectRef?) -> Void = { capsule in
        guard let capsule, PyCapsule_IsValid(capsule, DLPack.legacyName) != 0,
            let raw = PyCapsule_GetPointer(capsule, DLPack.legacyName)
        else { return }
        let managed = raw.assumingMemoryBound(to: DLManagedTensor.self)
        managed.pointee.deleter?(managed)
    }
    static let versionedCapsuleDestructor: @convention(c) (PyObjectRef?) -> Void = { capsule in
        guard let capsule, PyCapsule_IsValid(capsule, DLPack.versionedName) != 0,
            let raw = PyCapsule_GetPointer(capsule, DLPack.versionedName)
        else { return }
        let managed = raw.assumingMemoryBound(to: DLManagedTensorVersioned.self)
        managed.pointee.deleter?(managed)
    }

    static func dataType(_ dtype: DType) -> DLDataType {
        let bits = UInt8(dtype.byteSize * 8)
        let code: UInt8
        switch dtype {
        case .float16, .float32, .float64: code = 2
        case .bfloat16: code = 4
        case .bool: code = 6
        case .int8, .int16, .int32, .int64: code = 0
        case .uint8, .uint16, .uint32, .uint64: code = 1
        default: code = 1  // low-precision types are refused before export
        }
        return DLDataType(code: code, bits: bits, lanes: 1)
    }

    // MARK: Import

    /// A tensor over the memory of `object`: a DLPack capsule, or an object with `__dlpack__`. The capsule is
    /// marked consumed; its deleter runs when the tensor's storage dies.
    static func tensor(from object: PyObjectRef) throws -> Tensor {
        if PyCapsule_CheckExact_(object) != 0 { return try tensor(fromCapsule: object) }
        guard let method = attribute(object, "__dlpack__") else {
            throw PythonError.type("\(typeName(object)) supports neither DLPack nor is a DLPack capsule")
        }
        defer { Py_DecRef(method) }
        // Ask for DLPack 1.x; producers that predate `max_version` get a plain call.
        let capsule: PyObjectRef
        let empty = try makeTuple([])
        defer { Py_DecRef(empty) }
        guard let kwargs = PyDict_New() else { throw PythonError.alreadySet }
        defer { Py_DecRef(kwargs) }
        let version = try makeTuple([try makeInt(1), try makeInt(0)])
        PyDict_SetItemString(kwargs, "max_version", version)
        Py_DecRef(version)
        if let c = PyObject_Call(method, empty, kwargs) {
            capsule = c
        } else if PyErr_ExceptionMatches(aidge_exc_type_error()) != 0 {
            PyErr_Clear()
            guard let c = PyObject_CallNoArgs(method) else { throw PythonError.alreadySet }
            capsule = c
        } else {
            throw PythonError.alreadySet
        }
        defer { Py_DecRef(capsule) }
        return try tensor(fromCapsule: capsule)
    }

    private static func tensor(fromCapsule capsule: PyObjectRef) throws -> Tensor {
        if PyCapsule_IsValid(capsule, versionedName) != 0 {
            guard let raw = PyCapsule_GetPointer(capsule, versionedName) else { throw PythonError.alreadySet }
            let managed = raw.assumingMemoryBound(to: DLManagedTensorVersioned.self)
            guard managed.pointee.version.major == 1 else {
                throw PythonError.buffer("DLPack version \(managed.pointee.version.major) is not supported (1.x is)")
            }
            let address = Int(bitPattern: raw)
            let tensor = try make(
                managed.pointee.dl_tensor, readOnly: managed.pointee.flags & readOnlyFlag != 0,
                release: {
                    let m = UnsafeMutablePointer<DLManagedTensorVersioned>(bitPattern: address)
                    m?.pointee.deleter?(m)
                })
            PyCapsule_SetName(capsule, usedVersionedName)
            return tensor
        }
        if PyCapsule_IsValid(capsule, legacyName) != 0 {
            guard let raw = PyCapsule_GetPointer(capsule, legacyName) else { throw PythonError.alreadySet }
            let managed = raw.assumingMemoryBound(to: DLManagedTensor.self)
            let address = Int(bitPattern: raw)
            let tensor = try make(
                managed.pointee.dl_tensor, readOnly: false,
                release: {
                    let m = UnsafeMutablePointer<DLManagedTensor>(bitPattern: address)
                    m?.pointee.deleter?(m)
                })
            PyCapsule_SetName(capsule, usedLegacyName)
            return tensor
        }
        PyErr_Clear()
        let name = PyCapsule_GetName(capsule).map { String(cString: $0) } ?? "<unnamed>"
        if name.hasPrefix("used_") {
            throw PythonError.value("this DLPack capsule was already consumed (a capsule can be imported once)")
        }
        throw PythonError.value("not a DLPack capsule (its name is '\(name)')")
    }

    /// A tensor over a DLTensor; `release` (the producer's deleter) runs when the storage dies. Nothing is taken
    /// over when this throws, so the capsule keeps its memory.
    private static func make(_ t: DLTensor, readOnly: Bool, release: @escaping @Sendable () -> Void) throws -> Tensor {
        let device: Device
        switch t.device.device_type {
        case cpu, cudaHost: device = .cpu
        case cuda: device = .cuda(Int(t.device.device_id))
        default:
            throw PythonError.buffer(
                "DLPack device type \(t.device.device_type) is not supported (CPU memory, and CUDA memory kept on its GPU)")
        }
        guard t.dtype.lanes == 1 else { throw PythonError.type("vector DLPack types (lanes \(t.dtype.lanes)) are not supported") }
        let dtype: DType?
        switch (t.dtype.code, t.dtype.bits) {
        case (0, 8): dtype = .int8
        case (0, 16): dtype = .int16
        case (0, 32): dtype = .int32
        case (0, 64): dtype = .int64
        case (1, 8): dtype = .uint8
        case (1, 16): dtype = .uint16
        case (1, 32): dtype = .uint32
        case (1, 64): dtype = .uint64
        case (2, 16): dtype = .float16
        case (2, 32): dtype = .float32
        case (2, 64): dtype = .float64
        case (4, 16): dtype = .bfloat16
        case (6, 8), (1, 1): dtype = .bool
        default: dtype = nil
        }
        guard let dtype else {
            throw PythonError(kind: .unsupportedType, message: "unsupported DLPack element type (code \(t.dtype.code), \(t.dtype.bits) bits)")
        }
        let rank = Int(t.ndim)
        guard rank >= 0, rank <= 64 else { throw PythonError.value("\(rank) dimensions: at most 64 are supported") }
        let shape = (0..<rank).map { Int(t.shape[$0]) }
        let strides = t.strides.map { s in (0..<rank).map { Int(s[$0]) } } ?? ShapeUtil.contiguousStrides(shape)
        // Negative strides reach below the first element.
        let (low, high) = ShapeUtil.extent(shape, strides)
        let count = ShapeUtil.count(shape)
        guard let data = t.data else {
            guard count == 0 else { throw PythonError.value("the DLPack tensor has no data") }
            // Nothing to share (PyTorch gives empty tensors no memory): the capsule is consumed all the same, so
            // its deleter runs now, or the producer would never be freed.
            guard device == .cpu else { throw PythonError.value("an empty tensor on \(device) is not supported") }
            let empty = Tensor(zeros: shape, dtype: dtype)
            release()
            return empty
        }
        let first = data + Int(t.byte_offset)
        let storage = Storage(
            borrowing: first + low * dtype.byteSize, byteCount: count == 0 ? 0 : (high - low + 1) * dtype.byteSize,
            device: device, readOnly: readOnly, release: { _ in release() })
        return try Tensor(storage: storage, dtype: dtype, shape: shape, strides: strides, offset: -low)
    }
}
