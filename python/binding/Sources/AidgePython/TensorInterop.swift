@preconcurrency import CPython
import Aidge

// The DLPack methods of `TensorBase` and the module functions that make tensors from Python memory.

let dlpackMethod: KeywordFunction = { o, args, kwargs in
    pyCall {
        let a = try Arguments(args, kwargs, names: ["stream", "max_version", "dl_device", "copy"], function: "__dlpack__")
        let tensor = try TensorType.unwrapOnAnyDevice(o!)
        if let stream = a["stream"], tensor.device == .cpu {
            // CPU memory has no stream; -1 and None both mean "no synchronisation". A GPU tensor's memory is
            // never written by the engine, so any stream may read it.
            let s = try intValue(stream, "stream")
            guard s == -1 || s == 0 else { throw PythonError.buffer("stream \(s) given for a CPU tensor") }
        }
        var versioned = false
        if let version = a["max_version"] {
            let v = try intList(version, "max_version")
            versioned = (v.first ?? 0) >= 1
        }
        if let device = a["dl_device"] {
            let d = try intList(device, "dl_device")
            let own = DLPack.device(of: tensor)
            let accepted = tensor.device == .cpu
                ? d.count == 2 && (d[0] == DLPack.cpu || d[0] == DLPack.cudaHost)
                : d == [Int(own.device_type), Int(own.device_id)]
            guard accepted else {
                throw PythonError.buffer("this tensor lives on \(tensor.device) and cannot be exported to device \(d)")
            }
        }
        let copy = try a["copy"].map(boolValue)
        return try DLPack.capsule(for: tensor, versioned: versioned, copy: copy)
    }
}

let dlpackDeviceMethod: PyCFunction = { o, _ in
    pyCall {
        let device = DLPack.device(of: try TensorType.unwrapOnAnyDevice(o!))
        return try makeTuple([try makeInt(Int(device.device_type)), try makeInt(Int(device.device_id))])
    }
}

let toDLPackMethod: PyCFunction = { o, _ in
    pyCall { try DLPack.capsule(for: try TensorType.unwrapOnAnyDevice(o!), versioned: false, copy: nil) }
}

/// `from_buffer(obj, copy=False, dtype=None)`.
let fromBufferFunction: KeywordFunction = { _, args, kwargs in
    pyCall {
        let a = try Arguments(args, kwargs, names: ["obj", "copy", "dtype"], required: 1, function: "from_buffer")
        guard let object = a["obj"] else { throw PythonError.type("from_buffer() needs an object with the buffer protocol") }
        let dtype = try a["dtype"].map(dtypeValue)
        let shared = try BufferImport.share(object, as: dtype)
        if try a["copy"].map(boolValue) ?? false {
            return try TensorType.wrap(withoutGIL { shared.copy() })
        }
        return try TensorType.wrap(shared)
    }
}

/// `from_data_ptr(data_ptr, dims, dtype, strides=None, owner=None, readonly=False)`.
let fromDataPointerFunction: KeywordFunction = { _, args, kwargs in
    pyCall {
        let a = try Arguments(
            args, kwargs, names: ["data_ptr", "dims", "dtype", "strides", "owner", "readonly"], required: 3,
            function: "from_data_ptr")
        let tensor = try BufferImport.wrap(
            address: try intValue(try a.required("data_ptr"), "data_ptr"), shape: try intList(try a.required("dims"), "dims"),
            dtype: try dtypeValue(try a.required("dtype")), strides: try a["strides"].map { try intList($0, "strides") },
            owner: a["owner"], readOnly: try a["readonly"].map(boolValue) ?? false)
        return try TensorType.wrap(tensor)
    }
}

/// `from_dlpack(obj_or_capsule)`.
let fromDLPackFunction: PyCFunction = { _, object in
    pyCall { try TensorType.wrap(try DLPack.tensor(from: object!)) }
}

/// `set_tensor_class(cls)`: the class of the tensors the engine returns (`aidge.Tensor`).
let setTensorClassFunction: PyCFunction = { _, cls in
    pyCall {
        guard let cls, PyType_Check_(cls) != 0,
            PyType_IsSubtype(OpaquePointer(cls), TensorType.base) != 0
        else { throw PythonError.type("set_tensor_class() needs a subclass of TensorBase") }
        if let old = TensorType.instanceClass { Py_DecRef(UnsafeMutablePointer<PyObject>(old)) }
        TensorType.instanceClass = OpaquePointer(Py_NewRef(cls))
        return aidge_none()
    }
}

/// `zeros(dims, dtype)`: a new zero-filled tensor.
let stringTensorFunction: KeywordFunction = { _, args, kwargs in
    pyCall {
        let a = try Arguments(args, kwargs, names: ["strings", "dims"], required: 2, function: "string_tensor")
        let items = try sequenceItems(try a.required("strings"), "strings")
        defer { items.forEach { Py_DecRef($0) } }
        let strings = try items.enumerated().map { k, item in try stringValue(item, "strings[\(k)]") }
        let shape = try intList(try a.required("dims"), "dims")
        guard shape.count <= 64 else { throw PythonError.value("dims must be at most 64 sizes, got \(shape.count)") }
        return try TensorType.wrap(try Tensor(strings: strings, shape: shape))
    }
}

let zerosFunction: KeywordFunction = { _, args, kwargs in
    pyCall {
        let a = try Arguments(args, kwargs, names: ["dims", "dtype"], required: 1, function: "zeros")
        let shape = try intList(try a.required("dims"), "dims")
        guard shape.allSatisfy({ $0 >= 0 }), shape.count <= 64 else {
            throw PythonError.value("dims must be at most 64 non-negative sizes, got \(shape)")
        }
        return try TensorType.wrap(Tensor(zeros: shape, dtype: try a["dtype"].map(dtypeValue) ?? .float32))
    }
}
