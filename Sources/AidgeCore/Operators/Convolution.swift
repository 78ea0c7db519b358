extension OperatorSchema {
    static let convolutionSchemas: [OperatorSchema] = []
}
