extension OperatorSchema {
    static let elementwiseSchemas: [OperatorSchema] = []
}
