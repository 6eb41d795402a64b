import COpenBLAS

/// Matrix products through OpenBLAS sgemm. All P*B*S rows go through one call.
enum LinearOps {
    /// out[rows, outDim] = x[rows, inDim] W[outDim, inDim]^T (+ bias) (+ out if accumulate)
    static func forward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        out: UnsafeMutablePointer<Float>, rows: Int, inDim: Int, outDim: Int, accumulate: Bool
    ) {
        var beta: Float = accumulate ? 1 : 0
        if let bias {
            if accumulate {
                for r in 0..<rows { axpy(1, bias, out + r * outDim, outDim) }
            } else {
                for r in 0..<rows { (out + r * outDim).update(from: bias, count: outDim) }
            }
            beta = 1
        }
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outDim), Int32(inDim),
            1, x, Int32(inDim), weight, Int32(inDim), beta, out, Int32(outDim))
    }
}
