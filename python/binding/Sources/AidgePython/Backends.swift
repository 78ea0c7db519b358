@preconcurrency import CPython
import Aidge

/// The backends Python can ask for by name: the CPU one, registered at import, and the CUDA one, loaded on
/// first request (a machine without a GPU gets the error that says what is missing).
enum Backends {
    static func load(_ name: String) throws {
        switch name {
        case CPUBackend.name: return
        case CUDABackend.name: try CUDABackend.register()
        default: throw AidgeError.invalidArgument("unknown backend '\(name)' (cpu and cuda exist)")
        }
    }

    /// The device named like torch does: "cpu", "cuda" (device 0) or "cuda:N".
    static func device(_ name: String) throws -> Device {
        if name == "cpu" { return .cpu }
        if name == "cuda" || name.hasPrefix("cuda:") {
            let ordinal = name == "cuda" ? 0 : Int(name.dropFirst(5))
            guard let ordinal, ordinal >= 0 else { throw AidgeError.invalidArgument("'\(name)' is not a device") }
            guard ordinal == 0 else { throw AidgeError.unsupported("only CUDA device 0 is supported, got \(name)") }
            try CUDABackend.register()
            return .cuda(ordinal)
        }
        throw AidgeError.invalidArgument("'\(name)' is not a device ('cpu', 'cuda' or 'cuda:N')")
    }
}

let cudaAvailableFunction: PyCFunction = { _, _ in
    pyCall { makeBool(withoutGIL { CUDABackend.isAvailable }) }
}

let cudaDeviceNameFunction: PyCFunction = { _, _ in
    pyCall {
        try Backends.load(CUDABackend.name)
        let device = try CUDABackend.device()
        return try makeString(device.name + (device.isEmulated ? " (CPU emulation)" : ""))
    }
}

let cudaSynchronizeFunction: PyCFunction = { _, _ in
    pyCall {
        try Backends.load(CUDABackend.name)
        try withoutGIL { try CUDABackend.device().synchronize() }
        return aidge_none()
    }
}

let cudaLoadErrorFunction: PyCFunction = { _, _ in
    pyCall {
        do {
            try CUDABackend.register()
            return aidge_none()
        } catch let error as AidgeError {
            return try makeString(error.message)
        }
    }
}

/// `cuda_set_options(tf32_matmul=None, tf32_convolution=None, cudnn=None)`: sets those given; returns the
/// options after the change as a dict.
let cudaSetOptionsFunction: KeywordFunction = { _, args, kwargs in
    pyCall {
        let a = try Arguments(
            args, kwargs, names: ["tf32_matmul", "tf32_convolution", "cudnn"], function: "cuda_set_options")
        func flag(_ name: String) throws -> Bool? {
            guard let o = a[name], aidge_is_none(o) == 0 else { return nil }
            return try boolValue(o)
        }
        if let on = try flag("tf32_matmul") { CUDABackend.allowsTF32 = on }
        if let on = try flag("tf32_convolution") { CUDABackend.allowsTF32Convolutions = on }
        if let on = try flag("cudnn") { CUDABackend.usesCuDNN = on }
        guard let dict = PyDict_New() else { throw PythonError.alreadySet }
        for (key, on) in [
            ("tf32_matmul", CUDABackend.allowsTF32), ("tf32_convolution", CUDABackend.allowsTF32Convolutions),
            ("cudnn", CUDABackend.usesCuDNN),
        ] {
            let v = makeBool(on)
            PyDict_SetItemString(dict, key, v)
            Py_DecRef(v)
        }
        return dict
    }
}

let cudaSetStreamFunction: PyCFunction = { _, arg in
    pyCall {
        let stream = try intValue(arg!, "stream")
        guard stream >= 0 else { throw PythonError.value("a CUDA stream handle is an address, got \(stream)") }
        return try makeInt(Int(CUDAStream.setDefault(UInt(stream))))
    }
}

let cudaCurrentStreamFunction: PyCFunction = { _, _ in
    pyCall { try makeInt(Int(CUDAStream.current)) }
}
