/// Operators that read or write elements at given indices: Gather, GatherElements, GatherND, ScatterElements,
/// ScatterND, OneHot, and TopK (which returns the indices it selects).

extension OperatorSchema {
    static let indexingSchemas: [OperatorSchema] = [
        // A KV cache written in place: update's rows go to the cache along `axis`, from each batch's write index
        // (linear), or wrapping around the cache (circular).
        OperatorSchema("TensorScatter", inputs: ["past_cache", "update", "write_indices"], minInputs: 2) { attributes, inputs in
            let cache = try inputs.required(0)
            let update = try inputs.required(1)
            let axis = try ShapeUtil.axis(try attributes.int("axis", default: -2), rank: cache.shape.count, context: "TensorScatter axis")
            guard update.dtype == cache.dtype, update.shape.count == cache.shape.count, axis > 0,
                (0..<cache.shape.count).allSatisfy({ $0 == axis ? update.shape[$0] <= cache.shape[$0] : update.shape[$0] == cache.shape[$0] })
            else {
                throw AidgeError.shapeMismatch(
                    "TensorScatter update \(update.dtype) \(ShapeUtil.text(update.shape)) does not fit the cache "
                        + "\(cache.dtype) \(ShapeUtil.text(cache.shape)) along axis \(axis)")
            }
            if let indices = inputs.optional(2) {
                guard indices.dtype == .int64, indices.shape == [cache.shape[0]] else {
                    throw AidgeError.shapeMismatch("TensorScatter write_indices must be int64 of shape [\(cache.shape[0])]")
                }
            }
            guard ["linear", "circular"].contains(try attributes.string("mode", default: "linear")) else {
                throw AidgeError.invalidModel("TensorScatter mode must be linear or circular")
            }
            return [ValueInfo(dtype: cache.dtype, shape: cache.shape)]
        },
        // out[a..., i..., b...] = data[a..., indices[i...], b...] along `axis`; negative indices count from the end.
        OperatorSchema("Gather", inputs: ["data", "indices"], window: gatherWindow) { attributes, inputs in
            let data = try inputs.required(0)
            let indices = try inputs.required(1)
            try expect(indices, in: [.int64, .int32], "indices")
            guard !data.shape.isEmpty else { throw AidgeError.shapeMismatch("Gather cannot index a scalar") }
            let axis = try ShapeUtil.axis(
                try attributes.int("axis", default: 0), rank: data.shape.count, context: "Gather axis")
            let shape = Array(data.shape[..<axis]) + indices.shape + Array(data.shape[(axis + 1)...])
            return [ValueInfo(dtype: data.dtype, shape: shape)]
        },

        // out[i][j][k] = data[indices[i][j][k]][j][k] (axis 0), ...: the output has the indices' shape.
        OperatorSchema("GatherElements", inputs: ["data", "indices"]) { attributes, inputs in
            let data = try inputs.required(0)
            let indices = try inputs.required(1)
            try expect(indices, in: [.int64, .int32], "indices")
            guard !data.shape.isEmpty else { throw AidgeError.shapeMismatch("GatherElements cannot index a scalar") }
            guard indices.shape.count == data.shape.count else {
                throw AidgeError.shapeMismatch(
                    "GatherElements indices must have the rank of data: data \(data.shape), indices \(indices.shape)")
            }
            let axis = try ShapeUtil.axis(
                try attributes.int("axis", default: 0), rank: data.shape.count, context: "GatherElements axis")
            for d in data.shape.indices where d != axis && indices.shape[d] > data.shape[d] {
                throw AidgeError.shapeMismatch(
                    "GatherElements indices shape \(indices.shape) exceeds data shape \(data.shape) in dimension \(d)")
            }
            if data.shape[axis] == 0 && ShapeUtil.count(indices.shape) > 0 {
                throw AidgeError.shapeMismatch("GatherElements cannot index the empty axis \(axis) of \(data.shape)")
            }
            return [ValueInfo(dtype: data.dtype, shape: indices.shape)]
        },

        // out[b..., i...] = data[b..., indices[b..., i..., :]...]: the last index dimension addresses data.
        OperatorSchema("GatherND", inputs: ["data", "indices"], nonDifferentiable: [1]) { attributes, inputs in
            let data = try inputs.required(0)
            let indices = try inputs.required(1)
            try expect(indices, in: [.int64], "indices")
            let batch = try attributes.int("batch_dims", default: 0)
            let depth = try gatherNDDepth(data: data.shape, indices: indices.shape, batchDims: batch)
            let shape = Array(indices.shape.dropLast()) + Array(data.shape[(batch + depth)...])
            return [ValueInfo(dtype: data.dtype, shape: shape)]
        },

        // A copy of data with updates written at the positions indices give along `axis`.
        OperatorSchema("ScatterElements", inputs: ["data", "indices", "updates"], nonDifferentiable: [1]) {
            attributes, inputs in
            let data = try inputs.required(0)
            let indices = try inputs.required(1)
            let updates = try inputs.required(2)
            try expect(indices, in: [.int64, .int32], "indices")
            _ = try scatterReduction(attributes)
            guard updates.dtype == data.dtype else {
                throw AidgeError.unsupportedType("ScatterElements updates are \(updates.dtype), data is \(data.dtype)")
            }
            guard updates.shape == indices.shape, indices.shape.count == data.shape.count, !data.shape.isEmpty else {
                throw AidgeError.shapeMismatch(
                    "ScatterElements needs updates of the indices' shape and the data's rank: data \(data.shape), "
                        + "indices \(indices.shape), updates \(updates.shape)")
            }
            let axis = try ShapeUtil.axis(try attributes.int("axis", default: 0), rank: data.shape.count)
            for d in data.shape.indices where d != axis && indices.shape[d] > data.shape[d] {
                throw AidgeError.shapeMismatch(
                    "ScatterElements indices \(indices.shape) exceed data \(data.shape) in dimension \(d)")
            }
            return [ValueInfo(dtype: data.dtype, shape: data.shape)]
        },

        // A copy of data with slices replaced (or reduced) at the positions the last index dimension gives.
        OperatorSchema("ScatterND", inputs: ["data", "indices", "updates"], nonDifferentiable: [1]) {
            attributes, inputs in
            let data = try inputs.required(0)
            let indices = try inputs.required(1)
            let updates = try inputs.required(2)
            try expect(indices, in: [.int64], "indices")
            _ = try scatterReduction(attributes)
            guard updates.dtype == data.dtype else {
                throw AidgeError.unsupportedType("ScatterND updates are \(updates.dtype), data is \(data.dtype)")
            }
            let depth = try gatherNDDepth(data: data.shape, indices: indices.shape, batchDims: 0)
            let expected = Array(indices.shape.dropLast()) + Array(data.shape[depth...])
            guard updates.shape == expected else {
                throw AidgeError.shapeMismatch(
                    "ScatterND updates must have shape \(expected) for data \(data.shape) and indices \(indices.shape), "
                        + "got \(updates.shape)")
            }
            return [ValueInfo(dtype: data.dtype, shape: data.shape)]
        },

        // on_value where the index matches, off_value elsewhere, along a new axis of size depth.
        OperatorSchema("OneHot", inputs: ["indices", "depth", "values"], nonDifferentiable: [0, 1]) {
            attributes, inputs in
            let indices = try inputs.required(0)
            let values = try inputs.required(2)
            try expect(indices, in: numericTypes, "indices")
            guard values.count == 2 else {
                throw AidgeError.shapeMismatch("OneHot values must hold [off_value, on_value], got shape \(values.shape)")
            }
            let depthInfo = try inputs.required(1)
            guard depthInfo.count == 1 else {
                throw AidgeError.shapeMismatch("OneHot depth must be a scalar, got shape \(depthInfo.shape)")
            }
            let depth = try inputs.constant(1, "OneHot depth").doubles()[0]
            guard depth >= 1, depth < Double(Int32.max) else {
                throw AidgeError.invalidArgument("OneHot depth must be positive, got \(depth)")
            }
            let rank = indices.shape.count + 1
            let axis = try ShapeUtil.axis(try attributes.int("axis", default: -1), rank: rank)
            var shape = indices.shape
            shape.insert(Int(depth), at: axis)
            return [ValueInfo(dtype: values.dtype, shape: shape)]
        },

        // The k largest (or smallest) elements along `axis`, sorted, and their indices (ties: lower index first).
        OperatorSchema("TopK", inputs: ["X", "K"], nonDifferentiable: [1]) { attributes, inputs in
            let x = try inputs.required(0)
            try expect(x, in: numericTypes)
            guard !x.shape.isEmpty else { throw AidgeError.shapeMismatch("TopK needs an input of rank 1 or more") }
            let axis = try ShapeUtil.axis(try attributes.int("axis", default: -1), rank: x.shape.count)
            let kInfo = try inputs.required(1)
            guard kInfo.count == 1 else { throw AidgeError.shapeMismatch("TopK K must hold one value, got \(kInfo.shape)") }
            let k = try inputs.constant(1, "TopK K").integers()[0]
            guard k >= 0, k <= x.shape[axis] else {
                throw AidgeError.invalidArgument("TopK K = \(k) is out of range for axis \(axis) of shape \(x.shape)")
            }
            var shape = x.shape
            shape[axis] = k
            return [ValueInfo(dtype: x.dtype, shape: shape), ValueInfo(dtype: .int64, shape: shape)]
        },
    ]
}

/// How ScatterElements and ScatterND combine an update with the element it lands on.
public enum ScatterReduction: String, Sendable {
    case none, add, mul, max, min
}

extension OperatorSchema {
    /// The `reduction` attribute of the scatter operators.
    public static func scatterReduction(_ attributes: Attributes) throws -> ScatterReduction {
        let name = try attributes.string("reduction", default: "none")
        guard let reduction = ScatterReduction(rawValue: name) else {
            throw AidgeError.invalidModel("reduction must be none, add, mul, max or min, got \"\(name)\"")
        }
        return reduction
    }

    /// GatherND and ScatterND: how many data dimensions the last index dimension addresses, checked.
    public static func gatherNDDepth(data: [Int], indices: [Int], batchDims: Int) throws -> Int {
        guard let depth = indices.last, indices.count >= 1 else {
            throw AidgeError.shapeMismatch("indices must have rank 1 or more, got shape \(indices)")
        }
        guard batchDims >= 0, batchDims < min(data.count, indices.count) else {
            throw AidgeError.invalidModel("batch_dims \(batchDims) out of range for data \(data) and indices \(indices)")
        }
        guard Array(data[..<batchDims]) == Array(indices[..<batchDims]) else {
            throw AidgeError.shapeMismatch("data \(data) and indices \(indices) differ in their batch dimensions")
        }
        guard depth >= 1, batchDims + depth <= data.count else {
            throw AidgeError.shapeMismatch(
                "the last dimension of indices (\(depth)) addresses more dimensions than data \(data) has")
        }
        return depth
    }
}

extension OperatorSchema {
    /// Gather of one known index along an axis with nothing but size-1 dimensions before it selects a contiguous
    /// block of the data (attention's query, key and value taken from one packed projection).
    static let gatherWindow: Window = { attributes, inputs in
        guard inputs.count == 2, let data = inputs[0], let indices = inputs[1], let index = indices.value,
            index.count == 1, let raw = index.integers().first,
            let axis = try? ShapeUtil.axis(try attributes.int("axis", default: 0), rank: data.shape.count, context: ""),
            data.shape[..<axis].allSatisfy({ $0 == 1 })
        else { return nil }
        let dim = data.shape[axis]
        let i = raw < 0 ? raw + dim : raw
        guard i >= 0, i < dim else { return nil }
        return i * ShapeUtil.count(Array(data.shape[(axis + 1)...]))
    }
}
