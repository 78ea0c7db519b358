extension OperatorSchema {
    static let linearSchemas: [OperatorSchema] = []
}
