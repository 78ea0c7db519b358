extension OperatorSchema {
    static let reductionSchemas: [OperatorSchema] = []
}
