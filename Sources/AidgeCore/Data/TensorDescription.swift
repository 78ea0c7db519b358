extension Tensor: CustomStringConvertible {
    /// `Tensor(float32, shape [2, 3]) [[1, 2, 3], [4, 5, 6]]`, eliding the middle of long dimensions.
    public var description: String {
        let strings = dtype == .string ? (try? self.strings()) ?? [] : []
        let values = dtype == .string ? strings.indices.map(Double.init) : doubles()
        var text = ""
        func format(_ v: Double) -> String {
            if dtype == .string { return "\"\(strings[Int(v)])\"" }
            if dtype == .bool { return v != 0 ? "true" : "false" }
            if !dtype.isFloatingPoint { return String(Int64(v)) }
            return String(Float(v))
        }
        func emit(_ dim: Int, _ base: Int) {
            if dim == shape.count {
                text += format(values[base])
                return
            }
            let n = shape[dim]
            let step = shape[(dim + 1)...].reduce(1, *)
            text += "["
            let shown: [Int] = n > 8 ? Array(0..<3) + [-1] + Array((n - 3)..<n) : Array(0..<n)
            for (j, i) in shown.enumerated() {
                if j > 0 { text += ", " }
                if i < 0 { text += "..."; continue }
                emit(dim + 1, base + i * step)
            }
            text += "]"
        }
        if count > 0 || shape.isEmpty { emit(0, 0) } else { text = "[]" }
        return "Tensor(\(dtype), shape \(shape)) \(text)"
    }
}
