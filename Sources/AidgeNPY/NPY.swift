import AidgeCore

/// NumPy's `.npy` format (versions 1-3): little-endian data in C or Fortran order, for the dtypes tensors hold.
public enum NPY {
    private static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// Reads an `.npy` file into a new contiguous tensor.
    public static func read(_ path: String) throws -> Tensor {
        do {
            return try decode(try FileIO.read(path))
        } catch let error as AidgeError {
            throw error.prefixed(path)
        }
    }

    /// Writes `tensor` as a version-1 `.npy` file (C order). bfloat16, which NumPy has no code for, is refused.
    public static func write(_ tensor: Tensor, to path: String) throws {
        try FileIO.write(try encode(tensor), to: path)
    }

    public static func decode(_ bytes: [UInt8]) throws -> Tensor {
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw AidgeError.invalidArgument("not a .npy file (bad magic bytes)")
        }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw AidgeError.invalidArgument("truncated .npy header") }
            headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
            headerStart = 12
        default:
            throw AidgeError.invalidArgument(".npy format version \(major) is not supported")
        }
        guard headerStart + headerLength <= bytes.count else { throw AidgeError.invalidArgument("truncated .npy header") }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        let descr = try field(header, "descr").trimmingQuotes()
        let fortran = try field(header, "fortran_order").hasPrefix("True")
        let shapeText = try field(header, "shape")
        let shape = try parseShape(shapeText)
        let dtype = try dtypeOf(descr)
        let count = shape.reduce(1, *)
        let dataStart = headerStart + headerLength
        let needed = count * dtype.byteSize
        guard bytes.count - dataStart >= needed else {
            throw AidgeError.invalidArgument(
                "truncated .npy data: shape \(shape) of \(dtype) needs \(needed) bytes, the file has \(bytes.count - dataStart)")
        }
        // Fortran order is the transpose of C order with the reversed shape.
        let stored = Tensor(zeros: fortran ? shape.reversed() : shape, dtype: dtype)
        bytes.withUnsafeBytes { raw in
            if let base = raw.baseAddress, needed > 0 {
                stored.rawPointer.copyMemory(from: base + dataStart, byteCount: needed)
            }
        }
        if dtype == .bool {
            let p = stored.pointer(as: UInt8.self)
            for i in 0..<count where p[i] > 1 { p[i] = 1 }
        }
        if fortran {
            return try stored.permuted(Array((0..<shape.count).reversed())).copy()
        }
        return stored
    }

    public static func encode(_ tensor: Tensor) throws -> [UInt8] {
        guard let descr = descrOf(tensor.dtype) else {
            throw AidgeError.unsupportedType("NumPy's .npy format has no code for \(tensor.dtype)")
        }
        let shape = tensor.shape.count == 1 ? "(\(tensor.shape[0]),)" : "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shape), }"
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        let length = header.utf8.count
        guard length <= 0xFFFF else { throw AidgeError.invalidArgument("shape too long for a .npy header") }
        var bytes = magic + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + Array(header.utf8)
        let c = tensor.contiguous()
        bytes += UnsafeRawBufferPointer(start: c.rawPointer, count: c.byteCount)
        return bytes
    }

    private static let codes: [(String, DType)] = [
        ("f4", .float32), ("f8", .float64), ("f2", .float16), ("i1", .int8), ("i2", .int16), ("i4", .int32),
        ("i8", .int64), ("u1", .uint8), ("u2", .uint16), ("u4", .uint32), ("u8", .uint64), ("b1", .bool),
    ]

    private static func descrOf(_ dtype: DType) -> String? {
        guard let code = codes.first(where: { $0.1 == dtype })?.0 else { return nil }
        return (dtype.byteSize == 1 ? "|" : "<") + code
    }

    private static func dtypeOf(_ descr: String) throws -> DType {
        guard let order = descr.first, descr.count >= 3 else {
            throw AidgeError.unsupportedType(".npy dtype '\(descr)' is not supported")
        }
        let code = String(descr.dropFirst())
        guard let dtype = codes.first(where: { $0.0 == code })?.1 else {
            throw AidgeError.unsupportedType(".npy dtype '\(descr)' is not supported")
        }
        if order == ">" && dtype.byteSize > 1 {
            throw AidgeError.unsupportedType(".npy data is big-endian ('\(descr)'); save it little-endian")
        }
        guard order == "<" || order == "|" || order == "=" || (order == ">" && dtype.byteSize == 1) else {
            throw AidgeError.unsupportedType(".npy dtype '\(descr)' is not supported")
        }
        return dtype
    }

    /// The text after `'key':` up to the next top-level comma (a tuple counts as one value).
    private static func field(_ header: String, _ key: String) throws -> String {
        guard let range = header.range(of: "'\(key)':") else {
            throw AidgeError.invalidArgument(".npy header has no '\(key)'")
        }
        var depth = 0
        var value = ""
        for ch in header[range.upperBound...] {
            if ch == "(" { depth += 1 }
            if ch == ")" { depth -= 1 }
            if (ch == "," || ch == "}") && depth == 0 { break }
            value.append(ch)
        }
        return value.trimmingSpaces()
    }

    private static func parseShape(_ text: String) throws -> [Int] {
        guard text.hasPrefix("("), text.hasSuffix(")") else { throw AidgeError.invalidArgument("bad .npy shape \(text)") }
        let inner = text.dropFirst().dropLast()
        return try inner.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }.map {
            guard let n = Int($0), n >= 0 else { throw AidgeError.invalidArgument("bad .npy shape \(text)") }
            return n
        }
    }
}

extension StringProtocol {
    fileprivate func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
    fileprivate func trimmingQuotes() -> String {
        String(filter { $0 != "'" && $0 != "\"" })
    }
}

extension String {
    /// First occurrence of `needle` (no Foundation).
    fileprivate func range(of needle: String) -> Range<String.Index>? {
        guard !needle.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(needle) { return i..<index(i, offsetBy: needle.count) }
            i = index(after: i)
        }
        return nil
    }
}
