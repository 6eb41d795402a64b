import Foundation
import ParScale

/// How the prefixes of a recycled model start.
/// Measured on the shipped base (P = 4, T = 16, 64 validation windows; Tools/bench/RESULTS.md):
/// normal prefixes start 0.008 nats above the source (std 0.02, 0.3 or 1 alike), prefixes from
/// data 0.14 above it (each stream reads as if preceded by an unrelated span of text). So
/// `normal` is the default.
public enum PrefixInit: String, Codable, Sendable, CaseIterable {
    /// normal(0, std), distinct per stream.
    case normal
    /// The keys and values the source model itself computes for T tokens of real training text,
    /// a different span for each stream.
    case data
}

public struct RecycleOptions: Sendable {
    public var streams: Int
    public var prefixTokens = 16
    public var smoothing = ModelConfig.defaultSmoothingForNewModels
    public var prefixInit = PrefixInit.normal
    public var prefixStd = InitOptions.defaultPrefixStd
    public var prefixScale = PrefixScale.fixed
    public var aggregatorInit = AggregatorInit.zero
    public var seed: UInt64 = 0
    public init(streams: Int) { self.streams = streams }
}

/// Two-stage ParScale (the paper's "recycling"): a model trained at P = 1 gets P streams.
public enum Recycler {
    /// The P-stream model: the source's backbone, new prefixes (see `PrefixInit`), and an
    /// aggregation head whose last layer is zero, so the streams are first averaged uniformly.
    public static func recycle(
        source: ParScaleModel, options o: RecycleOptions, data: DataSpec, corpus: TokenCorpus?
    ) throws -> ParScaleModel {
        guard source.config.streams == 1 else {
            throw TrainingError("--from must be a P = 1 model; this one has P = \(source.config.streams)")
        }
        guard o.streams >= 2 else { throw TrainingError("--P must be at least 2 to recycle, got \(o.streams)") }
        var config = source.config
        config.modelType = "qwen2_parscale"
        config.parscaleN = o.streams
        config.parscaleNTokens = o.prefixTokens
        config.parscaleAttnSmooth = o.smoothing
        do { try config.validate() } catch let error as ConfigError { throw TrainingError(error.message) }
        let layout = ParameterLayout(config)
        // Start from a fresh initialisation (ParScale tensors), then copy the backbone over it.
        var host = [Float](repeating: 0, count: layout.totalCount)
        host.withUnsafeMutableBufferPointer {
            Initializer.initialize(layout, into: $0, options: InitOptions(seed: o.seed, prefixStd: o.prefixStd, aggregatorInit: o.aggregatorInit, prefixScale: o.prefixScale))
        }
        var sourceHost = [Float](repeating: 0, count: source.parameters.count)
        sourceHost.withUnsafeMutableBufferPointer { source.backend.download(source.parameters, into: $0) }
        for e in layout.entries where !ParameterLayout.isParScaleOnly(e.name) {
            let from = source.layout.entry(e.name)!
            host.replaceSubrange(e.range, with: sourceHost[from.range])
        }
        if o.prefixInit == .data {
            try prefixesFromData(source: source, config: config, layout: layout, into: &host, data: data, corpus: corpus, seed: o.seed)
        }
        let parameters = source.backend.allocate(layout.totalCount)
        host.withUnsafeBufferPointer { source.backend.upload($0, to: parameters) }
        return ParScaleModel(config: config, backend: source.backend, parameters: parameters)
    }

    /// prefix_k/v[r] of every layer = the source's cached keys/values for span r of the training text.
    static func prefixesFromData(
        source: ParScaleModel, config: ModelConfig, layout: ParameterLayout, into host: inout [Float],
        data: DataSpec, corpus: TokenCorpus?, seed: UInt64
    ) throws {
        let P = config.streams, T = config.parscaleNTokens
        let stream = try TokenStream(source: data.source, corpus: corpus, split: .train, seed: seed &+ 0x5EED)
        let spans = (0..<P).map { _ in stream.nextBatch(batch: 1, sequence: T).inputs }
        // A P = 1 model's cache for batch P is [P, KVH, T, hd] per layer: the prefix layout.
        let cache = try source.makeCache(batch: P, capacity: T)
        _ = try source.forward(tokens: spans, cache: cache, logits: .last)
        for (i, layer) in layout.layers.enumerated() {
            for (prefix, cached) in [(layer.prefixK, cache.keys[i]), (layer.prefixV, cache.values[i])] {
                guard let prefix else { continue }
                precondition(cached.count == prefix.count, "a P = 1 cache of batch P must have the prefix layout")
                var values = [Float](repeating: 0, count: cached.count)
                values.withUnsafeMutableBufferPointer { source.backend.download(cached, into: $0) }
                host.replaceSubrange(prefix.range, with: values)
            }
        }
    }
}
