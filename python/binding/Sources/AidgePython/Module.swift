@preconcurrency import CPython
import Aidge

/// The module definition (kept for the life of the process, as CPython requires).
nonisolated(unsafe) private var moduleDefinition = PyModuleDef()

/// Entry point of `aidge._aidge`: registers the CPU kernels, creates the types, exceptions and functions.
@_cdecl("PyInit__aidge")
public func initializeModule() -> UnsafeMutablePointer<PyObject>? {
    moduleDefinition = PyModuleDef(
        m_base: aidge_moduledef_head(), m_name: permanentCString("aidge._aidge"),
        m_doc: permanentCString("The Aidge engine (Swift), as a CPython extension."), m_size: -1,
        m_methods: methodTable([
            keywordMethod("from_buffer", fromBufferFunction, "from_buffer(obj, copy=False, dtype=None)\n--\n\nA tensor over an object's buffer (NumPy array, memoryview): shared, or copied with copy=True."),
            keywordMethod("from_data_ptr", fromDataPointerFunction, "from_data_ptr(data_ptr, dims, dtype, strides=None, owner=None, readonly=False)\n--\n\nA tensor over external memory; `owner` is kept alive as long as the tensor."),
            oneArgumentMethod("from_dlpack", fromDLPackFunction, "from_dlpack(obj)\n--\n\nA tensor sharing the memory of a DLPack producer or capsule."),
            oneArgumentMethod("set_tensor_class", setTensorClassFunction, "set_tensor_class(cls)\n--\n\nThe class of the tensors the engine returns."),
            keywordMethod("string_tensor", stringTensorFunction, "string_tensor(strings, dims)\n--\n\nA new string tensor holding `strings` (a flat list) in row-major order."),
            keywordMethod("zeros", zerosFunction, "zeros(dims, dtype='float32')\n--\n\nA new zero-filled tensor."),
            keywordMethod("load_onnx", loadONNXFunction, "load_onnx(path=None, data=None, base_dir=None)\n--\n\nImports an ONNX model from a file or bytes."),
            keywordMethod("export_onnx", exportONNXFunction, "export_onnx(graph, path=None, opset=None, external_data=False, size_threshold=1024, input_shapes=None, output_shapes=None)\n--\n\nWrites a graph as an ONNX model at path, or returns the serialized model."),
            oneArgumentMethod("set_num_threads", setThreadsFunction, "set_num_threads(n)\n--\n\nThreads the kernels use (0: every core)."),
            plainMethod("get_num_threads", getThreadsFunction, "get_num_threads()\n--\n\nThreads the kernels use."),
            oneArgumentMethod(
                "share_openmp_threads", shareOpenMPFunction,
                "share_openmp_threads(on)\n--\n\nRuns parallel work on the process's OpenMP threads (PyTorch's) instead "
                    + "of the engine's own; returns whether it does (the process must have an OpenMP runtime loaded)."),
            oneArgumentMethod("factory", factoryFunction, "factory((kind, args, kwargs))\n--\n\nAn Aidge operator factory (Conv2D, FC, ReLU, ...) called with args and kwargs."),
            oneArgumentMethod("build", buildFunction, "build((kind, components, name))\n--\n\nsequential, parallel, residual or graph over nodes and graphs."),
            keywordMethod("fill", fillFunction, "fill(tensor, kind, value=0, min=0, max=1, mean=0, std_dev=1, scaling=1, variance_norm='FAN_IN', seed=None)\n--\n\nAidge's fillers in place: constant, uniform, normal, he, xavier_uniform."),
            keywordMethod(
                "gradients", gradientsFunction,
                "gradients(type, inputs, output_gradients, attributes=None, constants=None, training=False)\n--\n\n"
                    + "Runs one operator forward and backward; returns (outputs, input_gradients)."),
            keywordMethod("optimizer", optimizerFunction, "optimizer(kind, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, beta1=0.9, beta2=0.999, epsilon=1e-8, decoupled_weight_decay=False)\n--\n\nAn SGD ('sgd') or Adam ('adam') optimizer."),
            keywordMethod("loss", lossFunction, "loss(kind, prediction, target, label_smoothing=0.0, ignore_index=-100)\n--\n\nA loss ('mse', 'bce', 'bce_with_logits', 'ce', 'ce_indices'); writes the prediction's gradient."),
            keywordMethod("apply", applyFunction, "apply(type, inputs, attributes=None)\n--\n\nRuns one operator (ONNX type and attributes) on tensors; returns its outputs."),
            plainMethod("cuda_available", cudaAvailableFunction, "cuda_available()\n--\n\nWhether the CUDA backend can run here (a GPU, its driver, NVRTC and cuBLAS)."),
            plainMethod("cuda_load_error", cudaLoadErrorFunction, "cuda_load_error()\n--\n\nWhy the CUDA backend cannot run here, or None when it can."),
            plainMethod("cuda_device_name", cudaDeviceNameFunction, "cuda_device_name()\n--\n\nThe name of CUDA device 0."),
            keywordMethod("cuda_set_options", cudaSetOptionsFunction, "cuda_set_options(tf32_matmul=None, tf32_convolution=None, cudnn=None)\n--\n\nSets the CUDA backend's options for graphs planned from now on; returns them all."),
            oneArgumentMethod("cuda_set_stream", cudaSetStreamFunction, "cuda_set_stream(handle)\n--\n\nQueues the CUDA backend's work on the stream `handle` (a CUstream address, 0: the default stream); returns the previous one."),
            plainMethod("cuda_current_stream", cudaCurrentStreamFunction, "cuda_current_stream()\n--\n\nThe stream the CUDA backend queues its work on."),
            plainMethod("cuda_synchronize", cudaSynchronizeFunction, "cuda_synchronize()\n--\n\nWaits for the CUDA work queued on the current stream."),
            plainMethod("supported_operators", supportedOperatorsFunction, "supported_operators()\n--\n\nThe operator types the CPU backend runs."),
            oneArgumentMethod("backend_operators", backendOperatorsFunction, "backend_operators(backend)\n--\n\nThe operator types backend `backend` ('cpu' or 'cuda') runs (loading it)."),
            plainMethod(
                "supported_onnx_operators", supportedONNXOperatorsFunction,
                "supported_onnx_operators()\n--\n\nThe ONNX operators imported and run on the CPU: a list of (type, "
                    + "domain, since_version, last_version, dtypes, dtypes_verified)."),
        ]),
        m_slots: nil, m_traverse: nil, m_clear: nil, m_free: nil)
    return pyCall {
        guard let module = aidge_module_create(&moduleDefinition) else { throw PythonError.alreadySet }
        do {
            try Exceptions.install(in: module)
            try CPUBackend.register()
            try TensorType.install(in: module)
            try GraphType.install(in: module)
            try NodeType.install(in: module)
            try OptimizerType.install(in: module)
            try RecordingType.install(in: module)
        } catch {
            Py_DecRef(module)
            throw error
        }
        return module
    }
}

private let setThreadsFunction: PyCFunction = { _, arg in
    pyCall {
        let n = try intValue(arg!, "n")
        guard n >= 0 else { throw PythonError.value("the number of threads must be >= 0, got \(n)") }
        Parallel.threads = n
        return aidge_none()
    }
}

private let getThreadsFunction: PyCFunction = { _, _ in
    pyCall { try makeInt(Parallel.threads) }
}

private let shareOpenMPFunction: PyCFunction = { _, arg in
    pyCall {
        guard let arg else { throw PythonError.type("share_openmp_threads takes one argument") }
        return makeBool(Parallel.shareOpenMPThreads(try boolValue(arg)))
    }
}

private let supportedOperatorsFunction: PyCFunction = { _, _ in
    pyCall { try makeList(try KernelRegistry.shared.types(backend: "cpu").sorted().map(makeString)) }
}

private let backendOperatorsFunction: PyCFunction = { _, arg in
    pyCall {
        let backend = try stringValue(arg!, "backend")
        try Backends.load(backend)
        return try makeList(KernelRegistry.shared.types(backend: backend).map(makeString))
    }
}

private let supportedONNXOperatorsFunction: PyCFunction = { _, _ in
    pyCall {
        try makeList(
            try ONNX.supportedOperators(backend: "cpu").map { op in
                try makeTuple([
                    try makeString(op.type), try makeString(op.domain), try makeInt(op.sinceVersion),
                    try makeInt(op.lastVersion), try makeList(try op.dtypes.map { try makeString($0.rawValue) }),
                    makeBool(op.dtypesVerified),
                ])
            })
    }
}
