extension OperatorSchema {
    static let dataSchemas: [OperatorSchema] = []
}
