import ArgumentParser
import Foundation
import ParScale

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a checkpoint's config, parameter counts and memory figures.",
        discussion: """
            Parameter counts: embedding (embed_tokens, plus lm_head when untied), non-embedding (N in the \
            scaling law, ParScale parameters included, as the paper counts them) and ParScale-only \
            (prefixes and aggregation head). KV-cache bytes are float32, for all P streams of one sequence.
            """)

    @OptionGroup var options: ModelOptions
    @Flag(help: "Print one JSON object instead of text.") var json = false

    func run() throws {
        // Loading also validates the weights against the config.
        let model = try options.load()
        let config = model.config, layout = model.layout
        let counts = layout.counts
        let kvPerToken = config.streams * config.numHiddenLayers * 2 * config.numKeyValueHeads * config.headDim * 4
        let prefixBytes = config.streams * config.numHiddenLayers * 2 * config.numKeyValueHeads * config.prefixTokens * config.headDim * 4
        // All shards of a sharded checkpoint.
        let fileBytes = (try? CheckpointWeights(directory: Checkpoint.resolve(options.model)))?.fileBytes ?? 0
        if json {
            printJSON([
                "model": options.model, "config": try JSONSerialization.jsonObject(with: config.jsonData()),
                "parameters": counts.total, "embedding_parameters": counts.embedding,
                "non_embedding_parameters": counts.nonEmbedding, "parscale_parameters": counts.parscaleOnly,
                "weight_bytes_float32": counts.total * 4, "file_bytes": fileBytes,
                "kv_cache_bytes_per_token": kvPerToken, "prefix_cache_bytes_per_sequence": prefixBytes,
            ])
            return
        }
        let c = config
        print("""
            model        \(options.model) (\(c.modelType))
            shape        hidden \(c.hiddenSize), intermediate \(c.intermediateSize), layers \(c.numHiddenLayers), \
            heads \(c.numAttentionHeads) (kv \(c.numKeyValueHeads), head_dim \(c.headDim)), vocab \(c.vocabSize), \
            \(c.tieWordEmbeddings ? "tied" : "untied") head
            parscale     P = \(c.streams), prefix tokens \(c.parscaleNTokens), smoothing \(c.parscaleAttnSmooth)
            rope_theta   \(c.ropeTheta), rms_norm_eps \(c.rmsNormEps)
            parameters   \(counts.total) total: \(counts.embedding) embedding, \(counts.nonEmbedding) non-embedding (N), \
            \(counts.parscaleOnly) ParScale-only (\(String(format: "%.1f", 100 * Double(counts.parscaleOnly) / Double(max(1, counts.nonEmbedding - counts.parscaleOnly))))% of the backbone's N)
            weights      \(formatBytes(counts.total * 4)) as float32 in memory; file \(formatBytes(fileBytes))
            kv cache     \(formatBytes(kvPerToken)) per token (all \(c.streams) streams), plus \(formatBytes(prefixBytes)) of prefixes per sequence
            """)
    }
}
