extension OperatorSchema {
    static let shapeSchemas: [OperatorSchema] = []
}
