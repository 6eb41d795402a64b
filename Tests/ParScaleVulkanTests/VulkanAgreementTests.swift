import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleVulkan
import TestSupport

/// Ops of the Vulkan backend (lavapipe) against the CPU backend, on random inputs of awkward sizes
/// and offsets into shared buffers (ggml's test-backend-ops style): helpers, no tests.
class VulkanAgreementTestCase: ValidatedVulkanTestCase {
    var vulkan: VulkanBackend!
    let cpu = CPUBackend()
    var rng = SeededGenerator(seed: 31)

    override func setUpWithError() throws {
        vulkan = try VulkanBackend(device: lavapipeDevice())
    }

    /// The same random values in a tensor of each backend, at offset `pad` of a larger buffer.
    func pair(_ count: Int, pad: Int = 5, scale: Float = 1) -> (Tensor, Tensor) {
        let values = (0..<count).map { _ in (rng.nextUniform() - 0.5) * 2 * scale }
        let c = cpu.allocate(pad + count).slice(pad, count), v = vulkan.allocate(pad + count).slice(pad, count)
        values.withUnsafeBufferPointer { cpu.upload($0, to: c); vulkan.upload($0, to: v) }
        return (c, v)
    }

    func check(_ c: Tensor, _ v: Tensor, _ what: String, tolerance: Double = 1e-5, file: StaticString = #filePath, line: UInt = #line) {
        var a = [Float](repeating: 0, count: c.count), b = a
        a.withUnsafeMutableBufferPointer { cpu.download(c, into: $0) }
        b.withUnsafeMutableBufferPointer { vulkan.download(v, into: $0) }
        assertClose(b, a, what, tolerance: tolerance, file: file, line: line)
    }
}

/// Every forward op against the CPU backend.
final class VulkanAgreementTests: VulkanAgreementTestCase {

    func testRMSNormSwiGLUSiLU() {
        let (rows, dim) = (7, 45)
        let (x, xv) = pair(rows * dim), (w, wv) = pair(dim), (o, ov) = pair(rows * dim)
        cpu.rmsNorm(x, weight: w, out: o, rows: rows, dim: dim, eps: 1e-6)
        vulkan.rmsNorm(xv, weight: wv, out: ov, rows: rows, dim: dim, eps: 1e-6)
        check(o, ov, "rms_norm")
        let (gu, guv) = pair(rows * 2 * dim, scale: 4), (s, sv) = pair(rows * dim)
        cpu.swiglu(gu, out: s, rows: rows, dim: dim)
        vulkan.swiglu(guv, out: sv, rows: rows, dim: dim)
        check(s, sv, "swiglu")
        cpu.silu(gu, out: gu)
        vulkan.silu(guv, out: guv)
        check(gu, guv, "silu")
    }

    func testRoPEStoreKVFillPrefixAttention() {
        // 3 rows (P = 3 streams, B = 1), 5 new tokens after 2 cached, 6 heads over 2 kv heads, hd 10, T = 3.
        let shape = AttentionShape(rows: 3, newTokens: 5, startPosition: 2, heads: 6, kvHeads: 2, headDim: 10, prefixTokens: 3, cacheCapacity: 3 + 9)
        let (qkv, qkvv) = pair(shape.rows * shape.newTokens * shape.qkvStride)
        cpu.rope(qkv: qkv, shape: shape, theta: 10000)
        vulkan.rope(qkv: qkvv, shape: shape, theta: 10000)
        check(qkv, qkvv, "rope")
        let cacheCount = shape.rows * shape.kvHeads * shape.cacheCapacity * shape.headDim
        let (k, kv) = pair(cacheCount), (v, vv) = pair(cacheCount)
        let (prefix, prefixv) = pair(3 * shape.kvHeads * shape.prefixTokens * shape.headDim)
        cpu.fillPrefix(prefix: prefix, cache: k, streams: 3, batch: 1, shape: shape)
        vulkan.fillPrefix(prefix: prefixv, cache: kv, streams: 3, batch: 1, shape: shape)
        check(k, kv, "fill_prefix")
        cpu.storeKV(qkv: qkv, keys: k, values: v, shape: shape)
        vulkan.storeKV(qkv: qkvv, keys: kv, values: vv, shape: shape)
        check(k, kv, "store_kv keys")
        check(v, vv, "store_kv values")
        let (o, ov) = pair(shape.rows * shape.newTokens * shape.heads * shape.headDim)
        cpu.attention(qkv: qkv, keys: k, values: v, out: o, logSumExp: nil, shape: shape)
        vulkan.attention(qkv: qkvv, keys: kv, values: vv, out: ov, logSumExp: nil, shape: shape)
        check(o, ov, "attention")
    }

    func testGatherCopyRepeatInterleaveMix() {
        let (table, tablev) = pair(11 * 9)
        let (o, ov) = pair(4 * 9)
        cpu.embed(ids: [3, 0, 10, 3], table: table, out: o, dim: 9)
        vulkan.embed(ids: [3, 0, 10, 3], table: tablev, out: ov, dim: 9)
        check(o, ov, "embed")
        let (r, rv) = pair(3 * o.count)
        cpu.repeatRows(o, times: 3, out: r)
        vulkan.repeatRows(ov, times: 3, out: rv)
        check(r, rv, "repeat_rows")
        let (g, gv) = pair(2 * 9)
        cpu.gatherRows(r, rowIndices: [11, 2], out: g, dim: 9)
        vulkan.gatherRows(rv, rowIndices: [11, 2], out: gv, dim: 9)
        check(g, gv, "gather_rows")
        cpu.copy(g, to: o.slice(0, g.count))
        vulkan.copy(gv, to: ov.slice(0, gv.count))
        check(o, ov, "copy")
        let (P, n, H) = (3, 4, 9)
        let (feat, featv) = pair(n * P * H)
        cpu.interleaveStreams(r, out: feat, streams: P, rowsPerStream: n, dim: H)
        vulkan.interleaveStreams(rv, out: featv, streams: P, rowsPerStream: n, dim: H)
        check(feat, featv, "interleave")
        let (logits, logitsv) = pair(n * P, scale: 3), (w, wv) = pair(n * P), (out, outv) = pair(n * H)
        cpu.aggregation(r, logits: logits, weights: w, out: out, streams: P, rowsPerStream: n, dim: H, smoothing: 0.1)
        vulkan.aggregation(rv, logits: logitsv, weights: wv, out: outv, streams: P, rowsPerStream: n, dim: H, smoothing: 0.1)
        check(w, wv, "mix weights")
        check(out, outv, "mix")
    }
}
