import CKernels
import XCTest

@testable import ParScale
import TestSupport

/// CPU kernels against plain Double arithmetic on awkward sizes.
final class OpsTests: XCTestCase {
    func random(_ count: Int, _ rng: inout SeededGenerator) -> [Float] { (0..<count).map { _ in rng.nextUniform() * 2 - 1 } }

    /// out = x W^T + bias (+ previous out), in Double.
    func expected(_ x: [Float], _ w: [Float], _ bias: [Float]?, _ previous: [Float]?, rows: Int, k: Int, n: Int) -> [Float] {
        (0..<rows * n).map { idx in
            let m = idx / n, j = idx % n
            var s = (0..<k).reduce(0.0) { $0 + Double(x[m * k + $1]) * Double(w[j * k + $1]) }
            s += Double(bias?[j] ?? 0) + Double(previous?[idx] ?? 0)
            return Float(s)
        }
    }

    func testLinearMatchesDoubleForFewAndManyRows() {
        var rng = SeededGenerator(seed: 11)
        for (rows, k, n) in [(1, 13, 5), (2, 37, 9), (3, 64, 7), (5, 100, 33), (8, 1024, 12), (9, 40, 6), (31, 77, 19)] {
            for (useBias, accumulate) in [(false, false), (true, false), (true, true), (false, true)] {
                let x = random(rows * k, &rng), w = random(n * k, &rng), bias = random(n, &rng), previous = random(rows * n, &rng)
                var out = previous
                x.withUnsafeBufferPointer { xp in
                    w.withUnsafeBufferPointer { wp in
                        bias.withUnsafeBufferPointer { bp in
                            out.withUnsafeMutableBufferPointer { op in
                                LinearOps.forward(
                                    x: xp.baseAddress!, weight: wp.baseAddress!, bias: useBias ? bp.baseAddress! : nil,
                                    out: op.baseAddress!, rows: rows, inDim: k, outDim: n, accumulate: accumulate)
                            }
                        }
                    }
                }
                let want = expected(x, w, useBias ? bias : nil, accumulate ? previous : nil, rows: rows, k: k, n: n)
                assertClose(out, want, "linear rows \(rows) k \(k) n \(n) bias \(useBias) acc \(accumulate)", tolerance: 1e-5)
            }
        }
    }

    func testVectorisedFewRowsKernelAgreesWithItsPlainTwin() {
        var rng = SeededGenerator(seed: 12)
        for (rows, k, n) in [(1, 9, 11), (3, 33, 10), (8, 257, 13)] {
            let x = random(rows * k, &rng), w = random(n * k, &rng), bias = random(n, &rng)
            var fast = [Float](repeating: 0, count: rows * n), plain = fast
            ps_few_rows_nt(x, w, bias, &fast, Int32(rows), Int32(k), Int32(n), 0, Int32(n), 0)
            ps_few_rows_nt_plain(x, w, bias, &plain, Int32(rows), Int32(k), Int32(n), 0, Int32(n), 0)
            assertClose(fast, plain, "few rows \(rows)x\(k)x\(n)", tolerance: 1e-5)
        }
    }

    /// The few-rows kernel (4 x 3 register tiles and their 1-3 row and single-column remainders,
    /// weights prefetched ahead) against OpenBLAS sgemm for every row count it takes, on sizes
    /// that are not multiples of the vector width or of the tile, and on a column range that
    /// starts and ends mid-matrix (how the cores split the columns). K = 2900 and 4099 take the
    /// pass over blocks of columns for 3 rows and more (for 8 rows the last block is 340 or 3 columns).
    func testFewRowsKernelAgreesWithSgemmOnOddShapes() {
        var rng = SeededGenerator(seed: 14)
        for rows in 1...LinearOps.fewRowsLimit {
            for (k, n) in [(7, 1), (13, 4), (45, 5), (67, 11), (1027, 19), (2900, 9), (4099, 6)] {
                let x = random(rows * k, &rng), w = random(n * k, &rng), bias = random(n, &rng), previous = random(rows * n, &rng)
                for accumulate in [false, true] {
                    var fast = previous, blas = previous
                    let (j0, j1) = n > 4 ? (1, n - 1) : (0, n)
                    ps_few_rows_nt(x, w, bias, &fast, Int32(rows), Int32(k), Int32(n), Int32(j0), Int32(j1), accumulate ? 1 : 0)
                    for m in 0..<rows {
                        for j in 0..<n where j < j0 || j >= j1 { blas[m * n + j] = previous[m * n + j] }
                        for j in j0..<j1 { blas[m * n + j] = (accumulate ? previous[m * n + j] : 0) + bias[j] }
                    }
                    x.withUnsafeBufferPointer { xp in
                        w.withUnsafeBufferPointer { wp in
                            blas.withUnsafeMutableBufferPointer { bp in
                                BLAS.single(
                                    false, true, rows, j1 - j0, k, 1, xp.baseAddress!, k, wp.baseAddress! + j0 * k, k, 1,
                                    bp.baseAddress! + j0, n)
                            }
                        }
                    }
                    assertClose(fast, blas, "few rows \(rows)x\(k)x\(n) columns \(j0)..<\(j1) accumulate \(accumulate)", tolerance: 1e-5)
                }
            }
        }
    }

    /// Each x86 path of the few-rows kernel on its own (ps_few_rows_nt_isa: 1 AVX2, 2 AVX-512 where
    /// this CPU has it; the dispatch takes AVX-512 unless PARSCALE_NO_AVX512 is set, so without this
    /// the AVX2 tiles would go untested here) against the plain twin: every row count 1-8, odd
    /// output counts, column ranges that start and end mid-matrix, K below and between the vector
    /// widths (1, 15, 17, 33: the masked tail) and K that takes the column blocks for 3 rows and
    /// more (2900, 4099), both with and without bias and accumulation. Where the CPU lacks a path
    /// the call must say so (0) and leave the output alone.
    func testFewRowsKernelPathsEachAgreeWithThePlainTwin() {
        var rng = SeededGenerator(seed: 15)
        #if arch(x86_64)
            let available = [1: ps_kernels_use_avx2() == 1, 2: ps_kernels_have_avx512() == 1]
            XCTAssertTrue(available[1]!, "x86-64 machines running the suite have AVX2 + FMA")
            XCTAssertEqual(ps_kernels_use_avx512(), ps_kernels_have_avx512() == 1 && getenv("PARSCALE_NO_AVX512") == nil ? 1 : 0)
        #else
            let available = [1: false, 2: false]
        #endif
        for isa in [1, 2] {
            for rows in 1...LinearOps.fewRowsLimit {
                for (k, n) in [(1, 3), (15, 7), (17, 13), (33, 9), (1024, 11), (1029, 6), (2900, 9), (4099, 5)] {
                    let x = random(rows * k, &rng), w = random(n * k, &rng), bias = random(n, &rng), previous = random(rows * n, &rng)
                    let (j0, j1) = n > 4 ? (1, n - 1) : (0, n)
                    for (useBias, accumulate) in [(true, false), (false, true)] {
                        var fast = previous, plain = previous
                        let ran = bias.withUnsafeBufferPointer { bp in
                            ps_few_rows_nt_isa(
                                x, w, useBias ? bp.baseAddress : nil, &fast, Int32(rows), Int32(k), Int32(n), Int32(j0), Int32(j1),
                                accumulate ? 1 : 0, Int32(isa))
                        }
                        let what = "isa \(isa) rows \(rows) k \(k) n \(n) columns \(j0)..<\(j1) bias \(useBias) accumulate \(accumulate)"
                        XCTAssertEqual(ran == 1, available[isa]!, what)
                        guard ran == 1 else {
                            XCTAssertEqual(fast, previous, "\(what): a path this CPU lacks computed something")
                            continue
                        }
                        bias.withUnsafeBufferPointer { bp in
                            ps_few_rows_nt_plain(
                                x, w, useBias ? bp.baseAddress : nil, &plain, Int32(rows), Int32(k), Int32(n), Int32(j0), Int32(j1),
                                accumulate ? 1 : 0)
                        }
                        assertClose(fast, plain, what, tolerance: 1e-5)
                    }
                }
            }
        }
    }

    /// Host buffers: zero-filled and 64-byte aligned; from 64 MiB on (parameters) 2 MiB aligned,
    /// as transparent huge pages need, and writable to their last float.
    func testHostBuffersAreZeroedAndAlignedForHugePages() {
        for count in [1, 1000, HostBuffer.hugePageThreshold / 4 - 1, HostBuffer.hugePageThreshold / 4 + 5] {
            let buffer = HostBuffer(count: count)
            let address = Int(bitPattern: buffer.pointer)
            XCTAssertEqual(address % 64, 0, "\(count) floats")
            if count * 4 >= HostBuffer.hugePageThreshold { XCTAssertEqual(address % HostBuffer.hugePage, 0, "\(count) floats") }
            XCTAssertEqual(sumOfFloats(buffer.pointer, count), 0, "\(count) floats zeroed")
            buffer.pointer[count - 1] = 1
            XCTAssertEqual(sumOfFloats(buffer.pointer, count), 1)
        }
    }

    /// Feeding a prompt in chunks through the cache gives the same logits as one pass.
    func testChunkedPrefillEqualsOnePass() throws {
        let dir = try XCTUnwrap(TestPaths.referenceModels.first { $0.lastPathComponent.hasPrefix("p4") })
        let model = try Checkpoint.load(dir.path, backend: CPUBackend())
        let ids: [[Int32]] = [(0..<9).map { Int32($0 * 17 % 256) }, (0..<9).map { Int32($0 * 29 % 256) }]
        let whole = try model.forward(tokens: ids, cache: model.makeCache(batch: 2, capacity: 9))
        let cache = try model.makeCache(batch: 2, capacity: 9)
        let first = try model.forward(tokens: ids.map { Array($0[0..<4]) }, cache: cache)
        let second = try model.forward(tokens: ids.map { Array($0[4...]) }, cache: cache)
        let V = model.config.vocabSize
        var chunked: [Float] = []
        for b in 0..<2 {
            chunked += first[(b * 4 * V)..<((b + 1) * 4 * V)]
            chunked += second[(b * 5 * V)..<((b + 1) * 5 * V)]
        }
        assertClose(chunked, whole, "chunked prefill", tolerance: 1e-5)
        XCTAssertThrowsError(try model.forward(tokens: [[1], [2]], cache: cache)) { error in
            XCTAssertTrue("\(error)".contains("context full"))
        }
    }

    /// The sgemm attention (forward and backward) against its plain dot-product twin; one new
    /// token per row (decode) takes the direct kernel, whose plain C twin is checked as well, on head
    /// sizes with and without a tail past the vector width and groups of 1-4 query heads.
    func testAttentionAgreesWithItsPlainTwin() {
        var rng = SeededGenerator(seed: 13)
        let shapes = [
            AttentionShape(rows: 3, newTokens: 7, startPosition: 0, heads: 4, kvHeads: 2, headDim: 6, prefixTokens: 3, cacheCapacity: 10),
            AttentionShape(rows: 2, newTokens: 5, startPosition: 4, heads: 3, kvHeads: 1, headDim: 10, prefixTokens: 0, cacheCapacity: 11),
            AttentionShape(rows: 4, newTokens: 1, startPosition: 6, heads: 2, kvHeads: 2, headDim: 8, prefixTokens: 5, cacheCapacity: 13),
            AttentionShape(rows: 3, newTokens: 1, startPosition: 5, heads: 8, kvHeads: 2, headDim: 20, prefixTokens: 4, cacheCapacity: 12),
            AttentionShape(rows: 2, newTokens: 1, startPosition: 0, heads: 4, kvHeads: 1, headDim: 64, prefixTokens: 0, cacheCapacity: 3),
            AttentionShape(rows: 1, newTokens: 1, startPosition: 2, heads: 3, kvHeads: 1, headDim: 13, prefixTokens: 7, cacheCapacity: 11),
            // More queries than `AttentionOps.queryBlock`, not a multiple of it: three blocks.
            AttentionShape(rows: 2, newTokens: 150, startPosition: 3, heads: 2, kvHeads: 1, headDim: 8, prefixTokens: 4, cacheCapacity: 160),
        ]
        for s in shapes {
            let qkv = random(s.rows * s.newTokens * s.qkvStride, &rng)
            let cacheCount = s.rows * s.kvHeads * s.cacheCapacity * s.headDim
            var keys = random(cacheCount, &rng), values = random(cacheCount, &rng)
            AttentionOps.storeKV(qkv: qkv, keys: &keys, values: &values, shape: s)
            let outCount = s.rows * s.newTokens * s.heads * s.headDim
            var out = [Float](repeating: 0, count: outCount), outPlain = out
            var lse = [Float](repeating: 0, count: s.rows * s.heads * s.newTokens), lsePlain = lse
            AttentionOps.forward(qkv: qkv, keys: keys, values: values, out: &out, logSumExp: &lse, shape: s)
            AttentionOps.forwardPlain(qkv: qkv, keys: keys, values: values, out: &outPlain, logSumExp: &lsePlain, shape: s)
            assertClose(out, outPlain, "attention forward \(s)", tolerance: 1e-5)
            assertClose(lse, lsePlain, "attention log-sum-exp", tolerance: 1e-5)
            if s.newTokens == 1 {
                var outC = [Float](repeating: 9, count: outCount), lseC = [Float](repeating: 9, count: lse.count)
                var scores = [Float](repeating: 0, count: s.cacheCapacity)  // the plain twin uses one row
                ps_decode_attention_plain(
                    qkv, keys, values, &outC, &lseC, Int32(s.qkvStride), Int32(s.heads), Int32(s.kvHeads), Int32(s.headDim),
                    Int32(s.cacheCapacity), Int32(s.prefixTokens + s.startPosition + 1), 1 / Float(s.headDim).squareRoot(),
                    0, Int32(s.rows * s.kvHeads), &scores)
                assertClose(outC, outPlain, "decode attention, plain C twin \(s)", tolerance: 1e-5)
                assertClose(lseC, lsePlain, "decode attention log-sum-exp, plain C twin", tolerance: 1e-5)
            }
            let dOut = random(outCount, &rng)
            var dQKV = [Float](repeating: 0, count: qkv.count), dQKVPlain = dQKV
            var dK = [Float](repeating: 9, count: cacheCount), dV = dK, dKPlain = dK, dVPlain = dK
            AttentionOps.backward(dOut: dOut, out: out, qkv: qkv, keys: keys, values: values, logSumExp: lse, dQKV: &dQKV, dKeys: &dK, dValues: &dV, shape: s)
            AttentionOps.backwardPlain(dOut: dOut, out: out, qkv: qkv, keys: keys, values: values, logSumExp: lse, dQKV: &dQKVPlain, dKeys: &dKPlain, dValues: &dVPlain, shape: s)
            // Only the q part of dQKV is written by attention backward.
            let qParts = { (x: [Float]) in (0..<s.rows * s.newTokens).flatMap { x[($0 * s.qkvStride)..<($0 * s.qkvStride + s.heads * s.headDim)] } }
            assertClose(qParts(dQKV), qParts(dQKVPlain), "attention dQ", tolerance: 1e-5)
            assertClose(dK, dKPlain, "attention dK", tolerance: 1e-5)
            assertClose(dV, dVPlain, "attention dV", tolerance: 1e-5)
        }
    }

    func testVectorisedExpAndSwiGLUAgreeWithPlainCode() {
        var rng = SeededGenerator(seed: 14)
        var x = (0..<203).map { _ in (rng.nextUniform() - 0.5) * 60 }
        x += [-90, -87.5, 0, 1e-8, 20]
        let expected = x.map { exp(Double($0 - 3)) }  // the shift is applied in float32 in both
        var y = x
        let total = ps_exp_shifted(&y, Int32(y.count), 3)
        for i in x.indices { XCTAssertEqual(Double(y[i]), expected[i], accuracy: 3e-7 * expected[i] + 1e-38, "exp(\(x[i]) - 3)") }
        XCTAssertEqual(Double(total), expected.reduce(0, +), accuracy: 1e-6 * expected.reduce(0, +))

        let rows = 3, dim = 21
        let gateUp = random(rows * 2 * dim, &rng).map { $0 * 6 }, dOut = random(rows * dim, &rng)
        var fast = [Float](repeating: 0, count: rows * dim), plain = fast
        ElementwiseOps.swiglu(gateUp: gateUp, out: &fast, rows: rows, dim: dim)
        ElementwiseOps.swigluPlain(gateUp: gateUp, out: &plain, rows: rows, dim: dim)
        assertClose(fast, plain, "swiglu", tolerance: 1e-6)
        var dFast = [Float](repeating: 0, count: rows * 2 * dim), dPlain = dFast
        ElementwiseOps.swigluBackward(dOut: dOut, gateUp: gateUp, dGateUp: &dFast, rows: rows, dim: dim)
        ElementwiseOps.swigluBackwardPlain(dOut: dOut, gateUp: gateUp, dGateUp: &dPlain, rows: rows, dim: dim)
        assertClose(dFast, dPlain, "swiglu backward", tolerance: 1e-6)
    }

    /// The 8-lane exp over its float range against Double exp: 200,001 points from -104 to 88.37
    /// (below -87.34 it flushes to 0, as expf does near there; exp(-87.34) is 1.2e-38; above
    /// 88.376 it saturates at exp(88.376) = 2.4e38, where expf goes on to 3.4e38 and then inf: the
    /// softmax inputs are <= 0), and -inf (a masked score) giving exactly 0. The largest relative
    /// error above the flush is printed.
    func testVectorisedExpAcrossItsRange() {
        let count = 200_001
        var x: [Float] = (0..<count).map { (i: Int) -> Float in Float(-104 + 192.37 * Double(i) / Double(count - 1)) }
        x += [-Float.infinity, -1e30]
        var y = x
        _ = ps_exp_shifted(&y, Int32(y.count), 0)
        var worst = 0.0, worstAt: Float = 0
        for i in 0..<count {
            let e = exp(Double(x[i]))
            if x[i] < -87.33 {
                XCTAssertTrue(y[i] == 0 || abs(Double(y[i]) - e) <= 3e-7 * e + 1e-44, "exp(\(x[i])) flushes to 0 or is right")
                continue
            }
            let relative = abs(Double(y[i]) - e) / e
            if relative > worst { (worst, worstAt) = (relative, x[i]) }
        }
        XCTAssertEqual(y[count], 0, "exp(-inf)")
        XCTAssertEqual(y[count + 1], 0, "exp(-1e30)")
        XCTAssertLessThan(worst, 2.5e-7, "largest relative error \(worst) at \(worstAt)")
        print("vectorised exp: largest relative error \(worst) at x = \(worstAt) over [-87.33, 88.37]")
    }

    /// The attention's softmax row (forward) and its backward pass against Double, for rows whose
    /// seen part ends anywhere in a chunk of 8 and a masked tail of 0 to 11 lanes: the masked lanes
    /// hold NaN going in and must come out 0, and the floats just past the row must not be touched.
    func testSoftmaxRowsMatchDouble() {
        var rng = SeededGenerator(seed: 31)
        let scale: Float = 0.17
        for visible in [1, 5, 8, 13, 64, 177] {
            for masked in [0, 3, 11] {
                let width = visible + masked
                let guardValue: Float = 12345
                let scores = random(visible, &rng).map { $0 * 40 }  // differences up to 80: some exp near underflow
                let dp = random(visible, &rng)
                let lseIn = Float(Double(scores.max()!) + 0.3), rowDot: Float = 0.21
                for fast in [true, false] {
                    var row = scores + [Float](repeating: .nan, count: masked) + [guardValue, guardValue]
                    let lse = row.withUnsafeMutableBufferPointer {
                        fast ? ps_softmax_row($0.baseAddress!, Int32(visible), Int32(width))
                            : ps_softmax_row_plain($0.baseAddress!, Int32(visible), Int32(width))
                    }
                    // The shift is subtracted in float32 by both (its rounding is the input's, not exp's).
                    let maxScore = scores.max()!, m = Double(maxScore)
                    let sum = scores.reduce(0.0) { $0 + exp(Double($1 - maxScore)) }
                    let what = "softmax row \(fast ? "AVX2" : "plain") visible \(visible) width \(width)"
                    XCTAssertEqual(Double(lse), m + log(sum), accuracy: 1e-5 * max(1, abs(m)), what + " log-sum-exp")
                    for j in 0..<visible {
                        let e = exp(Double(scores[j] - maxScore)) / sum
                        XCTAssertEqual(Double(row[j]), e, accuracy: 1e-6 * e + 1e-30, what + " p[\(j)]")
                    }
                    XCTAssertEqual(Array(row[visible..<width]), [Float](repeating: 0, count: masked), what + " masked")
                    XCTAssertEqual(Array(row[width...]), [guardValue, guardValue], what + " past the row")

                    var p = scores + [Float](repeating: .nan, count: masked) + [guardValue]
                    var ds = dp + [Float](repeating: .nan, count: masked) + [guardValue]
                    p.withUnsafeMutableBufferPointer { pp in
                        ds.withUnsafeMutableBufferPointer { dd in
                            (fast ? ps_softmax_backward_row : ps_softmax_backward_row_plain)(
                                pp.baseAddress!, dd.baseAddress!, Int32(visible), Int32(width), lseIn, rowDot, scale)
                        }
                    }
                    for j in 0..<visible {
                        let prob = exp(Double(scores[j] - lseIn))
                        let g = prob * (Double(dp[j]) - Double(rowDot)) * Double(scale)
                        XCTAssertEqual(Double(p[j]), prob, accuracy: 1e-6 * prob + 1e-30, what + " backward p[\(j)]")
                        XCTAssertEqual(Double(ds[j]), g, accuracy: 1e-6 * abs(g) + 1e-12, what + " backward dS[\(j)]")
                    }
                    XCTAssertEqual(Array(p[visible...]), [Float](repeating: 0, count: masked) + [guardValue], what + " backward p masked")
                    XCTAssertEqual(Array(ds[visible...]), [Float](repeating: 0, count: masked) + [guardValue], what + " backward dS masked")
                }
            }
        }
    }

    /// The SIMD8 RMSNorm backward against the formula in Double, on rows whose length is not a
    /// multiple of 8 (the scalar tail) and one that is, overwriting and accumulating into dX.
    func testRMSNormBackwardMatchesDouble() {
        var rng = SeededGenerator(seed: 21)
        for (rows, dim) in [(5, 21), (40, 64)] {
            for accumulate in [false, true] {
                let x = random(rows * dim, &rng), dOut = random(rows * dim, &rng), w = random(dim, &rng)
                let start = random(rows * dim, &rng), dwStart = random(dim, &rng)
                var dX = start, dW = dwStart
                RMSNormOps.backward(
                    dOut: dOut, x: x, weight: w, dX: &dX, accumulate: accumulate, dWeight: &dW, rows: rows, dim: dim, eps: 1e-6)
                var expectedDX = [Double](repeating: 0, count: rows * dim), expectedDW = dwStart.map(Double.init)
                for r in 0..<rows {
                    let xs = (0..<dim).map { Double(x[r * dim + $0]) }, gs = (0..<dim).map { Double(dOut[r * dim + $0]) }
                    let inverse = 1 / ((xs.map { $0 * $0 }.reduce(0, +) / Double(dim)) + 1e-6).squareRoot()
                    let weighted = (0..<dim).map { Double(w[$0]) * gs[$0] * xs[$0] }.reduce(0, +)
                    for i in 0..<dim {
                        let g = Double(w[i]) * gs[i] * inverse - xs[i] * weighted * inverse * inverse * inverse / Double(dim)
                        expectedDX[r * dim + i] = (accumulate ? Double(start[r * dim + i]) : 0) + g
                        expectedDW[i] += gs[i] * xs[i] * inverse
                    }
                }
                assertClose(dX, expectedDX.map(Float.init), "dX rows \(rows) dim \(dim) accumulate \(accumulate)", tolerance: 1e-5)
                assertClose(dW, expectedDW.map(Float.init), "dWeight rows \(rows) dim \(dim)", tolerance: 1e-5)
            }
        }
    }

    /// The SIMD8 AdamW update gives every element the bits of the one-element formula (a count
    /// that is not a multiple of 8 and splits over the cores at odd places).
    func testAdamWUpdateMatchesScalarFormulaBitForBit() {
        var rng = SeededGenerator(seed: 22)
        let count = 70_001
        let settings = AdamWSettings(learningRate: 3e-3, weightDecay: 0.1, step: 7, gradScale: 0.6)
        let grads = random(count, &rng)
        var params = random(count, &rng), m = random(count, &rng).map { $0 * 0.1 }, v = random(count, &rng).map { $0 * $0 * 0.01 }
        var (p0, m0, v0) = (params, m, v)
        let before = params
        AdamWOps.update(params: &params, grads: grads, m: &m, v: &v, count: count, settings: settings)
        let a = settings
        let correction1 = 1 - pow(a.beta1, Float(a.step)), correction2 = 1 - pow(a.beta2, Float(a.step))
        for i in 0..<count {
            let g = grads[i] * a.gradScale
            m0[i] = a.beta1 * m0[i] + (1 - a.beta1) * g
            v0[i] = a.beta2 * v0[i] + (1 - a.beta2) * g * g
            let update = (m0[i] / correction1) / ((v0[i] / correction2).squareRoot() + a.epsilon)
            p0[i] -= a.learningRate * (update + a.weightDecay * p0[i])
        }
        XCTAssertEqual(params.map(\.bitPattern), p0.map(\.bitPattern))
        XCTAssertEqual(m.map(\.bitPattern), m0.map(\.bitPattern))
        XCTAssertEqual(v.map(\.bitPattern), v0.map(\.bitPattern))
        XCTAssertGreaterThan(zip(params, before).filter { $0 != $1 }.count, count * 9 / 10)  // the update moved them
    }
}

/// The CPU backend's name records the code path (issue #18's medium study changed machines and
/// trained differently): OpenBLAS's kernel set and the processor, checked against `lscpu`.
final class CPUBackendNameTests: XCTestCase {
    func testNameRecordsKernelsAndProcessor() throws {
        let name = CPUBackend().name
        XCTAssertTrue(name.hasPrefix("cpu (OpenBLAS \(CPUBackend.blasKernels) kernels, \(CPUBackend.threads) threads; "), name)
        XCTAssertFalse(CPUBackend.blasKernels.isEmpty || CPUBackend.blasKernels == "unknown", name)
        let lscpu = Process()
        lscpu.executableURL = URL(fileURLWithPath: "/usr/bin/lscpu")
        let pipe = Pipe()
        lscpu.standardOutput = pipe
        try lscpu.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        lscpu.waitUntilExit()
        func field(_ key: String) throws -> String {
            let line = try XCTUnwrap(out.split(separator: "\n").first { $0.hasPrefix(key + ":") }, "lscpu has no \(key)")
            return line.dropFirst(key.count + 1).trimmingCharacters(in: .whitespaces)
        }
        XCTAssertTrue(name.contains("\(try field("Model name")), family \(try field("CPU family")) model \(try field("Model")))"), name)
    }
}
