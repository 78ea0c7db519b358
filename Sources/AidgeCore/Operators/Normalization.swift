extension OperatorSchema {
    static let normalizationSchemas: [OperatorSchema] = []
}
