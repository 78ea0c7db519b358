import AidgeCore

/// Copies between device tensors of any strides (a gather from the source's strides into the destination's):
/// makes views contiguous, and runs Transpose.
enum StridedCopy {
    static func source(_ bytes: Int) -> String {
        let type = ["", "unsigned char", "unsigned short", "", "unsigned int", "", "", "", "u64"][bytes]
        return indexingSource + """
            extern "C" __global__ void strided_copy_\(bytes)(
                    const \(type)* __restrict__ in, \(type)* __restrict__ out, i64 count, int rank,
                    dims shape, dims in_strides, dims out_strides) {
                for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < count; i += (i64)gridDim.x * blockDim.x) {
                    out[strided_offset(i, rank, shape, out_strides)] = in[strided_offset(i, rank, shape, in_strides)];
                }
            }
            """
    }

    static func run(on cuda: CUDADevice, from source: Tensor, to destination: Tensor) throws {
        let bytes = source.dtype.byteSize
        guard [1, 2, 4, 8].contains(bytes) else {
            throw AidgeError.unsupportedType("no CUDA copy for \(source.dtype)")
        }
        // Dimensions of size 1 carry no stride: dropping them keeps more tensors within the kernels' rank.
        let kept = source.shape.indices.filter { source.shape[$0] != 1 }
        let shape = kept.map { source.shape[$0] }
        let function = try cuda.function("strided_copy_\(bytes)", in: Self.source(bytes))
        let count = source.count
        try cuda.launch(
            function, grid: (cuda.blocks(for: count), 1, 1), block: (256, 1, 1),
            [.tensor(source), .tensor(destination), .int64(Int64(count)), .int32(Int32(shape.count)), .dims(shape),
             .dims(kept.map { source.strides[$0] }), .dims(kept.map { destination.strides[$0] })],
            name: "a strided copy")
    }
}
