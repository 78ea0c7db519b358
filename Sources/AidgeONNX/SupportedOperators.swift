import AidgeCore

/// An ONNX operator that the importer reads and a backend runs: the opsets it is read from and the element types
/// its kernels take.
public struct SupportedOperator: Sendable, Equatable {
    /// The ONNX op type.
    public let type: String
    /// The ONNX domain ("" for the default one).
    public let domain: String
    /// The engine operator its nodes become (the ONNX type, unless the importer renames it).
    public let engineType: String
    /// The first opset version whose form the importer reads (one of the op's since_versions).
    public let sinceVersion: Int
    /// The last opset the importer reads it in (`ONNX.maxSupportedOpset`, or the one before the op was removed).
    public let lastVersion: Int
    /// The dtypes of its main input (the first whose ONNX type constraint allows several types; for an op without
    /// inputs, its output's) that the engine has.
    public let dtypes: [DType]
    /// true: each dtype of `dtypes` was checked by building and running a kernel for a small node. false: no such
    /// node could be made for this op, and `dtypes` are those the ONNX type constraint allows (unchecked).
    public let dtypesVerified: Bool

    public init(
        type: String, domain: String = "", engineType: String? = nil, sinceVersion: Int, lastVersion: Int,
        dtypes: [DType], dtypesVerified: Bool
    ) {
        self.type = type
        self.domain = domain
        self.engineType = engineType ?? type
        self.sinceVersion = sinceVersion
        self.lastVersion = lastVersion
        self.dtypes = dtypes
        self.dtypesVerified = dtypesVerified
    }
}

extension ONNX {
    /// The ONNX operators that the importer reads and that `backend` has kernels for, sorted by type. The dtypes
    /// are probed: for each one the ONNX type constraint allows, a kernel is built and run for a small node (see
    /// `SupportedOperator.dtypesVerified`). The backend's kernels must be registered first
    /// (`CPUBackend.register()`).
    public static func supportedOperators(backend: String = "cpu") throws -> [SupportedOperator] {
        guard KernelRegistry.shared.isAvailable(backend) else {
            throw AidgeError.unsupported("no kernels are registered for the \(backend) backend: register it first")
        }
        var supported: [SupportedOperator] = []
        for type in ONNXOperatorSchema.all.keys.sorted() {
            if let entry = try supportedOperator(type, backend: backend) { supported.append(entry) }
        }
        // The other domains' operators, which the importer names `<domain>.<type>`, after the default domain's.
        for (domain, types) in ONNXOperatorSchema.domains.sorted(by: { $0.key < $1.key }) {
            for type in types.keys.sorted() {
                if let entry = try supportedOperator(type, domain: domain, backend: backend) { supported.append(entry) }
            }
        }
        return supported
    }

    /// What `supportedOperators` says of one ONNX op type, or nil when it is not supported.
    static func supportedOperator(_ type: String, domain: String = "", backend: String) throws -> SupportedOperator? {
        let table = domain.isEmpty ? ONNXOperatorSchema.all : ONNXOperatorSchema.domains[domain] ?? [:]
        guard var versions = table[type], let newest = versions.last else { return nil }
        // Another domain's versions are its own: its newest is the last the importer reads.
        var lastVersion = domain.isEmpty ? maxSupportedOpset : table.values.compactMap { $0.last?.sinceVersion }.max() ?? 1
        if newest.isDeprecated {
            lastVersion = newest.sinceVersion - 1
            versions.removeLast()
        }
        let engineType = domain.isEmpty ? OpsetAdapters.engineType(type) : "\(domain).\(type)"
        let firstHandled = OpsetAdapters.firstHandledVersion[domain.isEmpty ? type : engineType] ?? 0
        guard let first = versions.first(where: { $0.sinceVersion >= firstHandled }), let onnx = versions.last else {
            return nil
        }
        if domain.isEmpty && ContainerOperators.types.contains(type) {
            // Run by the container runner on any backend: no kernel to probe; every dtype moves as bytes.
            // The element types of the tensors held (not those of positions and lengths, constraint I); the
            // table keeps no element types for sequence-only constraints, which take those of SequenceInsert.
            let held = onnx.typeConstraints.first { !$0.types.isEmpty && $0.parameter != "I" }?.types
            let dtypes = held ?? ONNXOperatorSchema.all["SequenceInsert"]?.last?.elementTypes(input: 1) ?? []
            return SupportedOperator(
                type: type, sinceVersion: first.sinceVersion, lastVersion: lastVersion,
                dtypes: dtypes.compactMap(ONNXOperatorSchema.dtype(onnxName:)), dtypesVerified: false)
        }
        guard let schema = OperatorSchema.registry[engineType],
            KernelRegistry.shared.factory(engineType, backend: backend) != nil
        else { return nil }

        let probedInput = onnx.inputs.indices.first { onnx.elementTypes(input: $0).count > 1 } ?? 0
        var candidates: [DType] = []
        for name in onnx.elementTypes(input: probedInput) {
            if let dtype = ONNXOperatorSchema.dtype(onnxName: name), !candidates.contains(dtype) {
                candidates.append(dtype)
            }
        }
        candidates.sort { DType.allCases.firstIndex(of: $0) ?? 0 < DType.allCases.firstIndex(of: $1) ?? 0 }

        let probes = OperatorProbe.table[engineType].map { [$0] }
            ?? OperatorProbe.generic(schema: schema, onnx: onnx, probedInput: probedInput)
        for probe in probes {
            let working = candidates.filter { runs(probe, dtype: $0, type: engineType, schema: schema, backend: backend) }
            if !working.isEmpty {
                return SupportedOperator(
                    type: type, domain: domain, engineType: engineType, sinceVersion: first.sinceVersion, lastVersion: lastVersion, dtypes: working,
                    dtypesVerified: true)
            }
        }
        return SupportedOperator(
            type: type, domain: domain, engineType: engineType, sinceVersion: first.sinceVersion, lastVersion: lastVersion, dtypes: candidates,
            dtypesVerified: false)
    }

    /// Whether a kernel for `probe` with `dtype` builds on `backend` and runs.
    private static func runs(
        _ probe: OperatorProbe, dtype: DType, type: String, schema: OperatorSchema, backend: String
    ) -> Bool {
        do {
            var infos: [ValueInfo?] = []
            var tensors: [Tensor?] = []
            for input in probe.inputs {
                guard let input else {
                    infos.append(nil)
                    tensors.append(nil)
                    continue
                }
                let d = input.dtype(probing: dtype)
                let values = input.values ?? [Double](repeating: 1, count: ShapeUtil.count(input.shape))
                let tensor = try Tensor(values, shape: input.shape).cast(to: d)
                infos.append(ValueInfo(dtype: d, shape: input.shape, value: input.values == nil ? nil : tensor))
                tensors.append(tensor)
            }
            let attributes = probe.attributes(dtype)
            let outputs = try schema.outputs(attributes, infos)
            let request = KernelRequest(
                op: Operator(type, attributes: attributes), nodeName: "probe", inputs: infos, outputs: outputs)
            let kernel = try KernelRegistry.shared.makeKernel(request, backend: backend)
            try kernel.run(tensors, outputs.map { Tensor(zeros: $0.shape, dtype: $0.dtype) })
            return true
        } catch {
            return false
        }
    }
}
