/// Operators that read elements at given indices: Gather and GatherElements.

extension OperatorSchema {
    static let indexingSchemas: [OperatorSchema] = [
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
    ]
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
