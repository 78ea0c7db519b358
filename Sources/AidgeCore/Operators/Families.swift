extension OperatorSchema {
    /// The operator families of the core, one file each under `Operators/`.
    static let families: [[OperatorSchema]] = [
        dataSchemas,
        elementwiseSchemas,
        activationSchemas,
        linearSchemas,
        einsumSchemas,
        convolutionSchemas,
        poolingSchemas,
        normalizationSchemas,
        reductionSchemas,
        resizeSchemas,
        signalSchemas,
        controlFlowSchemas,
        dataDependentSchemas,
        optimizerSchemas,
        shapeSchemas,
        indexingSchemas,
        recurrentSchemas,
        lossSchemas,
        attentionSchemas,
        flexAttentionSchemas,
        quantizationSchemas,
        textSchemas,
        randomSchemas,
        machineLearningSchemas,
    ]
}
