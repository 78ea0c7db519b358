extension OperatorSchema {
    static let activationSchemas: [OperatorSchema] = []
}
