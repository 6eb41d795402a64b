import Dispatch
import Foundation

/// Splits 0..<count into contiguous chunks run on all cores; small jobs stay on this thread
/// (a dispatch costs a few microseconds, more than a short loop).
@inline(__always)
func parallelFor(_ count: Int, minimumPerChunk: Int = 1, _ body: (Range<Int>) -> Void) {
    let workers = min(BLAS.workersHere, count / max(minimumPerChunk, 1))
    if workers <= 1 {
        body(0..<count)
        return
    }
    let chunks = workers * 4 < count ? workers * 4 : workers
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
        let lo = count * c / chunks, hi = count * (c + 1) / chunks
        if lo < hi { body(lo..<hi) }
    }
}

/// Eight floats from or to any address (the SIMD loops' one load and store).
@inline(__always)
func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self) }

@inline(__always)
func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self) }

/// Dot product with eight independent accumulators (Swift does not reassociate float sums,
/// so a plain loop would not vectorise).
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>()
    var i = 0
    while i + 8 <= n {
        acc += load8(a + i) * load8(b + i)
        i += 8
    }
    var sum = acc.sum()
    while i < n {
        sum += a[i] * b[i]
        i += 1
    }
    return sum
}

/// Sum of n floats with four independent SIMD accumulators (a streaming read of memory).
func sumOfFloats(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
    var i = 0
    while i + 32 <= n {
        let raw = UnsafeRawPointer(x + i)
        a0 += raw.loadUnaligned(fromByteOffset: 0, as: SIMD8<Float>.self)
        a1 += raw.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
        a2 += raw.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self)
        a3 += raw.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self)
        i += 32
    }
    var sum = ((a0 + a1) + (a2 + a3)).sum()
    while i < n {
        sum += x[i]
        i += 1
    }
    return sum
}

/// y += alpha * x
@inline(__always)
func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    let a = SIMD8<Float>(repeating: alpha)
    while i + 8 <= n {
        store8(load8(y + i) + a * load8(x + i), y + i)
        i += 8
    }
    while i < n {
        y[i] += alpha * x[i]
        i += 1
    }
}

/// Splits `rows` over the cores; each worker gets its rows and a zeroed `width`-float partial sum,
/// and the partials are then added into `into` (when given) in worker order, so the result does
/// not depend on scheduling.
func rowsWithPartialSums(
    rows: Int, width: Int, minimumWork: Int, into: UnsafeMutablePointer<Float>?,
    _ body: (Range<Int>, UnsafeMutablePointer<Float>) -> Void
) {
    let workers = min(BLAS.workersHere, max(1, rows * width / minimumWork))
    let partial = UnsafeMutablePointer<Float>.allocate(capacity: workers * width)
    partial.initialize(repeating: 0, count: workers * width)
    defer { partial.deallocate() }
    DispatchQueue.concurrentPerform(iterations: workers) { w in
        body((rows * w / workers)..<(rows * (w + 1) / workers), partial + w * width)
    }
    if let into { for w in 0..<workers { axpy(1, partial + w * width, into, width) } }
}
