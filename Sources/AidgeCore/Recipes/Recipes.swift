/// Graph rewrites for inference. None runs implicitly: a graph that will be trained keeps its weights as they
/// are, and each recipe can be applied or skipped on its own.
public enum Recipes {
    /// Which recipes `optimizeForInference` applies.
    public struct Options: Sendable {
        public var removeIdentity = true
        public var removeDropout = true
        public var fuseBatchNorm = true
        public var fuseActivation = true
        public var fuseGelu = true
        public var constantFolding = true

        public init() {}
    }

    /// Applies the chosen recipes, in an order where each helps the next. Returns how many nodes each changed.
    @discardableResult
    public static func optimizeForInference(
        _ graph: GraphView, options: Options = Options(), backend: String = "cpu"
    ) throws -> [String: Int] {
        var changes: [String: Int] = [:]
        if options.removeIdentity { changes["remove_identity"] = try removeIdentity(graph) }
        if options.removeDropout { changes["remove_dropout"] = try removeDropout(graph) }
        if options.constantFolding { changes["constant_folding"] = try constantFolding(graph, backend: backend) }
        if options.fuseGelu { changes["fuse_gelu"] = try fuseGelu(graph) }
        if options.fuseBatchNorm { changes["fuse_batchnorm"] = try fuseBatchNorm(graph) }
        if options.fuseActivation { changes["fuse_activation"] = try fuseActivation(graph) }
        return changes
    }
}
