// The library product for Swift users: the core, the CPU backend, ONNX import and training in one import.
@_exported import AidgeCore
@_exported import AidgeCPU
@_exported import AidgeCUDA
@_exported import AidgeONNX
@_exported import AidgeLearning
