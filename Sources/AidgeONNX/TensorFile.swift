import AidgeCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf

/// ONNX's own tensor files: a serialized `TensorProto` (`.pb`), as the ONNX test suite stores the inputs and
/// expected outputs of its cases. Every dtype the engine has goes in and out exactly (raw little-endian data).
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
}
