import Foundation
import ParScale

/// How the ParScale parts of a model are initialised and trained: the choices the official
/// release leaves open (issue #8). The backbone's recipe (AdamW, schedule, init) is the same for
/// every recipe, so P = 1 runs are shared between recipes.
public struct Recipe: Codable, Equatable, Sendable {
    /// Prefix tokens T per stream and layer.
    public var prefixTokens = 8
    /// Standard deviation of the initial prefixes (normal, distinct per stream).
    public var prefixStd = InitOptions.defaultPrefixStd
    /// Aggregation smoothing (the released models' 0.1).
    public var smoothing = ModelConfig.defaultSmoothingForNewModels
    /// Learning-rate multiplier of the prefixes and the aggregation head (and the reparameterisation).
    public var parscaleLRScale = 1.0
    /// Hidden width of the prefix reparameterisation MLP (see `PrefixReparam`); 0: plain prefixes.
    public var prefixReparam = 0
    /// The aggregator's last layer at zero (uniform first weights) or normal like other weights.
    public var aggregatorInit = AggregatorInit.zero
    /// The prefixes' initial std: `prefixStd`, or tied to the width (`PrefixScale.keys`).
    public var prefixScale = PrefixScale.fixed
    /// Weight λ of the stream decorrelation penalty (a training term; `StreamDecorrelationOps`); 0: off.
    public var streamDecorrelation = 0.0

    public init() {}

    /// The plain recipe: prefixes N(0, 0.02) distinct per stream, T = 8, the aggregator's last
    /// layer at zero, smoothing 0.1, no reparameterisation, the backbone's learning rate.
    public static let base = Recipe()

    /// The recipe of `init`, `pretrain`, `sweep` and `study` unless flags say otherwise:
    /// base with the prefix reparameterisation, the best of the recipes measured (Tools/bench/RESULTS.md,
    /// "Recipe ablation" and "Stream diversity"); no other recipe was ahead of it at both sizes.
    public static let standard = with { $0.prefixReparam = 64 }
    /// The name of `standard` in `named`: `ablate` compares every other recipe with it.
    public static var standardName: String { named.first { $0.recipe == standard }!.name }

    /// The recipe of `recycle`: standard, with 10x the learning rate on the new prefixes and
    /// aggregator, since there they start from nothing while the backbone only continues (measured
    /// in Tools/bench/RESULTS.md, "Recycling", with the continued learning rate 3e-4).
    public static let recycling = standard.changed { $0.parscaleLRScale = 10 }

    /// The recipes `parscale ablate` knows by name: each changes one thing from `base`, or combines
    /// two that helped.
    public static let named: [(name: String, recipe: Recipe, what: String)] = [
        ("base", base, "prefixes N(0, 0.02), T = 8, uniform start, smoothing 0.1"),
        ("reparam", with { $0.prefixReparam = 64 }, "prefixes through a 64-wide MLP from one vector per stream"),
        ("lr5", with { $0.parscaleLRScale = 5 }, "5x the learning rate on prefixes and aggregator"),
        ("t32", with { $0.prefixTokens = 32 }, "T = 32 prefix tokens"),
        ("std0.2", with { $0.prefixStd = 0.2 }, "prefixes N(0, 0.2)"),
        ("aggnormal", with { $0.aggregatorInit = .normal }, "aggregator's last layer N(0, 0.02) instead of zero"),
        ("smooth0", with { $0.smoothing = 0 }, "no aggregation smoothing"),
        ("reparam-std0.2", with { $0.prefixReparam = 64; $0.prefixStd = 0.2 }, "reparam and std0.2 together"),
        ("reparam-decor", with { $0.prefixReparam = 64; $0.streamDecorrelation = 0.1 },
         "reparam, plus 0.1 x the mean squared cosine between the streams' final states (issue #18)"),
        ("reparam-keyscale", with { $0.prefixReparam = 64; $0.prefixScale = .keys },
         "reparam, prefixes at the std of the initial keys, 0.02 sqrt(hidden) (issue #18)"),
    ]

    public static func named(_ name: String) -> Recipe? { named.first { $0.name == name }?.recipe }

    func changed(_ change: (inout Recipe) -> Void) -> Recipe {
        var r = self
        change(&r)
        return r
    }

    /// `base` with one change.
    static func with(_ change: (inout Recipe) -> Void) -> Recipe { Recipe().changed(change) }

    public func initOptions(seed: UInt64) -> InitOptions {
        InitOptions(seed: seed, prefixStd: prefixStd, aggregatorInit: aggregatorInit, prefixScale: prefixScale)
    }

    /// What a run records about its recipe (trainer_state.json's `recipe`).
    public var metadata: [String: String] {
        [
            "prefix_tokens": String(prefixTokens), "prefix_std": String(prefixStd), "smoothing": String(smoothing),
            "parscale_lr_scale": String(parscaleLRScale), "prefix_reparam": String(prefixReparam),
            "aggregator_init": aggregatorInit.rawValue, "prefix_scale": prefixScale.rawValue,
            "stream_decorrelation": String(streamDecorrelation),
        ]
    }

    /// Applies the training side of the recipe to a run of a model with `streams` streams. P = 1
    /// has no prefixes, so no prefix reparameterisation (its recorded recipe keeps the width).
    public func apply(to options: inout TrainingOptions, streams: Int) {
        options.optimizer.parscaleLRScale = parscaleLRScale
        options.prefixReparam = streams > 1 ? prefixReparam : 0
        options.streamDecorrelation = streams > 1 ? streamDecorrelation : 0
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = Recipe()
        prefixTokens = try c.decodeIfPresent(Int.self, forKey: .prefixTokens) ?? d.prefixTokens
        prefixStd = try c.decodeIfPresent(Double.self, forKey: .prefixStd) ?? d.prefixStd
        smoothing = try c.decodeIfPresent(Double.self, forKey: .smoothing) ?? d.smoothing
        parscaleLRScale = try c.decodeIfPresent(Double.self, forKey: .parscaleLRScale) ?? d.parscaleLRScale
        prefixReparam = try c.decodeIfPresent(Int.self, forKey: .prefixReparam) ?? d.prefixReparam
        aggregatorInit = try c.decodeIfPresent(AggregatorInit.self, forKey: .aggregatorInit) ?? d.aggregatorInit
        prefixScale = try c.decodeIfPresent(PrefixScale.self, forKey: .prefixScale) ?? d.prefixScale
        streamDecorrelation = try c.decodeIfPresent(Double.self, forKey: .streamDecorrelation) ?? d.streamDecorrelation
    }
}
