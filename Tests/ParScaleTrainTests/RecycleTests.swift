import Foundation
import XCTest

@testable import ParScale
@testable import ParScaleTrain
import TestSupport

final class RecycleTests: XCTestCase {
    func referenceP1() throws -> ParScaleModel {
        try Checkpoint.load(TestPaths.reference.appendingPathComponent("p1_tied").path, backend: CPUBackend())
    }

    func host(_ model: ParScaleModel) -> [Float] {
        var values = [Float](repeating: 0, count: model.parameters.count)
        values.withUnsafeMutableBufferPointer { model.backend.download(model.parameters, into: $0) }
        return values
    }

    func options(steps: Int, freeze: Bool) -> TrainingOptions {
        var o = shortRunOptions(steps: steps, batch: 2, sequence: 16, evalWindows: 2)
        o.freezeBackbone = freeze
        return o
    }

    func testFrozenBackboneStaysBitIdenticalAndOnlyNewTensorsChange() throws {
        let source = try referenceP1()
        var recycleOptions = RecycleOptions(streams: 2)
        recycleOptions.prefixTokens = 4
        let model = try Recycler.recycle(source: source, options: recycleOptions, data: .synthetic(seed: 0), corpus: nil)
        let before = host(model)
        try Trainer.start(runDirectory: temporaryFolder().path, model: model, options: options(steps: 3, freeze: true)).run()
        let after = host(model), sourceValues = host(source)
        for e in model.layout.entries {
            let b = before[e.offset..<e.offset + e.count].map(\.bitPattern), a = after[e.offset..<e.offset + e.count].map(\.bitPattern)
            if ParameterLayout.isParScaleOnly(e.name) {
                if !e.name.hasPrefix("model.aggregate_layer.0") {  // zero-initialised last layer moves first
                    XCTAssertNotEqual(a, b, "\(e.name) should train")
                }
            } else {
                XCTAssertEqual(a, b, "\(e.name) must stay frozen")
                let s = source.layout.entry(e.name)!
                XCTAssertEqual(a, sourceValues[s.offset..<s.offset + s.count].map(\.bitPattern), "\(e.name) equals the source")
            }
        }
        // Without freezing, the backbone trains too.
        let full = try Recycler.recycle(source: source, options: recycleOptions, data: .synthetic(seed: 0), corpus: nil)
        let fullBefore = host(full)
        try Trainer.start(runDirectory: temporaryFolder().path, model: full, options: options(steps: 2, freeze: false)).run()
        let q = full.layout.entry("model.layers.0.self_attn.q_proj.weight")!
        XCTAssertNotEqual(host(full)[q.offset..<q.offset + q.count], fullBefore[q.offset..<q.offset + q.count])
    }

    func testDataPrefixesAreTheSourcesOwnKeysAndValuesPerStream() throws {
        let source = try referenceP1()
        var o = RecycleOptions(streams: 3)
        o.prefixTokens = 5
        o.prefixInit = .data
        let model = try Recycler.recycle(source: source, options: o, data: .synthetic(seed: 0), corpus: nil)
        let values = host(model)
        let e = model.layout.entry("model.layers.1.self_attn.prefix_v")!
        let perStream = e.count / 3
        let streams = (0..<3).map { Array(values[(e.offset + $0 * perStream)..<(e.offset + ($0 + 1) * perStream)]) }
        XCTAssertNotEqual(streams[0], streams[1])
        XCTAssertNotEqual(streams[1], streams[2])
        // Stream 0's prefix equals the source's cache for the same span.
        let stream = try TokenStream(source: .synthetic(seed: 0), corpus: nil, split: .train, seed: 0 &+ 0x5EED)
        let span = stream.nextBatch(batch: 1, sequence: 5).inputs
        let cache = try source.makeCache(batch: 1, capacity: 5)
        _ = try source.forward(tokens: [span], cache: cache)
        var expected = [Float](repeating: 0, count: cache.values[1].count)
        expected.withUnsafeMutableBufferPointer { source.backend.download(cache.values[1], into: $0) }
        // (Batch 3 and batch 1 take different product kernels: equal up to float rounding.)
        let scale = expected.map(abs).max()!, worst = zip(streams[0], expected).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst / scale, 1e-5)
    }

    func testAdapterReproducesTheModelAndRefusesAnotherBackbone() throws {
        let source = try referenceP1()
        var o = RecycleOptions(streams: 2)
        o.prefixTokens = 4
        let model = try Recycler.recycle(source: source, options: o, data: .synthetic(seed: 0), corpus: nil)
        try Trainer.start(runDirectory: temporaryFolder().path, model: model, options: options(steps: 2, freeze: true)).run()
        let path = temporaryFolder().path + "/adapter.safetensors"
        try Adapter.save(model, backboneHash: Adapter.backboneHash(source), to: path)
        let applied = try Adapter.apply(path, to: source)
        XCTAssertEqual(applied.config, model.config)
        XCTAssertEqual(host(applied).map(\.bitPattern), host(model).map(\.bitPattern))
        // Another P = 1 model of the same shape is refused.
        let other = try referenceP1()
        other.parameters.host[0] += 1
        XCTAssertThrowsError(try Adapter.apply(path, to: other)) { error in
            XCTAssertTrue("\(error)".contains("belongs to backbone"), "\(error)")
        }
        XCTAssertThrowsError(try Adapter.apply(Checkpoint.weightsPath(TestPaths.reference.appendingPathComponent("p1_tied").path), to: source)) {
            XCTAssertTrue("\($0)".contains("not a parscale adapter"), "\($0)")
        }
    }
}
