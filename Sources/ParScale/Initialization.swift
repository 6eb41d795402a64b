/// Random initialisation of a new model.
///
/// Backbone: as Qwen2 / Hugging Face do, normal(0, initializer_range) for every linear and embedding
/// weight, zero biases, unit norms.
///
/// ParScale parameters (the official code leaves prefixes uninitialised, `torch.empty`):
/// - prefixes: normal(0, prefixStd), drawn separately for each stream. Identical prefixes with a
///   uniform aggregator would keep all streams identical for ever (every stream gets the same
///   gradient), so distinct draws are what lets the streams specialise. The default std 0.02 was
///   measured (Tools/bench/RESULTS.md, code corpus, hidden 64, P = 4, 3 seeds): 0.0195 nats better
///   than P = 1, where std 1.0 was 0.04 worse than P = 1.
/// - aggregator: first layer normal(0, initializer_range), zero bias; last layer all zeros, so the
///   first weights are exactly uniform (the output starts as the mean of the streams) and the
///   aggregator learns input-dependent weights from there. Its first layer still gets gradients
///   once the last layer moves off zero (after one step).
public struct InitOptions: Sendable {
    public var seed: UInt64 = 0
    public static let defaultPrefixStd = 0.02
    public var prefixStd: Double = InitOptions.defaultPrefixStd
    public var aggregatorInit = AggregatorInit.zero
    public var prefixScale = PrefixScale.fixed
    public init(
        seed: UInt64 = 0, prefixStd: Double = InitOptions.defaultPrefixStd, aggregatorInit: AggregatorInit = .zero,
        prefixScale: PrefixScale = .fixed
    ) {
        self.seed = seed
        self.prefixStd = prefixStd
        self.aggregatorInit = aggregatorInit
        self.prefixScale = prefixScale
    }

    /// The std the prefixes are drawn with in a model of this config.
    public func prefixStd(for config: ModelConfig) -> Double {
        switch prefixScale {
        case .fixed: return prefixStd
        case .keys: return config.initializerRange * Double(config.hiddenSize).squareRoot()
        }
    }
}

/// How the initial prefixes' std is chosen (issue #18). `fixed`: `prefixStd`. `keys`: the std of the
/// keys and values the new backbone itself produces, initializer_range x sqrt(hidden) (a unit-RMS
/// normed input times weights of std initializer_range, zero bias), so the prefixes stand out from
/// the real tokens' keys by the same measure at every width (0.16 at hidden 64, 0.20 at 96).
public enum PrefixScale: String, Codable, Sendable, CaseIterable {
    case fixed, keys
}

/// The aggregation head's last layer: zero (uniform first mixing weights) or normal(0, initializer_range).
public enum AggregatorInit: String, Codable, Sendable, CaseIterable {
    case zero, normal
}

public enum Initializer {
    public static func initialize(
        _ layout: ParameterLayout, into params: UnsafeMutableBufferPointer<Float>, options: InitOptions
    ) {
        precondition(params.count == layout.totalCount)
        var rng = SeededGenerator(seed: options.seed)
        let std = layout.config.initializerRange
        for entry in layout.entries {
            let region = UnsafeMutableBufferPointer(rebasing: params[entry.range])
            let name = entry.name
            if name.hasSuffix("layernorm.weight") || name == "model.norm.weight" {
                region.update(repeating: 1)
            } else if name.hasSuffix(".bias") || (name == "model.aggregate_layer.2.weight" && options.aggregatorInit == .zero) {
                region.update(repeating: 0)
            } else {
                let s = name.hasSuffix("prefix_k") || name.hasSuffix("prefix_v") ? options.prefixStd(for: layout.config) : std
                for i in region.indices { region[i] = Float(rng.nextNormal() * s) }
            }
        }
    }
}

extension ParScaleModel {
    /// A newly initialised model (see `Initializer`) on `backend`.
    public static func initialized(_ config: ModelConfig, backend: Backend, options: InitOptions) -> ParScaleModel {
        let layout = ParameterLayout(config)
        var host = [Float](repeating: 0, count: layout.totalCount)
        host.withUnsafeMutableBufferPointer { Initializer.initialize(layout, into: $0, options: options) }
        let parameters = backend.allocate(layout.totalCount)
        host.withUnsafeBufferPointer { backend.upload($0, to: parameters) }
        return ParScaleModel(config: config, backend: backend, parameters: parameters)
    }
    /// `initialized`, after checking that the parameters fit in the backend's memory
    /// (`Backend.reserve`): a clear error instead of a failed allocation.
    public static func checkedInitialized(_ config: ModelConfig, backend: Backend, options: InitOptions) throws -> ParScaleModel {
        try backend.reserve(ParameterLayout(config).totalCount, for: "the parameters of a new model")
        return initialized(config, backend: backend, options: options)
    }
}
