// The library product for Swift users: the core, the CPU backend and ONNX import in one import.
@_exported import AidgeCore
@_exported import AidgeCPU
@_exported import AidgeONNX
