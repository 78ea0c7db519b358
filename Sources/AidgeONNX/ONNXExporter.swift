import AidgeCore
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf

extension ONNX {
    /// The opset whose forms the engine keeps its nodes in (the forms `OpsetAdapters` rewrite older ones to).
    public static let latestFormOpset = 21

    /// How a graph is written.
    public struct ExportOptions: Sendable {
        /// The default-domain opset; nil: the graph's imported one when every node can be written at it, else
        /// `latestFormOpset` (or the newest opset one of its operators needs).
        public var opset: Int?
        /// Whether tensors of `sizeThreshold` bytes or more go to one `<model file name>.data` file next to the
        /// model (ONNX's external data). Models whose tensors pass protobuf's 2 GB limit always do.
        public var externalData: Bool
        public var sizeThreshold: Int
        /// Shapes written for the graph inputs (one per input), instead of the declared ones.
        public var inputShapes: [[Dim]]?
        /// Shapes written for the graph outputs (one per output), instead of the inferred ones.
        public var outputShapes: [[Dim]]?

        public init(
            opset: Int? = nil, externalData: Bool = false, sizeThreshold: Int = 1024, inputShapes: [[Dim]]? = nil,
            outputShapes: [[Dim]]? = nil
        ) {
            self.opset = opset
            self.externalData = externalData
            self.sizeThreshold = sizeThreshold
            self.inputShapes = inputShapes
            self.outputShapes = outputShapes
        }
    }

    /// Writes `graph` as an ONNX model at `path`; with `externalData`, tensors of `sizeThreshold` bytes or more go
    /// to `<file name>.data` next to it.
    public static func export(
        _ graph: GraphView, path: String, opset: Int? = nil, externalData: Bool = false, sizeThreshold: Int = 1024
    ) throws {
        try export(graph, path: path, options: ExportOptions(opset: opset, externalData: externalData, sizeThreshold: sizeThreshold))
    }

    public static func export(_ graph: GraphView, path: String, options: ExportOptions) throws {
        var model = try modelProto(graph, options: options)
        if options.externalData || tensorBytes(model.graph) > protobufLimit {
            let location = (path.split(separator: "/").last.map(String.init) ?? "model.onnx") + ".data"
            var data: [UInt8] = []
            externalize(&model.graph, location: location, threshold: max(options.sizeThreshold, 0), into: &data)
            if !data.isEmpty { try FileIO.write(data, to: FileIO.directory(of: path) + "/" + location) }
        }
        try FileIO.write(try bytes(model), to: path)
    }

    /// The serialized model (every tensor inside it).
    public static func serialize(_ graph: GraphView, opset: Int? = nil) throws -> [UInt8] {
        try serialize(graph, options: ExportOptions(opset: opset))
    }

    public static func serialize(_ graph: GraphView, options: ExportOptions) throws -> [UInt8] {
        let model = try modelProto(graph, options: options)
        let size = tensorBytes(model.graph)
        guard size <= protobufLimit else {
            throw AidgeError.invalidArgument(
                "the model's tensors take \(size) bytes, past protobuf's 2 GB limit: export it to a file (external data)")
        }
        return try bytes(model)
    }

    /// The IR version a model of these opsets needs (ONNX's release table), at least 4 so that initializers need
    /// not be graph inputs.
    public static func irVersion(opsets: [String: Int]) throws -> Int {
        var ir = 4
        for (domain, version) in opsets {
            switch domain {
            case "":
                let table = [(9, 4), (10, 5), (11, 6), (14, 7), (18, 8), (20, 9), (22, 10), (23, 11), (24, 12), (27, 13), (28, 14)]
                guard version >= 1, let entry = table.first(where: { version <= $0.0 }) else {
                    throw AidgeError.invalidArgument("opset \(version) is not one the exporter knows (1 to \(maxSupportedOpset))")
                }
                ir = max(ir, entry.1)
            case "ai.onnx.ml":
                ir = max(ir, [1: 3, 2: 6, 3: 8, 4: 9, 5: 10][version] ?? 10)
            case "ai.onnx.preview.training":
                ir = max(ir, 7)
            default:
                break
            }
        }
        return ir
    }

    // MARK: - Building the model

    private static let protobufLimit = 2_000_000_000

    static func modelProto(_ graph: GraphView, options: ExportOptions) throws -> Onnx_ModelProto {
        if graph.holdsContainers {
            throw AidgeError.unsupported("exporting a graph that holds sequences or optionals is not supported")
        }
        if let opset = options.opset {
            return try modelProto(graph, opset: opset, options: options)
        }
        if let imported = graph.opsetImports[""] ?? graph.opsetImports["ai.onnx"] {
            do {
                return try modelProto(graph, opset: imported, options: options)
            } catch AidgeError.unsupported(_) {
                // A node cannot be written at the imported opset (an engine form or operator of a newer one).
            }
        }
        let needed = operatorTypes(graph).compactMap { ONNXOperatorSchema.all[$0]?.first?.sinceVersion }.max() ?? 1
        return try modelProto(graph, opset: max(latestFormOpset, needed), options: options)
    }

    private static func modelProto(_ graph: GraphView, opset: Int, options: ExportOptions) throws -> Onnx_ModelProto {
        guard (1...maxSupportedOpset).contains(opset) else {
            throw AidgeError.invalidArgument("opset \(opset) is not one the exporter knows (1 to \(maxSupportedOpset))")
        }
        var exporter = GraphExporter(
            graph, opset: opset, names: ExportNames(graph), inputShapes: options.inputShapes,
            outputShapes: options.outputShapes)
        var model = Onnx_ModelProto()
        model.graph = try exporter.export()
        var opsets = ["": opset]
        for domain in domains(model.graph) where opsets[domain] == nil {
            opsets[domain] = graph.opsetImports[domain] ?? 1
        }
        model.irVersion = Int64(try irVersion(opsets: opsets))
        model.producerName = "aidge-swift"
        model.opsetImport = opsets.sorted { $0.key < $1.key }.map { domain, version in
            var entry = Onnx_OperatorSetIdProto()
            entry.domain = domain
            entry.version = Int64(version)
            return entry
        }
        return model
    }

    private static func bytes(_ model: Onnx_ModelProto) throws -> [UInt8] {
        do {
            return try model.serializedBytes()
        } catch {
            throw AidgeError.invalidArgument("cannot serialize the model: \(error)")
        }
    }

    /// The default-domain operator types of `graph` and its subgraphs.
    private static func operatorTypes(_ graph: GraphView) -> Set<String> {
        var types = Set<String>()
        for node in graph.nodes where node.op.domain.isEmpty {
            types.insert(node.type)
            for case .graph(let subgraph) in node.op.attributes.values.values { types.formUnion(operatorTypes(subgraph.graph)) }
        }
        return types
    }

    /// The domains the nodes of `graph` and its subgraphs use, other than the default one.
    private static func domains(_ graph: Onnx_GraphProto) -> Set<String> {
        var found = Set<String>()
        for node in graph.node {
            if !node.domain.isEmpty { found.insert(node.domain) }
            for attribute in node.attribute where attribute.hasG { found.formUnion(domains(attribute.g)) }
        }
        return found
    }

    private static func tensorBytes(_ graph: Onnx_GraphProto) -> Int {
        var total = graph.initializer.reduce(0) { $0 + $1.rawData.count }
        for node in graph.node {
            for attribute in node.attribute {
                total += attribute.t.rawData.count
                if attribute.hasG { total += tensorBytes(attribute.g) }
            }
        }
        return total
    }

    /// Moves the initializers of `threshold` bytes or more (subgraphs' too) into `data`, each at an offset aligned
    /// to 64 bytes, and points them at `location`.
    private static func externalize(_ graph: inout Onnx_GraphProto, location: String, threshold: Int, into data: inout [UInt8]) {
        for i in graph.initializer.indices where graph.initializer[i].rawData.count >= threshold {
            var tensor = graph.initializer[i]
            data += [UInt8](repeating: 0, count: (64 - data.count % 64) % 64)
            let offset = data.count
            data += tensor.rawData
            tensor.externalData = [("location", location), ("offset", "\(offset)"), ("length", "\(tensor.rawData.count)")]
                .map { key, value in
                    var entry = Onnx_StringStringEntryProto()
                    entry.key = key
                    entry.value = value
                    return entry
                }
            tensor.clearRawData()
            tensor.dataLocation = .external
            graph.initializer[i] = tensor
        }
        for n in graph.node.indices {
            for a in graph.node[n].attribute.indices where graph.node[n].attribute[a].hasG {
                externalize(&graph.node[n].attribute[a].g, location: location, threshold: threshold, into: &data)
            }
        }
    }
}
