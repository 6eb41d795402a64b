import Foundation

/// A checkpoint folder in the official Hugging Face layout: `config.json` + `model.safetensors`.
public enum Checkpoint {
    public static func configPath(_ dir: String) -> String { (dir as NSString).appendingPathComponent("config.json") }
    public static func weightsPath(_ dir: String) -> String { (dir as NSString).appendingPathComponent("model.safetensors") }

    /// A training run folder holds its latest model in `checkpoint/`: accept the run folder too.
    public static func resolve(_ dir: String) -> String {
        let nested = (dir as NSString).appendingPathComponent("checkpoint")
        let fm = FileManager.default
        if !fm.fileExists(atPath: configPath(dir)) && fm.fileExists(atPath: configPath(nested)) { return nested }
        return dir
    }

    public static func loadConfig(_ dir: String) throws -> ModelConfig {
        let dir = resolve(dir)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw ConfigError("\(dir): no such checkpoint folder (expected config.json and model.safetensors)")
        }
        return try ModelConfig.load(from: configPath(dir))
    }

    /// Reads and checks the weights of `layout` from a safetensors file: every tensor the config
    /// needs must be present with its exact shape, and nothing else may be (bar RoPE buffers).
    public static func readParameters(
        _ path: String, layout: ParameterLayout, into params: UnsafeMutableBufferPointer<Float>
    ) throws {
        precondition(params.count == layout.totalCount)
        let file = try SafeTensorsFile(contentsOf: path)
        let c = layout.config
        for name in file.names where layout.entry(name) == nil && !name.hasSuffix("rotary_emb.inv_freq") {
            var why = "is not part of this config's model"
            if ParameterLayout.isParScaleOnly(name) && c.parscaleN == 1 {
                why = "is a ParScale tensor, but config.json says parscale_n = 1"
            } else if name == "lm_head.weight" && c.tieWordEmbeddings {
                why = "is present, but config.json says tie_word_embeddings = true"
            }
            throw SafeTensorsError(file: path, tensor: name, "unexpected tensor: it \(why)")
        }
        for entry in layout.entries {
            guard let info = file.tensors[entry.name] else {
                var why = ""
                if ParameterLayout.isParScaleOnly(entry.name) {
                    why = " (config.json says parscale_n = \(c.parscaleN); a P = 1 checkpoint has no ParScale tensors: use `parscale recycle` to add streams)"
                } else if entry.name == "lm_head.weight" {
                    why = " (config.json says tie_word_embeddings = false)"
                }
                throw SafeTensorsError(file: path, tensor: entry.name, "missing tensor\(why)")
            }
            guard info.shape == entry.shape else {
                var why = ""
                if entry.name.contains("prefix_") {
                    why = "; prefixes are [parscale_n, num_key_value_heads, parscale_n_tokens, head_dim] = [\(c.parscaleN), \(c.numKeyValueHeads), \(c.parscaleNTokens), \(c.headDim)] by config.json"
                } else if entry.name.hasPrefix("model.aggregate_layer") {
                    why = "; the aggregation head's shape follows parscale_n = \(c.parscaleN) and hidden_size = \(c.hiddenSize)"
                }
                throw SafeTensorsError(
                    file: path, tensor: entry.name,
                    "shape \(info.shape) does not match the config, which expects \(entry.shape)\(why)")
            }
            try file.readFloats(
                entry.name,
                into: UnsafeMutableBufferPointer(rebasing: params[entry.offset..<entry.offset + entry.count]))
        }
    }

    /// Loads a checkpoint folder onto `backend`.
    public static func load(_ dir: String, backend: InferenceBackend) throws -> ParScaleModel {
        let dir = resolve(dir)
        let config = try loadConfig(dir)
        let layout = ParameterLayout(config)
        var host = [Float](repeating: 0, count: layout.totalCount)
        try host.withUnsafeMutableBufferPointer { try readParameters(weightsPath(dir), layout: layout, into: $0) }
        let parameters = backend.allocate(layout.totalCount)
        host.withUnsafeBufferPointer { backend.upload($0, to: parameters) }
        return ParScaleModel(config: config, backend: backend, parameters: parameters)
    }

    /// Writes `config.json` and `model.safetensors` (official names and shapes; each file atomic).
    public static func save(
        config: ModelConfig, parameters: UnsafeBufferPointer<Float>, to dir: String,
        dtype: SafeTensorsDType = .F32
    ) throws {
        let layout = ParameterLayout(config)
        precondition(parameters.count == layout.totalCount)
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw ConfigError("\(dir): cannot create the checkpoint folder (\(error.localizedDescription))")
        }
        let entries = layout.entries.map { e in
            SafeTensorsWriter.Entry(
                name: e.name, dtype: dtype, shape: e.shape,
                payload: .floats(UnsafeBufferPointer(rebasing: parameters[e.offset..<e.offset + e.count])))
        }
        try SafeTensorsWriter.write(entries, metadata: ["format": "pt"], to: weightsPath(dir))
        try atomicWrite(config.jsonData(), to: configPath(dir))
    }

    /// Saves a model living on any backend.
    public static func save(_ model: ParScaleModel, to dir: String, dtype: SafeTensorsDType = .F32) throws {
        var host = [Float](repeating: 0, count: model.parameters.count)
        host.withUnsafeMutableBufferPointer { model.backend.download(model.parameters, into: $0) }
        try host.withUnsafeBufferPointer { try save(config: model.config, parameters: $0, to: dir, dtype: dtype) }
    }
}
