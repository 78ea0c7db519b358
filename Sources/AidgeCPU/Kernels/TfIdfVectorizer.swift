import AidgeCore

/// TfIdfVectorizer on integer tokens, as ONNX's reference counts: for every skip distance (1 to
/// max_skip_count + 1) and every start, the trie is walked along the tokens that distance apart, and every n-gram
/// of an accepted length met on the way is counted in its column (unigrams once, not per distance). The counts
/// are then weighted by the mode. Rows are independent and split over the cores.
func registerTfIdfVectorizerKernels(_ registry: KernelRegistry) {
    registry.register("TfIdfVectorizer", backend: "cpu") { request in
        let x = try request.input(0)
        let ngrams = try NGramPool(request.attributes)
        let (rows, length) = x.shape.count == 2 ? (x.shape[0], x.shape[1]) : (1, x.count)
        switch x.dtype {
        case .int32: return tfIdfKernel(Int32.self, ngrams, rows: rows, length: length)
        case .int64: return tfIdfKernel(Int64.self, ngrams, rows: rows, length: length)
        case let other: throw request.unsupportedType(other)
        }
    }
}

private func tfIdfKernel<I: FixedWidthInteger>(_: I.Type, _ ngrams: NGramPool, rows: Int, length: Int) -> any Kernel {
    let width = ngrams.outputSize
    return ClosureKernel { inputs, outputs in
        let x = UnsafePointer(try presentInput(inputs, 0).pointer(as: I.self))
        let y = try firstOutput(outputs).pointer(as: Float.self)
        y.update(repeating: 0, count: rows * width)
        Parallel.forEach(rows, grain: max(1, 4096 / max(length, 1))) { range in
            for r in range {
                ngrams.count(x + r * length, length, into: y + r * width)
                ngrams.weigh(y + r * width)
            }
        }
    }
}

extension NGramPool {
    /// Adds the n-grams of one row of `length` tokens to the row's columns.
    fileprivate func count<I: FixedWidthInteger>(
        _ tokens: UnsafePointer<I>, _ length: Int, into y: UnsafeMutablePointer<Float>
    ) {
        var shortest = minLength
        for skip in 1...(maxSkip + 1) {
            var start = 0
            // No n-gram of an accepted length fits from here on.
            while start + skip * (shortest - 1) < length {
                var item = start
                var node = 0
                var size = 1
                while size <= maxLength && item < length, let child = nodes[node].children[Int(tokens[item])] {
                    let id = nodes[child].id
                    if size >= shortest && id != 0 { y[indexes[id - 1]] += 1 }
                    node = child
                    size += 1
                    item += skip
                }
                start += 1
            }
            // Unigrams do not depend on the distance: counted on the first pass only.
            if shortest == 1 {
                shortest = 2
                if shortest > maxLength { break }
            }
        }
    }

    /// Turns one row's counts into the mode's values.
    fileprivate func weigh(_ y: UnsafeMutablePointer<Float>) {
        switch weighting {
        case .tf:
            break
        case .idf:
            for i in 0..<outputSize where y[i] > 0 { y[i] = weights.isEmpty ? 1 : weights[i] }
        case .tfidf:
            if !weights.isEmpty {
                for i in 0..<outputSize { y[i] *= weights[i] }
            }
        }
    }
}
