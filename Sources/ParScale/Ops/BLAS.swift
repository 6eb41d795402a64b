import CKernels
import COpenBLAS
import Dispatch
import Foundation

/// sgemm on all cores, parallelised here rather than inside OpenBLAS: OpenBLAS runs one thread
/// per call (set once, see `configureThreads`), so calls made from several threads at once (the
/// attention's many small products) run side by side instead of queueing for its thread pool.
/// Measured on 2 cores: 400 products of 512x304x32 took 30 ms with OpenBLAS threads (sequential
/// or concurrent callers alike) and 17.6 ms with single-threaded calls from 2 threads.
enum BLAS {
    static let configureThreads: Void = { openblas_set_num_threads(1) }()
    /// Cores used by every parallel loop, read once: `activeProcessorCount` opens two cgroup files
    /// per call, and the parallel loops asked it about 400 times a second (issue #19).
    static let workers = ProcessInfo.processInfo.activeProcessorCount
    /// Cores this thread's loops and products may spread over: 1 on a data-parallel training worker
    /// (`ParScaleModel.recordGradientsDataParallel`), which has a core to itself, else `workers`.
    @inline(__always) static var workersHere: Int { ps_this_thread_serial() != 0 ? 1 : workers }

    /// C = alpha op(A) op(B) + beta C, row-major, split over the cores along M or N.
    static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = configureThreads
        let flops = 2 * m * n * k
        let parts = flops < 4_000_000 ? 1 : workersHere
        if parts == 1 {
            single(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            return
        }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            if m >= n {
                let lo = m * p / parts, hi = m * (p + 1) / parts
                guard lo < hi else { return }
                single(transA, transB, hi - lo, n, k, alpha, transA ? a + lo : a + lo * lda, lda, b, ldb, beta, c + lo * ldc, ldc)
            } else {
                let lo = n * p / parts, hi = n * (p + 1) / parts
                guard lo < hi else { return }
                single(transA, transB, m, hi - lo, k, alpha, a, lda, transB ? b + lo * ldb : b + lo, ldb, beta, c + lo, ldc)
            }
        }
    }

    /// One single-threaded OpenBLAS call (safe to make from several threads at once).
    @inline(__always)
    static func single(
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: UnsafePointer<Float>,
        _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        _ = configureThreads
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n),
            Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
