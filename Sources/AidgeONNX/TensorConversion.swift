import AidgeCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf

/// Names an ONNX data type code for error messages.
func onnxTypeName(_ code: Int) -> String {
    Onnx_TensorProto.DataType(rawValue: code).map { "\($0)" } ?? "type \(code)"
}

extension Tensor {
    /// Reads an ONNX `TensorProto` (raw or typed fields, or external data relative to `baseDirectory`).
    init(onnx proto: Onnx_TensorProto, baseDirectory: String) throws {
        let what = proto.name.isEmpty ? "a tensor" : "tensor '\(proto.name)'"
        guard let dtype = DType(onnx: Int(proto.dataType)) else {
            throw AidgeError.unsupportedType("\(what) has ONNX data type \(onnxTypeName(Int(proto.dataType))), which is not supported")
        }
        let shape = proto.dims.map { Int($0) }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw AidgeError.invalidModel("\(what) has a negative dimension \(shape)") }
        // The strides multiply the dimensions other than 0 too, so that product must not overflow either.
        let (extent, overflow) = shape.reduce((1, false)) { acc, d in
            let (p, o) = acc.0.multipliedReportingOverflow(by: Swift.max(d, 1))
            return (p, acc.1 || o)
        }
        guard !overflow, extent < Int.max / 8 else { throw AidgeError.invalidModel("\(what) is too large: shape \(shape)") }
        let count = shape.contains(0) ? 0 : extent
        if dtype == .string {
            try self.init(onnxStrings: proto, shape: shape, count: count, what: what)
            return
        }
        // 4-bit and 2-bit types are packed in files (low bits first) and take a byte each in memory.
        let packing = dtype.elementsPerPackedByte
        let bytes = (count * dtype.byteSize + packing - 1) / packing
        // The data must be there before the tensor is allocated: a shape alone decides no allocation.
        var externalData: (path: String, offset: Int)?
        if proto.hasDataLocation && proto.dataLocation == .external {
            var location: String?
            var offset = 0
            var length: Int?
            for entry in proto.externalData {
                switch entry.key {
                case "location": location = entry.value
                case "offset": offset = Int(entry.value) ?? -1
                case "length": length = Int(entry.value)
                default: break
                }
            }
            guard let location, !location.isEmpty else {
                throw AidgeError.invalidModel("\(what) is stored externally but names no file")
            }
            guard !location.hasPrefix("/"), !location.split(separator: "/").contains("..") else {
                throw AidgeError.invalidModel("\(what): external data path '\(location)' must stay inside the model's folder")
            }
            guard offset >= 0 else { throw AidgeError.invalidModel("\(what): invalid external data offset") }
            if let length, length != bytes {
                throw AidgeError.invalidModel("\(what): external data length \(length) does not match its \(bytes) bytes")
            }
            let path = baseDirectory + "/" + location
            let size: Int
            do {
                size = try FileIO.size(path)
            } catch {
                throw AidgeError.io("external data of \(what): \((error as? AidgeError)?.message ?? "\(error)")")
            }
            guard bytes <= size, offset <= size - bytes else {
                throw AidgeError.io(
                    "external data of \(what): '\(path)' has \(size) bytes; cannot read \(bytes) bytes at offset \(offset)")
            }
            externalData = (path, offset)
        } else {
            let available = proto.hasRawData ? proto.rawData.count : Self.typedCount(proto, dtype)
            let needed = proto.hasRawData || packing > 1 ? bytes : count  // float8: a byte per element
            guard available == needed else {
                throw AidgeError.invalidModel(
                    "\(what) has \(available) \(proto.hasRawData ? "bytes of data" : "values"), its shape \(shape) needs \(needed)")
            }
        }
        self.init(zeros: shape, dtype: dtype)
        let packed = packing == 1 ? nil : Tensor(zeros: [bytes], dtype: .uint8)
        let out = packed?.rawPointer ?? rawPointer
        defer { if let packed { Self.unpack(packed, into: self) } }

        if let (path, offset) = externalData {
            do {
                try FileIO.read(path, offset: offset, count: bytes, into: out)
            } catch {
                throw AidgeError.io("external data of \(what): \((error as? AidgeError)?.message ?? "\(error)")")
            }
            return
        }

        if proto.hasRawData {
            guard proto.rawData.count == bytes else {
                throw AidgeError.invalidModel("\(what) has \(proto.rawData.count) bytes of data, its shape \(shape) needs \(bytes)")
            }
            proto.rawData.withUnsafeBytes { raw in
                if let base = raw.baseAddress, bytes > 0 { out.copyMemory(from: base, byteCount: bytes) }
            }
            return
        }

        func fill<S, D>(_ source: [S], _: D.Type, _ convert: (S) -> D) throws {
            guard source.count == count else {
                throw AidgeError.invalidModel("\(what) has \(source.count) values, its shape \(shape) needs \(count)")
            }
            let p = out.assumingMemoryBound(to: D.self)
            for i in 0..<count { p[i] = convert(source[i]) }
        }
        switch dtype {
        case .float32: try fill(proto.floatData, Float.self) { $0 }
        case .float64: try fill(proto.doubleData, Double.self) { $0 }
        case .int64: try fill(proto.int64Data, Int64.self) { $0 }
        case .uint64: try fill(proto.uint64Data, UInt64.self) { $0 }
        case .uint32: try fill(proto.uint64Data, UInt32.self) { UInt32(truncatingIfNeeded: $0) }
        case .int32: try fill(proto.int32Data, Int32.self) { $0 }
        case .int16: try fill(proto.int32Data, Int16.self) { Int16(truncatingIfNeeded: $0) }
        case .int8: try fill(proto.int32Data, Int8.self) { Int8(truncatingIfNeeded: $0) }
        case .uint16, .float16, .bfloat16: try fill(proto.int32Data, UInt16.self) { UInt16(truncatingIfNeeded: $0) }
        case .uint8: try fill(proto.int32Data, UInt8.self) { UInt8(truncatingIfNeeded: $0) }
        case .bool: try fill(proto.int32Data, Bool.self) { $0 != 0 }
        case .string:
            break  // read above
        case .float8E4M3FN, .float8E4M3FNUZ, .float8E5M2, .float8E5M2FNUZ, .float4E2M1, .float8E8M0, .int4, .uint4, .int2,
            .uint2:
            guard proto.int32Data.count == bytes else {
                throw AidgeError.invalidModel("\(what) has \(proto.int32Data.count) values, its shape \(shape) needs \(bytes)")
            }
            let p = out.assumingMemoryBound(to: UInt8.self)
            for i in 0..<bytes { p[i] = UInt8(truncatingIfNeeded: proto.int32Data[i]) }
        }
    }

    /// A string tensor: ONNX keeps its elements in `string_data`, as bytes that must be UTF-8.
    private init(onnxStrings proto: Onnx_TensorProto, shape: [Int], count: Int, what: String) throws {
        guard !proto.hasRawData, !(proto.hasDataLocation && proto.dataLocation == .external) else {
            throw AidgeError.invalidModel("\(what) is a string tensor with raw or external data (strings are in string_data)")
        }
        guard proto.stringData.count == count else {
            throw AidgeError.invalidModel("\(what) has \(proto.stringData.count) strings, its shape \(shape) needs \(count)")
        }
        let strings = try proto.stringData.enumerated().map { k, bytes in
            guard let s = String(validating: bytes, as: UTF8.self) else {
                throw AidgeError.unsupportedType("\(what): string \(k) is not UTF-8 text")
            }
            return s
        }
        try self.init(strings: strings, shape: shape)
    }

    /// How many values the typed field that holds `dtype` has.
    static func typedCount(_ proto: Onnx_TensorProto, _ dtype: DType) -> Int {
        switch dtype {
        case .string: return proto.stringData.count
        case .float32: return proto.floatData.count
        case .float64: return proto.doubleData.count
        case .int64: return proto.int64Data.count
        case .uint64, .uint32: return proto.uint64Data.count
        case .int32, .int16, .int8, .uint16, .float16, .bfloat16, .uint8, .bool, .float8E4M3FN, .float8E4M3FNUZ,
            .float8E5M2, .float8E5M2FNUZ, .float4E2M1, .float8E8M0, .int4, .uint4, .int2, .uint2:
            return proto.int32Data.count
        }
    }

    /// Spreads packed sub-byte elements (low bits first) into one byte each.
    static func unpack(_ packed: Tensor, into tensor: Tensor) {
        let perByte = tensor.dtype.elementsPerPackedByte
        let width = 8 / perByte
        let mask = UInt8((1 << width) - 1)
        let source = packed.pointer(as: UInt8.self)
        let target = tensor.pointer(as: UInt8.self)
        for i in 0..<tensor.count { target[i] = source[i / perByte] >> UInt8((i % perByte) * width) & mask }
    }

    /// The bytes of this tensor's elements as ONNX stores them (sub-byte elements packed, low bits first).
    var onnxBytes: Data {
        let c = contiguous()
        let perByte = dtype.elementsPerPackedByte
        guard perByte > 1 else { return Data(bytes: c.rawPointer, count: c.byteCount) }
        let width = 8 / perByte
        let mask = UInt8((1 << width) - 1)
        var bytes = [UInt8](repeating: 0, count: (count + perByte - 1) / perByte)
        let source = c.pointer(as: UInt8.self)
        for i in 0..<count { bytes[i / perByte] |= (source[i] & mask) << UInt8((i % perByte) * width) }
        return Data(bytes)
    }
}

extension Onnx_TensorProto {
    /// An ONNX tensor holding `tensor`'s elements as raw little-endian data.
    init(_ tensor: Tensor, name: String) {
        self.init()
        self.name = name
        dataType = Int32(tensor.dtype.onnxDataType)
        dims = tensor.shape.map { Int64($0) }
        if tensor.dtype == .string {
            stringData = ((try? tensor.strings()) ?? []).map { Data($0.utf8) }
        } else {
            rawData = tensor.onnxBytes
        }
    }
}

extension Onnx_TensorProto {
    /// Why this tensor's data does not fit its declared shape ("has 8 bytes of data, its shape [3] needs 12"), or
    /// nil when it does (also for data types the engine does not read, and for external data, checked when read).
    var dataSizeProblem: String? {
        guard let dtype = DType(onnx: Int(dataType)), !(hasDataLocation && dataLocation == .external) else { return nil }
        let shape = dims.map { Int($0) }
        guard shape.allSatisfy({ $0 >= 0 }) else { return "has a negative dimension \(shape)" }
        var count = 1
        for d in shape {
            let (p, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow, p < Int.max / 8 else { return "is too large: shape \(shape)" }
            count = p
        }
        let packing = dtype.elementsPerPackedByte
        let bytes = (count * dtype.byteSize + packing - 1) / packing
        if dtype == .string && hasRawData { return "is a string tensor with raw data (strings are in string_data)" }
        if hasRawData {
            return rawData.count == bytes ? nil : "has \(rawData.count) bytes of data, its shape \(shape) needs \(bytes)"
        }
        let values = Tensor.typedCount(self, dtype)
        let needed = packing > 1 ? bytes : count  // float8: a byte per element
        return values == needed ? nil : "has \(values) values, its shape \(shape) needs \(needed)"
    }
}
