/// TfIdfVectorizer's n-grams of integers (`pool_int64s`), checked and loaded into a trie: a path from the root
/// spells an n-gram, and the node it ends on holds the n-gram's id (0: a prefix only). Ids count every n-gram of
/// the pool in order, the ones outside [min_gram_length, max_gram_length] too, as ONNX's reference counts them;
/// `ngram_indexes[id - 1]` is the output column of n-gram `id`.
public struct NGramPool: Sendable {
    public enum Weighting: Sendable { case tf, idf, tfidf }

    public struct Node: Sendable {
        public var id: Int
        public var children: [Int: Int]
    }

    /// The trie; node 0 is the root.
    public let nodes: [Node]
    public let weighting: Weighting
    public let minLength: Int
    public let maxLength: Int
    public let maxSkip: Int
    /// The output column of each n-gram id (minus one).
    public let indexes: [Int]
    /// The weight of each output column (IDF, TFIDF), or none (every weight 1).
    public let weights: [Float]
    public let outputSize: Int

    public init(_ attributes: Attributes) throws {
        guard !attributes.has("pool_strings") else {
            throw AidgeError.unsupported(
                "TfIdfVectorizer with pool_strings (string n-grams) is not supported: the engine has no string tensors; "
                    + "integer pools (pool_int64s) are")
        }
        let pool = try attributes.ints("pool_int64s", default: [])
        switch try attributes.string("mode") {
        case "TF": weighting = .tf
        case "IDF": weighting = .idf
        case "TFIDF": weighting = .tfidf
        case let other: throw AidgeError.invalidModel("TfIdfVectorizer mode '\(other)' is not one of TF, IDF, TFIDF")
        }
        minLength = try attributes.int("min_gram_length")
        maxLength = try attributes.int("max_gram_length")
        maxSkip = try attributes.int("max_skip_count")
        guard minLength >= 1, maxLength >= minLength, maxSkip >= 0 else {
            throw AidgeError.invalidModel(
                "TfIdfVectorizer needs 1 <= min_gram_length (\(minLength)) <= max_gram_length (\(maxLength)) and "
                    + "max_skip_count (\(maxSkip)) >= 0")
        }
        indexes = try attributes.ints("ngram_indexes")
        guard let largest = indexes.max(), indexes.allSatisfy({ $0 >= 0 }) else {
            throw AidgeError.invalidModel("TfIdfVectorizer ngram_indexes must be a non-empty list of non-negative columns")
        }
        outputSize = largest + 1
        weights = try attributes.floats("weights", default: [])
        guard weights.isEmpty || weights.count >= outputSize else {
            throw AidgeError.invalidModel(
                "TfIdfVectorizer has \(weights.count) weights for \(outputSize) output columns")
        }
        let counts = try attributes.ints("ngram_counts")
        for (i, start) in counts.enumerated() {
            let end = i + 1 < counts.count ? counts[i + 1] : pool.count
            guard start >= 0, start <= end, end <= pool.count else {
                throw AidgeError.invalidModel(
                    "TfIdfVectorizer ngram_counts \(counts) must be non-decreasing starts inside the pool (\(pool.count) items)")
            }
        }

        var nodes = [Node(id: 0, children: [:])]
        var nextID = 1
        for (i, start) in counts.enumerated() {
            let length = i + 1  // the i-th range holds n-grams of length i + 1
            let end = i + 1 < counts.count ? counts[i + 1] : pool.count
            let grams = (end - start) / length
            guard (minLength...maxLength).contains(length) else {
                nextID += grams
                continue
            }
            for g in 0..<grams {
                var node = 0
                for k in 0..<length {
                    let key = pool[start + g * length + k]
                    if let child = nodes[node].children[key] {
                        node = child
                    } else {
                        nodes.append(Node(id: 0, children: [:]))
                        nodes[node].children[key] = nodes.count - 1
                        node = nodes.count - 1
                    }
                }
                guard nextID <= indexes.count else {
                    throw AidgeError.invalidModel(
                        "TfIdfVectorizer pool holds more n-grams than ngram_indexes (\(indexes.count)) has columns")
                }
                nodes[node].id = nextID
                nextID += 1
            }
        }
        self.nodes = nodes
    }
}
