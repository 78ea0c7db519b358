import SwiftProtobuf

// onnx-data.proto's SequenceProto and OptionalProto, the containers that ONNX's test data stores, in the form
// protoc-gen-swift gives. Only their tensor, sequence and (in sequences) optional fields are declared: sparse
// tensors, maps and optionals of optionals stay unknown fields, and `ValueFile` refuses their element types.

/// `onnx.SequenceProto`: tensors, sequences or optionals of one element type.
struct Onnx_SequenceProto: Sendable {
    var name: String = ""
    /// `ContainerElement` raw value.
    var elemType: Int32 = 0
    var tensorValues: [Onnx_TensorProto] = []
    var sequenceValues: [Onnx_SequenceProto] = []
    var optionalValues: [Onnx_OptionalProto] = []
    var unknownFields = SwiftProtobuf.UnknownStorage()

    init() {}
}

/// `onnx.OptionalProto`: nothing, or one tensor or sequence.
struct Onnx_OptionalProto: Sendable {
    var name: String = ""
    /// `ContainerElement` raw value.
    var elemType: Int32 = 0
    var tensorValue: Onnx_TensorProto? = nil
    var sequenceValue: Onnx_SequenceProto? = nil
    var unknownFields = SwiftProtobuf.UnknownStorage()

    init() {}
}

/// The `DataType` enum that both messages declare.
enum ContainerElement: Int32 {
    case undefined = 0, tensor, sparseTensor, sequence, map, optional
}

extension Onnx_SequenceProto: SwiftProtobuf.Message, SwiftProtobuf._MessageImplementationBase {
    static let protoMessageName = "onnx.SequenceProto"

    mutating func decodeMessage<D: SwiftProtobuf.Decoder>(decoder: inout D) throws {
        while let fieldNumber = try decoder.nextFieldNumber() {
            switch fieldNumber {
            case 1: try decoder.decodeSingularStringField(value: &name)
            case 2: try decoder.decodeSingularInt32Field(value: &elemType)
            case 3: try decoder.decodeRepeatedMessageField(value: &tensorValues)
            case 5: try decoder.decodeRepeatedMessageField(value: &sequenceValues)
            case 7: try decoder.decodeRepeatedMessageField(value: &optionalValues)
            default: break
            }
        }
    }

    func traverse<V: SwiftProtobuf.Visitor>(visitor: inout V) throws {
        if !name.isEmpty { try visitor.visitSingularStringField(value: name, fieldNumber: 1) }
        try visitor.visitSingularInt32Field(value: elemType, fieldNumber: 2)
        if !tensorValues.isEmpty { try visitor.visitRepeatedMessageField(value: tensorValues, fieldNumber: 3) }
        if !sequenceValues.isEmpty { try visitor.visitRepeatedMessageField(value: sequenceValues, fieldNumber: 5) }
        if !optionalValues.isEmpty { try visitor.visitRepeatedMessageField(value: optionalValues, fieldNumber: 7) }
        try unknownFields.traverse(visitor: &visitor)
    }

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.name == rhs.name && lhs.elemType == rhs.elemType && lhs.tensorValues == rhs.tensorValues
            && lhs.sequenceValues == rhs.sequenceValues && lhs.optionalValues == rhs.optionalValues
            && lhs.unknownFields == rhs.unknownFields
    }
}

extension Onnx_OptionalProto: SwiftProtobuf.Message, SwiftProtobuf._MessageImplementationBase {
    static let protoMessageName = "onnx.OptionalProto"

    mutating func decodeMessage<D: SwiftProtobuf.Decoder>(decoder: inout D) throws {
        while let fieldNumber = try decoder.nextFieldNumber() {
            switch fieldNumber {
            case 1: try decoder.decodeSingularStringField(value: &name)
            case 2: try decoder.decodeSingularInt32Field(value: &elemType)
            case 3: try decoder.decodeSingularMessageField(value: &tensorValue)
            case 5: try decoder.decodeSingularMessageField(value: &sequenceValue)
            default: break
            }
        }
    }

    func traverse<V: SwiftProtobuf.Visitor>(visitor: inout V) throws {
        if !name.isEmpty { try visitor.visitSingularStringField(value: name, fieldNumber: 1) }
        try visitor.visitSingularInt32Field(value: elemType, fieldNumber: 2)
        if let tensorValue { try visitor.visitSingularMessageField(value: tensorValue, fieldNumber: 3) }
        if let sequenceValue { try visitor.visitSingularMessageField(value: sequenceValue, fieldNumber: 5) }
        try unknownFields.traverse(visitor: &visitor)
    }

    static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.name == rhs.name && lhs.elemType == rhs.elemType && lhs.tensorValue == rhs.tensorValue
            && lhs.sequenceValue == rhs.sequenceValue && lhs.unknownFields == rhs.unknownFields
    }
}
