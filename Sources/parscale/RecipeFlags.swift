import ArgumentParser
import ParScale
import ParScaleTrain

/// The recipe flags (issue #8) shared by init, pretrain, recycle, sweep and study: a named recipe, then
/// any single choice overridden. Unset flags keep the recipe's value; the default recipe is
/// `Recipe.standard`, measured in Tools/bench/RESULTS.md.
struct RecipeFlags: ParsableArguments {
    @Option(help: "Start from a named recipe: \(Recipe.named.map(\.name).joined(separator: ", ")) (default: base with --prefix-reparam \(Recipe.standard.prefixReparam), the best measured; see `parscale ablate --help`).")
    var recipe: String?
    @Option(name: .customLong("prefix-tokens"), help: "Prefix tokens T per stream and layer (default \(Recipe.standard.prefixTokens); the paper uses 48).")
    var prefixTokens: Int?
    @Option(name: .customLong("prefix-std"), help: "Standard deviation of the initial prefixes, drawn distinct per stream (default \(Recipe.standard.prefixStd)).")
    var prefixStd: Double?
    @Option(help: "Aggregation smoothing s: every stream keeps at least s/P of the weight (default \(Recipe.standard.smoothing), as the released models; the official code's default is 0.01).")
    var smoothing: Double?
    @Option(name: .customLong("parscale-lr-scale"), help: "Learning-rate multiplier of prefixes and aggregator (default \(Recipe.standard.parscaleLRScale); \(Recipe.recycling.parscaleLRScale) for recycle).")
    var parscaleLRScale: Double?
    @Option(name: .customLong("prefix-reparam"), help: "Train the prefixes through an MLP of this width from one vector per stream, folded into plain prefixes in every checkpoint (0: off; default \(Recipe.standard.prefixReparam)).")
    var prefixReparam: Int?
    @Option(name: .customLong("aggregator-init"), help: "The aggregator's last layer: zero (uniform first weights) or normal (default \(Recipe.standard.aggregatorInit.rawValue)).")
    var aggregatorInit: AggregatorInit?
    @Option(name: .customLong("prefix-scale"), help: "Initial prefix std: fixed (--prefix-std) or keys (the std of the new backbone's keys and values, 0.02 x sqrt(hidden), so it scales with the width) (default \(Recipe.standard.prefixScale.rawValue)).")
    var prefixScale: PrefixScale?
    @Option(name: .customLong("stream-decorrelation"), help: "Weight λ of a training penalty on the mean squared cosine similarity between the P streams' final hidden states (before aggregation), keeping the streams apart; checkpoints are unchanged. At most \(StreamDecorrelationOps.maxStreams) streams (default \(Recipe.standard.streamDecorrelation): off).")
    var streamDecorrelation: Double?

    func validate() throws {
        if let recipe, Recipe.named(recipe) == nil {
            throw ValidationError("--recipe must be one of \(Recipe.named.map(\.name).joined(separator: ", ")), got '\(recipe)'")
        }
        if let prefixTokens, prefixTokens < 1 { throw ValidationError("--prefix-tokens must be at least 1, got \(prefixTokens)") }
        if let prefixStd, !(prefixStd >= 0) { throw ValidationError("--prefix-std must be at least 0, got \(prefixStd)") }
        if let smoothing, !(smoothing >= 0 && smoothing < 1) { throw ValidationError("--smoothing must be in [0, 1), got \(smoothing)") }
        if let parscaleLRScale, !(parscaleLRScale > 0) { throw ValidationError("--parscale-lr-scale must be positive, got \(parscaleLRScale)") }
        if let streamDecorrelation, !(streamDecorrelation >= 0 && streamDecorrelation.isFinite) {
            throw ValidationError("--stream-decorrelation must be a finite weight of at least 0, got \(streamDecorrelation)")
        }
        if let prefixReparam, prefixReparam < 0 { throw ValidationError("--prefix-reparam must be 0 (off) or a width, got \(prefixReparam)") }
    }

    /// The recipe these flags make, over `base` when no --recipe is given.
    func resolved(base: Recipe = .standard) -> Recipe {
        var r = recipe.flatMap(Recipe.named) ?? base
        if let prefixTokens { r.prefixTokens = prefixTokens }
        if let prefixStd { r.prefixStd = prefixStd }
        if let smoothing { r.smoothing = smoothing }
        if let parscaleLRScale { r.parscaleLRScale = parscaleLRScale }
        if let prefixReparam { r.prefixReparam = prefixReparam }
        if let aggregatorInit { r.aggregatorInit = aggregatorInit }
        if let prefixScale { r.prefixScale = prefixScale }
        if let streamDecorrelation { r.streamDecorrelation = streamDecorrelation }
        return r
    }
}

extension AggregatorInit: ExpressibleByArgument {}
extension PrefixScale: ExpressibleByArgument {}
