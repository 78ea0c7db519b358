extension OperatorSchema {
    static let indexingSchemas: [OperatorSchema] = []
}
