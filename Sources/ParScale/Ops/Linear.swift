import CKernels
import Dispatch
import Foundation
import COpenBLAS

/// Matrix products. All P*B*S rows go through one call: the weight is read once for all of them.
enum LinearOps {
    /// Below this many rows the product is bound by reading the weight, and sgemm's packing of
    /// the weight (an extra read and write of it) costs more than the arithmetic: see `fewRows`.
    static let fewRowsLimit = 8

    /// out[rows, outDim] = x[rows, inDim] W[outDim, inDim]^T (+ bias) (+ out if accumulate)
    static func forward(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        out: UnsafeMutablePointer<Float>, rows: Int, inDim: Int, outDim: Int, accumulate: Bool
    ) {
        if rows <= fewRowsLimit {
            fewRows(x: x, weight: weight, bias: bias, out: out, rows: rows, inDim: inDim, outDim: outDim, accumulate: accumulate)
            return
        }
        var beta: Float = accumulate ? 1 : 0
        if let bias {
            if accumulate {
                for r in 0..<rows { axpy(1, bias, out + r * outDim, outDim) }
            } else {
                for r in 0..<rows { (out + r * outDim).update(from: bias, count: outDim) }
            }
            beta = 1
        }
        BLAS.sgemm(
            transA: false, transB: true, m: rows, n: outDim, k: inDim, a: x, lda: inDim, b: weight, ldb: inDim,
            beta: beta, c: out, ldc: outDim)
    }

    /// The same product for a handful of rows (decode: P*B rows): each weight row is streamed
    /// from memory once and dotted with every input row while it is in L1; output columns are
    /// split over the cores. Kernel in CKernels (AVX2+FMA), twin in `fewRowsReference`.
    static func fewRows(
        x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        out: UnsafeMutablePointer<Float>, rows: Int, inDim: Int, outDim: Int, accumulate: Bool
    ) {
        parallelFor(outDim, minimumPerChunk: max(1, 32768 / max(inDim, 1))) { range in
            ps_few_rows_nt(
                x, weight, bias, out, Int32(rows), Int32(inDim), Int32(outDim), Int32(range.lowerBound),
                Int32(range.upperBound), accumulate ? 1 : 0)
        }
    }
}

extension LinearOps {
    /// Gradients of out = x W^T + b: dX (=|+=) dOut W, dW += dOut^T x, dBias += column sums of dOut.
    static func backward(
        dOut: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        dX: UnsafeMutablePointer<Float>?, accumulateDX: Bool, dWeight: UnsafeMutablePointer<Float>?,
        dBias: UnsafeMutablePointer<Float>?, rows: Int, inDim: Int, outDim: Int
    ) {
        if let dX {
            BLAS.sgemm(
                transA: false, transB: false, m: rows, n: inDim, k: outDim, a: dOut, lda: outDim, b: weight, ldb: inDim,
                beta: accumulateDX ? 1 : 0, c: dX, ldc: inDim)
        }
        if let dWeight {
            BLAS.sgemm(
                transA: true, transB: false, m: outDim, n: inDim, k: rows, a: dOut, lda: outDim, b: x, ldb: inDim,
                beta: 1, c: dWeight, ldc: inDim)
        }
        if let dBias { columnSums(dOut, rows: rows, columns: outDim, into: dBias) }
    }

    /// into[c] += sum over rows of m[r, c]; rows split over cores with one partial sum each.
    static func columnSums(_ m: UnsafePointer<Float>, rows: Int, columns: Int, into: UnsafeMutablePointer<Float>) {
        rowsWithPartialSums(rows: rows, width: columns, minimumWork: 65536, into: into) { range, partial in
            for r in range { axpy(1, m + r * columns, partial, columns) }
        }
    }
}
