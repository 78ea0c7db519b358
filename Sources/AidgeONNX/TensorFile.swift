import AidgeCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf

/// ONNX's own tensor files: a serialized `TensorProto` (`.pb`), as the ONNX test suite stores the inputs and
/// expected outputs of its cases, or a `SequenceProto` / `OptionalProto` for the containers. Every dtype the engine
/// has goes in and out exactly (raw little-endian data).
public enum TensorFile {
    /// Reads the tensor in the `.pb` file at `path` (raw, typed or external data next to the file).
    public static func read(_ path: String) throws -> Tensor {
        do {
            return try decode(FileIO.read(path), baseDirectory: FileIO.directory(of: path))
        } catch let error as AidgeError {
            throw error.prefixed(path)
        }
    }

    /// The tensor of a serialized `TensorProto`; external data paths are relative to `baseDirectory`.
    public static func decode(_ bytes: [UInt8], baseDirectory: String = ".") throws -> Tensor {
        let proto: Onnx_TensorProto
        do {
            proto = try Onnx_TensorProto(serializedBytes: bytes)
        } catch {
            throw AidgeError.invalidModel("not an ONNX tensor (the TensorProto does not parse: \(error))")
        }
        return try Tensor(onnx: proto, baseDirectory: baseDirectory)
    }

    /// A serialized `TensorProto` named `name` holding `tensor`.
    public static func encode(_ tensor: Tensor, name: String = "") throws -> [UInt8] {
        do {
            return try Onnx_TensorProto(tensor, name: name).serializedBytes()
        } catch {
            throw AidgeError.invalidArgument("cannot serialize tensor '\(name)': \(error)")
        }
    }

    /// Writes `tensor` as a `.pb` file named `name` inside.
    public static func write(_ tensor: Tensor, name: String = "", to path: String) throws {
        try FileIO.write(try encode(tensor, name: name), to: path)
    }

    /// Reads the `.pb` file at `path` as a value of `kind`: a TensorProto, a SequenceProto or an OptionalProto.
    public static func readValue(_ path: String, kind: ValueKind) throws -> Value {
        do {
            return try decodeValue(FileIO.read(path), kind: kind, baseDirectory: FileIO.directory(of: path))
        } catch let error as AidgeError {
            throw error.prefixed(path)
        }
    }

    /// The value of a serialized TensorProto, SequenceProto or OptionalProto, by `kind`.
    public static func decodeValue(_ bytes: [UInt8], kind: ValueKind, baseDirectory: String = ".") throws -> Value {
        do {
            switch kind {
            case .tensor:
                return .tensor(try decode(bytes, baseDirectory: baseDirectory))
            case .sequence:
                return .sequence(try sequence(Onnx_SequenceProto(serializedBytes: bytes), baseDirectory))
            case .optional:
                let proto = try Onnx_OptionalProto(serializedBytes: bytes)
                switch ContainerElement(rawValue: proto.elemType) {
                case .tensor?:
                    return try proto.tensorValue.map { .tensor(try Tensor(onnx: $0, baseDirectory: baseDirectory)) } ?? .absent
                case .sequence?:
                    return try proto.sequenceValue.map { .sequence(try sequence($0, baseDirectory)) } ?? .absent
                case .undefined?:
                    return .absent
                default:
                    throw AidgeError.unsupportedType("an optional of element type \(proto.elemType) is not supported")
                }
            }
        } catch let error as SwiftProtobuf.BinaryDecodingError {
            throw AidgeError.invalidModel("not an ONNX \(kind) (the protobuf does not parse: \(error))")
        }
    }

    private static func sequence(_ proto: Onnx_SequenceProto, _ baseDirectory: String) throws -> TensorSequence {
        guard ContainerElement(rawValue: proto.elemType) == .tensor
            || (proto.elemType == 0 && proto.sequenceValues.isEmpty && proto.optionalValues.isEmpty)
        else {
            throw AidgeError.unsupportedType("a sequence of element type \(proto.elemType) is not supported (tensors are)")
        }
        let tensors = try proto.tensorValues.map { try Tensor(onnx: $0, baseDirectory: baseDirectory) }
        return try TensorSequence(dtype: tensors.first?.dtype ?? .float32, tensors)
    }

    /// A serialized TensorProto, SequenceProto or OptionalProto named `name`, as `kind` declares `value`.
    public static func encodeValue(_ value: Value, kind: ValueKind, name: String = "") throws -> [UInt8] {
        do {
            switch (kind, value) {
            case (.tensor, .tensor(let t)):
                return try encode(t, name: name)
            case (.sequence, .sequence(let s)):
                return try sequence(s, name: name).serializedBytes()
            case (.optional(let inner), _):
                var proto = Onnx_OptionalProto()
                proto.name = name
                proto.elemType = (inner == .tensor ? ContainerElement.tensor : .sequence).rawValue
                switch value {
                case .tensor(let t): proto.tensorValue = Onnx_TensorProto(t, name: name)
                case .sequence(let s): proto.sequenceValue = try sequence(s, name: name)
                case .absent: break
                }
                return try proto.serializedBytes()
            default:
                throw AidgeError.invalidArgument("'\(name)' is declared as \(kind) but holds \(value.summary)")
            }
        } catch let error as SwiftProtobuf.BinaryEncodingError {
            throw AidgeError.invalidArgument("cannot serialize '\(name)': \(error)")
        }
    }

    private static func sequence(_ s: TensorSequence, name: String) throws -> Onnx_SequenceProto {
        var proto = Onnx_SequenceProto()
        proto.name = name
        proto.elemType = ContainerElement.tensor.rawValue
        proto.tensorValues = s.tensors.map { Onnx_TensorProto($0, name: "") }
        return proto
    }

    /// Writes `value` as a `.pb` file of the proto that `kind` declares.
    public static func writeValue(_ value: Value, kind: ValueKind, name: String = "", to path: String) throws {
        try FileIO.write(try encodeValue(value, kind: kind, name: name), to: path)
    }
}
