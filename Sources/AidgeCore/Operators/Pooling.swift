extension OperatorSchema {
    static let poolingSchemas: [OperatorSchema] = []
}
