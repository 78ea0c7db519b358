/// ONNX's Attention and RotaryEmbedding. Attention: softmax(Q Kᵀ · scale + bias) V over heads, with an optional key/value cache (past → present),
/// grouped-query heads, a boolean or additive mask, causal and sliding-window masking, padding lengths and a
/// softcap. Q, K and V are (batch, heads, sequence, head size), or 3-D (batch, sequence, heads × head size) with
/// the head counts given as attributes.

/// The dimensions of one Attention node, read from its inputs' shapes and attributes (shared by the schema and the
/// kernels).
public struct AttentionLayout: Sendable {
    public let batch: Int
    public let queryHeads: Int
    public let kvHeads: Int
    public let querySequence: Int
    /// Keys and values of this call (the cache holds `pastSequence` more before them).
    public let kvSequence: Int
    public let pastSequence: Int
    public let headSize: Int
    public let valueHeadSize: Int
    /// Whether Q, K, V and Y are 3-D (heads packed in the last dimension).
    public let packed: Bool

    public var totalSequence: Int { pastSequence + kvSequence }

    public init(_ attributes: Attributes, _ inputs: [ValueInfo?]) throws {
        let q = try inputs.required(0)
        let k = try inputs.required(1)
        let v = try inputs.required(2)
        guard q.shape.count == 3 || q.shape.count == 4, k.shape.count == q.shape.count, v.shape.count == q.shape.count
        else {
            throw AidgeError.shapeMismatch(
                "Attention takes Q, K and V all 3-D or all 4-D, got \(q.shape), \(k.shape), \(v.shape)")
        }
        packed = q.shape.count == 3
        batch = q.shape[0]
        guard k.shape[0] == batch, v.shape[0] == batch else {
            throw AidgeError.shapeMismatch("Attention Q, K and V differ in batch: \(q.shape), \(k.shape), \(v.shape)")
        }
        if packed {
            queryHeads = try attributes.int("q_num_heads")
            kvHeads = try attributes.int("kv_num_heads")
            guard queryHeads > 0, kvHeads > 0, q.shape[2] % queryHeads == 0, k.shape[2] % kvHeads == 0,
                v.shape[2] % kvHeads == 0
            else {
                throw AidgeError.shapeMismatch(
                    "Attention hidden sizes \(q.shape[2]), \(k.shape[2]), \(v.shape[2]) do not split into "
                        + "\(queryHeads) query heads and \(kvHeads) key/value heads")
            }
            querySequence = q.shape[1]
            kvSequence = k.shape[1]
            headSize = q.shape[2] / queryHeads
            guard k.shape[2] / kvHeads == headSize else {
                throw AidgeError.shapeMismatch("Attention Q and K head sizes differ: \(q.shape), \(k.shape)")
            }
            valueHeadSize = v.shape[2] / kvHeads
            guard v.shape[1] == kvSequence else {
                throw AidgeError.shapeMismatch("Attention K and V lengths differ: \(k.shape), \(v.shape)")
            }
        } else {
            (queryHeads, querySequence, headSize) = (q.shape[1], q.shape[2], q.shape[3])
            (kvHeads, kvSequence, valueHeadSize) = (k.shape[1], k.shape[2], v.shape[3])
            guard k.shape[3] == headSize, v.shape[1] == kvHeads, v.shape[2] == kvSequence else {
                throw AidgeError.shapeMismatch("Attention Q, K and V do not fit: \(q.shape), \(k.shape), \(v.shape)")
            }
        }
        guard kvHeads > 0, queryHeads % kvHeads == 0 else {
            throw AidgeError.shapeMismatch(
                "Attention needs query heads (\(queryHeads)) a multiple of key/value heads (\(kvHeads))")
        }
        let pastKey = inputs.optional(4)
        let pastValue = inputs.optional(5)
        guard (pastKey == nil) == (pastValue == nil) else {
            throw AidgeError.invalidModel("Attention past_key and past_value go together")
        }
        if let pastKey, let pastValue {
            pastSequence = pastKey.shape.count == 4 ? pastKey.shape[2] : -1
            guard pastKey.shape == [batch, kvHeads, pastSequence, headSize],
                pastValue.shape == [batch, kvHeads, pastSequence, valueHeadSize]
            else {
                throw AidgeError.shapeMismatch(
                    "Attention past_key \(pastKey.shape) and past_value \(pastValue.shape) do not fit "
                        + "(batch \(batch), \(kvHeads) heads, head sizes \(headSize) and \(valueHeadSize))")
            }
        } else {
            pastSequence = 0
        }
    }
}

extension OperatorSchema {
    static let attentionSchemas: [OperatorSchema] = [
        OperatorSchema(
            "LinearAttention", inputs: ["query", "key", "value", "past_state", "decay", "beta"], minInputs: 3,
            outputs: 2
        ) { attributes, inputs in
            let layout = try LinearAttentionLayout(attributes, inputs)
            let q = try inputs.required(0)
            let stateType = inputs.optional(3)?.dtype ?? q.dtype
            return [
                ValueInfo(dtype: q.dtype, shape: [layout.batch, layout.length, layout.queryHeads * layout.valueSize]),
                ValueInfo(dtype: stateType, shape: [layout.batch, layout.kvHeads, layout.keySize, layout.valueSize]),
            ]
        },
        OperatorSchema(
            "Attention", inputs: ["Q", "K", "V", "attn_mask", "past_key", "past_value", "nonpad_kv_seqlen"],
            minInputs: 3, outputs: 4, nonDifferentiable: [3, 6]
        ) { attributes, inputs in
            let layout = try AttentionLayout(attributes, inputs)
            let q = try inputs.required(0)
            try expect(q, in: floatTypes, "Q")
            for i in 1...2 where try inputs.required(i).dtype != q.dtype {
                throw AidgeError.unsupportedType("Attention Q, K and V must share one dtype")
            }
            let total = layout.totalSequence
            if let mask = inputs.optional(3) {
                guard mask.dtype == .bool || floatTypes.contains(mask.dtype) else {
                    throw AidgeError.unsupportedType("Attention attn_mask must be bool or float, got \(mask.dtype)")
                }
                let target = [layout.batch, layout.queryHeads, layout.querySequence, total]
                let aligned = Array(target.suffix(mask.shape.count))
                guard mask.shape.count <= 4, !mask.shape.isEmpty,
                    zip(mask.shape.dropLast(), aligned.dropLast()).allSatisfy({ $0 == 1 || $0 == $1 }),
                    mask.shape[mask.shape.count - 1] <= total
                else {
                    throw AidgeError.shapeMismatch(
                        "Attention attn_mask of shape \(mask.shape) does not broadcast to \(target)")
                }
            }
            if let lengths = inputs.optional(6) {
                guard lengths.dtype == .int64, lengths.shape == [layout.batch], layout.pastSequence == 0 else {
                    throw AidgeError.shapeMismatch(
                        "Attention nonpad_kv_seqlen must be int64 of shape [\(layout.batch)], without past_key")
                }
            }
            let mode = try attributes.int("qk_matmul_output_mode", default: 0)
            guard (0...3).contains(mode) else {
                throw AidgeError.invalidModel("Attention qk_matmul_output_mode must be 0 to 3, got \(mode)")
            }
            let y = layout.packed
                ? [layout.batch, layout.querySequence, layout.queryHeads * layout.valueHeadSize]
                : [layout.batch, layout.queryHeads, layout.querySequence, layout.valueHeadSize]
            return [
                ValueInfo(dtype: q.dtype, shape: y),
                ValueInfo(dtype: q.dtype, shape: [layout.batch, layout.kvHeads, total, layout.headSize]),
                ValueInfo(dtype: q.dtype, shape: [layout.batch, layout.kvHeads, total, layout.valueHeadSize]),
                ValueInfo(dtype: q.dtype, shape: [layout.batch, layout.queryHeads, layout.querySequence, total]),
            ]
        },
        // Rotates pairs of each head's first rotary_embedding_dim features by the angles of the cos/sin caches (at
        // position_ids when given, else one row per batch and position): halves, or interleaved pairs.
        OperatorSchema(
            "RotaryEmbedding", inputs: ["X", "cos_cache", "sin_cache", "position_ids"], minInputs: 3,
            nonDifferentiable: [1, 2, 3]
        ) { attributes, inputs in
            let x = try inputs.required(0)
            try expect(x, in: floatTypes, "X")
            _ = try RotaryLayout(attributes, inputs)
            return [ValueInfo(dtype: x.dtype, shape: x.shape)]
        },
    ]
}

/// The dimensions of a RotaryEmbedding node (shared by the schema and the kernel).
public struct RotaryLayout: Sendable {
    public let batch: Int
    public let sequence: Int
    public let heads: Int
    public let headSize: Int
    /// Features rotated per head (the rest pass through).
    public let rotated: Int
    /// (batch, heads, sequence, head size) rather than (batch, sequence, heads × head size).
    public let headsFirst: Bool
    public let interleaved: Bool
    /// Rows of the caches (positions) when `position_ids` picks them.
    public let positions: Int?

    public init(_ attributes: Attributes, _ inputs: [ValueInfo?]) throws {
        let x = try inputs.required(0)
        let cos = try inputs.required(1)
        let sin = try inputs.required(2)
        guard x.shape.count == 3 || x.shape.count == 4 else {
            throw AidgeError.shapeMismatch("RotaryEmbedding takes a 3-D or 4-D input, got \(x.shape)")
        }
        headsFirst = x.shape.count == 4
        batch = x.shape[0]
        if headsFirst {
            (heads, sequence, headSize) = (x.shape[1], x.shape[2], x.shape[3])
        } else {
            heads = try attributes.int("num_heads")
            guard heads > 0, x.shape[2] % heads == 0 else {
                throw AidgeError.shapeMismatch("RotaryEmbedding hidden size \(x.shape[2]) does not split into \(heads) heads")
            }
            (sequence, headSize) = (x.shape[1], x.shape[2] / heads)
        }
        let dim = try attributes.int("rotary_embedding_dim", default: 0)
        rotated = dim == 0 ? headSize : dim
        guard rotated % 2 == 0, rotated <= headSize else {
            throw AidgeError.invalidModel("RotaryEmbedding rotary_embedding_dim \(rotated) must be even and <= \(headSize)")
        }
        interleaved = try attributes.int("interleaved", default: 0) != 0
        guard cos.shape == sin.shape, cos.dtype == x.dtype, sin.dtype == x.dtype, cos.shape.last == rotated / 2 else {
            throw AidgeError.shapeMismatch(
                "RotaryEmbedding caches must be \(x.dtype) of one shape ending in \(rotated / 2), got \(cos.shape), \(sin.shape)")
        }
        if let ids = inputs.optional(3) {
            try OperatorSchema.expect(ids, in: [.int64], "position_ids")
            guard ids.shape == [batch, sequence], cos.shape.count == 2 else {
                throw AidgeError.shapeMismatch(
                    "RotaryEmbedding position_ids must be [\(batch), \(sequence)] with 2-D caches, got \(ids.shape), \(cos.shape)")
            }
            positions = cos.shape[0]
        } else {
            guard cos.shape == [batch, sequence, rotated / 2] else {
                throw AidgeError.shapeMismatch(
                    "RotaryEmbedding caches without position_ids must be [\(batch), \(sequence), \(rotated / 2)], got \(cos.shape)")
            }
            positions = nil
        }
    }
}

/// LinearAttention's shapes: batch, sequence length, query and key/value heads, key and value sizes, and how
/// decay and beta are given (per head, or per key dimension for decay).
public struct LinearAttentionLayout: Sendable {
    public let batch: Int
    public let length: Int
    public let queryHeads: Int
    public let kvHeads: Int
    public let keySize: Int
    public let valueSize: Int
    /// Elements of decay per (batch, step, kv head): 1 or keySize; 0 when absent.
    public let decayWidth: Int
    /// Elements of beta per (batch, step): kvHeads or 1; 0 when absent.
    public let betaWidth: Int

    public init(_ attributes: Attributes, _ inputs: [ValueInfo?]) throws {
        let q = try inputs.required(0)
        let k = try inputs.required(1)
        let v = try inputs.required(2)
        try OperatorSchema.expect(q, in: [.float32, .float64, .float16], "LinearAttention query")
        queryHeads = try attributes.int("q_num_heads")
        kvHeads = try attributes.int("kv_num_heads")
        guard queryHeads > 0, kvHeads > 0, queryHeads % kvHeads == 0 else {
            throw AidgeError.invalidModel("LinearAttention q_num_heads (\(queryHeads)) must be a positive multiple of kv_num_heads (\(kvHeads))")
        }
        guard q.shape.count == 3, k.shape.count == 3, v.shape.count == 3, k.shape.prefix(2) == q.shape.prefix(2),
            v.shape.prefix(2) == q.shape.prefix(2), q.shape[2] % queryHeads == 0, v.shape[2] % kvHeads == 0,
            k.shape[2] == q.shape[2] / queryHeads * kvHeads, k.dtype == q.dtype, v.dtype == q.dtype
        else {
            throw AidgeError.shapeMismatch(
                "LinearAttention needs query (B, T, Hq·dk), key (B, T, Hkv·dk) and value (B, T, Hkv·dv) of one dtype, got "
                    + "\(q.shape), \(k.shape) and \(v.shape)")
        }
        batch = q.shape[0]
        length = q.shape[1]
        keySize = q.shape[2] / queryHeads
        valueSize = v.shape[2] / kvHeads
        let rule = try attributes.string("update_rule", default: "gated_delta")
        guard ["linear", "gated", "delta", "gated_delta"].contains(rule) else {
            throw AidgeError.invalidModel("LinearAttention update_rule '\(rule)' is not one of linear, gated, delta, gated_delta")
        }
        let decay = inputs.optional(4)
        let beta = inputs.optional(5)
        guard (decay != nil) == rule.hasPrefix("gated"), (beta != nil) == rule.hasSuffix("delta") else {
            throw AidgeError.invalidModel("LinearAttention update_rule '\(rule)' does not match the decay and beta inputs given")
        }
        if let decay {
            guard decay.shape.count == 3, decay.shape.prefix(2) == q.shape.prefix(2),
                decay.shape[2] == kvHeads || decay.shape[2] == kvHeads * keySize
            else { throw AidgeError.shapeMismatch("LinearAttention decay \(decay.shape) must be (B, T, Hkv) or (B, T, Hkv·dk)") }
            decayWidth = decay.shape[2] / kvHeads
        } else {
            decayWidth = 0
        }
        if let beta {
            guard beta.shape.count == 3, beta.shape.prefix(2) == q.shape.prefix(2), beta.shape[2] == kvHeads || beta.shape[2] == 1
            else { throw AidgeError.shapeMismatch("LinearAttention beta \(beta.shape) must be (B, T, Hkv) or (B, T, 1)") }
            betaWidth = beta.shape[2]
        } else {
            betaWidth = 0
        }
        if let state = inputs.optional(3), state.shape != [batch, kvHeads, keySize, valueSize] {
            throw AidgeError.shapeMismatch(
                "LinearAttention past_state \(state.shape) must be \([batch, kvHeads, keySize, valueSize])")
        }
    }
}
