/// RMSNorm in float32: y = x / sqrt(mean(x^2) + eps) * weight  (Qwen2RMSNorm).
enum RMSNormOps {
    static func forward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
        rows: Int, dim: Int, eps: Float
    ) {
        parallelFor(rows, minimumPerChunk: max(1, 16384 / dim)) { range in
            for r in range {
                let xr = x + r * dim, yr = out + r * dim
                let inverseRMS = 1 / (dot(xr, xr, dim) / Float(dim) + eps).squareRoot()
                for i in 0..<dim { yr[i] = weight[i] * (xr[i] * inverseRMS) }
            }
        }
    }
}
