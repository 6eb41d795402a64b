import Foundation

/// A checkpoint folder in the official Hugging Face layout: `config.json` + `model.safetensors`
/// (or shards + `model.safetensors.index.json`, see `CheckpointWeights`), and any tokenizer files.
public enum Checkpoint {
    public static func configPath(_ dir: String) -> String { (dir as NSString).appendingPathComponent("config.json") }
    /// The single weights file (see `CheckpointWeights` for sharded folders).
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
            throw ConfigError("\(dir): no such checkpoint folder (expected config.json and model.safetensors or its shards)")
        }
        return try ModelConfig.load(from: configPath(dir))
    }

    /// Reads and checks the weights of `layout` from `path`: a checkpoint folder, a sharded
    /// checkpoint's index or one safetensors file (see `CheckpointWeights`).
    public static func readParameters(
        _ path: String, layout: ParameterLayout, into params: UnsafeMutableBufferPointer<Float>
    ) throws {
        try readParameters(CheckpointWeights(path: path), layout: layout, into: params)
    }

    /// Reads and checks the weights of `layout`: every tensor the config needs must be present with
    /// its exact shape, and nothing else may be (bar RoPE buffers). Errors name the file holding the
    /// tensor (the index, for a tensor missing from sharded weights).
    public static func readParameters(
        _ weights: CheckpointWeights, layout: ParameterLayout, into params: UnsafeMutableBufferPointer<Float>
    ) throws {
        precondition(params.count == layout.totalCount)
        let c = layout.config
        for name in weights.names where layout.entry(name) == nil && !name.hasSuffix("rotary_emb.inv_freq") {
            var why = "is not part of this config's model"
            if ParameterLayout.isParScaleOnly(name) && c.parscaleN == 1 {
                why = "is a ParScale tensor, but config.json says parscale_n = 1"
            } else if name == "lm_head.weight" && c.tieWordEmbeddings {
                why = "is present, but config.json says tie_word_embeddings = true"
            }
            throw SafeTensorsError(file: weights.path(of: name), tensor: name, "unexpected tensor: it \(why)")
        }
        for entry in layout.entries {
            guard let info = weights.location[entry.name]?.info else {
                var why = ""
                if ParameterLayout.isParScaleOnly(entry.name) {
                    why = " (config.json says parscale_n = \(c.parscaleN); a P = 1 checkpoint has no ParScale tensors: use `parscale recycle` to add streams)"
                } else if entry.name == "lm_head.weight" {
                    why = " (config.json says tie_word_embeddings = false)"
                }
                throw SafeTensorsError(file: weights.path(of: entry.name), tensor: entry.name, "missing tensor\(why)")
            }
            guard info.shape == entry.shape else {
                var why = ""
                if entry.name.contains("prefix_") {
                    why = "; prefixes are [parscale_n, num_key_value_heads, parscale_n_tokens, head_dim] = [\(c.parscaleN), \(c.numKeyValueHeads), \(c.parscaleNTokens), \(c.headDim)] by config.json"
                } else if entry.name.hasPrefix("model.aggregate_layer") {
                    why = "; the aggregation head's shape follows parscale_n = \(c.parscaleN) and hidden_size = \(c.hiddenSize)"
                }
                throw SafeTensorsError(
                    file: weights.path(of: entry.name), tensor: entry.name,
                    "shape \(info.shape) does not match the config, which expects \(entry.shape)\(why)")
            }
            try weights.readFloats(
                entry.name,
                into: UnsafeMutableBufferPointer(rebasing: params[entry.range]))
        }
    }

    /// Loads a checkpoint folder onto `backend`.
    public static func load(_ dir: String, backend: Backend) throws -> ParScaleModel {
        let dir = resolve(dir)
        let config = try loadConfig(dir)
        let layout = ParameterLayout(config)
        try backend.reserve(layout.totalCount, for: "the parameters of \(dir)")
        var host = [Float](repeating: 0, count: layout.totalCount)
        try host.withUnsafeMutableBufferPointer {
            try readParameters(CheckpointWeights(directory: dir), layout: layout, into: $0)
        }
        let parameters = backend.allocate(layout.totalCount)
        host.withUnsafeBufferPointer { backend.upload($0, to: parameters) }
        return ParScaleModel(config: config, backend: backend, parameters: parameters)
    }

    /// transformers' default `max_shard_size` ("5GB").
    public static let defaultMaxShardBytes = 5_000_000_000

    /// Writes `config.json` and the weights in official names and shapes, stored as `dtype` (F32, or
    /// BF16/F16 rounded to nearest even): one `model.safetensors` when the tensor data fits in
    /// `maxShardBytes`, else shards `model-0000k-of-0000n.safetensors` (tensors in layout order, a new
    /// shard when the next tensor would pass the limit, a larger tensor alone in its own) plus
    /// `model.safetensors.index.json`, as transformers. Each file is atomic; weight files of an earlier
    /// save that this one does not write (a single file, shards, an index) are removed once the new
    /// ones are in place, so the folder never holds two sets.
    public static func save(
        config: ModelConfig, parameters: UnsafeBufferPointer<Float>, to dir: String,
        dtype: SafeTensorsDType = .F32, maxShardBytes: Int = defaultMaxShardBytes
    ) throws {
        let layout = ParameterLayout(config)
        precondition(parameters.count == layout.totalCount)
        guard dtype.isFloat else {
            throw ConfigError("\(dir): weights can be stored as F32, BF16 or F16, not \(dtype.rawValue)")
        }
        guard maxShardBytes > 0 else {
            throw ConfigError("\(dir): the maximum shard size must be positive, got \(maxShardBytes) bytes")
        }
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw ConfigError("\(dir): cannot create the checkpoint folder (\(error.localizedDescription))")
        }
        let previous = weightFileNames(in: dir)
        func entry(_ e: ParameterTensor) -> SafeTensorsWriter.Entry {
            SafeTensorsWriter.Entry(
                name: e.name, dtype: dtype, shape: e.shape,
                payload: .floats(UnsafeBufferPointer(rebasing: parameters[e.range])))
        }
        let shards = shardPlan(layout.entries.map { $0.count * dtype.byteSize }, maxShardBytes: maxShardBytes)
        var written: Set<String> = []
        if shards.count == 1 {
            try SafeTensorsWriter.write(layout.entries.map(entry), metadata: ["format": "pt"], to: weightsPath(dir))
            written.insert(CheckpointWeights.singleFileName)
        } else {
            var weightMap: [(tensor: String, shard: String)] = []
            for (k, range) in shards.enumerated() {
                let name = shardName(k + 1, of: shards.count)
                let entries = layout.entries[range]
                try SafeTensorsWriter.write(
                    entries.map(entry), metadata: ["format": "pt"], to: (dir as NSString).appendingPathComponent(name))
                written.insert(name)
                weightMap += entries.map { ($0.name, name) }
            }
            let totalSize = layout.entries.reduce(0) { $0 + $1.count * dtype.byteSize }
            try atomicWrite(indexJSON(totalSize: totalSize, weightMap: weightMap), to: indexPath(dir))
            written.insert(CheckpointWeights.indexFileName)
        }
        try atomicWrite(config.jsonData(), to: configPath(dir))
        for stale in previous.subtracting(written).sorted() {
            let path = (dir as NSString).appendingPathComponent(stale)
            do { try FileManager.default.removeItem(atPath: path) } catch {
                throw ConfigError("\(path): cannot remove this weight file of an earlier save (\(error.localizedDescription)); the new weights are in place beside it")
            }
        }
    }

    /// A size as transformers' `convert_file_size_to_int` reads it: "5GB" = 5 * 10^9, "500MB",
    /// "100KB", "2GiB" = 2 * 2^30, "512MiB", "64KiB" (units in any case; a lowercase final b of
    /// GB/MB/KB means bits, "5Gb" = 5 * 10^9 / 8), or plain bytes "1000". nil when malformed or too large.
    public static func parseFileSize(_ text: String) -> Int? {
        let units: [(suffix: String, factor: Int)] = [
            ("GIB", 1 << 30), ("MIB", 1 << 20), ("KIB", 1 << 10), ("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1_000),
        ]
        var digits = Substring(text), factor = 1, bits = false
        if let unit = units.first(where: { text.uppercased().hasSuffix($0.suffix) }) {
            digits = text.dropLast(unit.suffix.count)
            factor = unit.factor
            bits = unit.suffix.count == 2 && text.hasSuffix("b")
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(digits) else { return nil }
        let (bytes, overflow) = n.multipliedReportingOverflow(by: factor)
        guard !overflow else { return nil }
        return bits ? bytes / 8 : bytes
    }

    public static func indexPath(_ dir: String) -> String {
        (dir as NSString).appendingPathComponent(CheckpointWeights.indexFileName)
    }

    /// transformers' shard names: model-00001-of-00003.safetensors.
    public static func shardName(_ k: Int, of n: Int) -> String {
        func five(_ i: Int) -> String { let s = String(i); return String(repeating: "0", count: max(0, 5 - s.count)) + s }
        return "model-\(five(k))-of-\(five(n)).safetensors"
    }

    /// Tensors (by byte size, in order) grouped into shards as transformers groups them: a new shard
    /// when the next tensor would take the current one past `maxShardBytes`; a tensor larger than the
    /// limit gets a shard of its own.
    public static func shardPlan(_ sizes: [Int], maxShardBytes: Int) -> [Range<Int>] {
        var shards: [Range<Int>] = []
        var start = 0, bytes = 0
        for (i, size) in sizes.enumerated() {
            if size > maxShardBytes {
                if i > start { shards.append(start..<i) }
                shards.append(i..<i + 1)
                start = i + 1
                bytes = 0
            } else if bytes + size > maxShardBytes && i > start {
                shards.append(start..<i)
                start = i
                bytes = size
            } else {
                bytes += size
            }
        }
        if start < sizes.count || shards.isEmpty { shards.append(start..<sizes.count) }
        return shards
    }

    /// The index as transformers writes it: sorted keys, two-space indent, a final newline.
    static func indexJSON(totalSize: Int, weightMap: [(tensor: String, shard: String)]) -> Data {
        let json = SafeTensorsWriter.jsonString
        let lines = weightMap.sorted { $0.tensor < $1.tensor }.map { "    \(json($0.tensor)): \(json($0.shard))" }
        let text = """
            {
              "metadata": {
                "total_size": \(totalSize)
              },
              "weight_map": {
            \(lines.joined(separator: ",\n"))
              }
            }

            """
        return Data(text.utf8)
    }

    /// model-<digits>-of-<digits>.safetensors, as transformers names shards.
    static func isShardName(_ name: String) -> Bool {
        guard name.hasPrefix("model-"), name.hasSuffix(".safetensors") else { return false }
        let parts = name.dropFirst(6).dropLast(12).components(separatedBy: "-of-")
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }
    }

    /// Weight files in `dir` from any earlier save: model.safetensors, the index, shards named
    /// model-*-of-*.safetensors, and the shards an existing index names.
    static func weightFileNames(in dir: String) -> Set<String> {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        var found = Set(names.filter { name in
            name == CheckpointWeights.singleFileName || name == CheckpointWeights.indexFileName
                || isShardName(name)
        })
        if let map = try? CheckpointWeights.readIndex(indexPath(dir)) {
            for shard in Set(map.values) where shard.hasSuffix(".safetensors") && names.contains(shard) { found.insert(shard) }
        }
        return found
    }

    /// Saves a model living on any backend.
    public static func save(
        _ model: ParScaleModel, to dir: String, dtype: SafeTensorsDType = .F32, maxShardBytes: Int = defaultMaxShardBytes
    ) throws {
        var host = [Float](repeating: 0, count: model.parameters.count)
        host.withUnsafeMutableBufferPointer { model.backend.download(model.parameters, into: $0) }
        try host.withUnsafeBufferPointer {
            try save(config: model.config, parameters: $0, to: dir, dtype: dtype, maxShardBytes: maxShardBytes)
        }
    }

    /// One F32 safetensors file of the model's weights in official names, nothing else (no config,
    /// no shards): exact training state beside a rounded model file.
    public static func saveWeightsFile(_ model: ParScaleModel, to path: String) throws {
        var host = [Float](repeating: 0, count: model.parameters.count)
        host.withUnsafeMutableBufferPointer { model.backend.download(model.parameters, into: $0) }
        try host.withUnsafeBufferPointer { parameters in
            let entries = model.layout.entries.map { e in
                SafeTensorsWriter.Entry(
                    name: e.name, dtype: .F32, shape: e.shape,
                    payload: .floats(UnsafeBufferPointer(rebasing: parameters[e.range])))
            }
            try SafeTensorsWriter.write(entries, metadata: ["format": "pt"], to: path)
        }
    }

    // MARK: - Companion files

    /// Files of a model folder besides config and weights that travel with the weights when a
    /// command writes a new folder from an old one (tokenizer, generation defaults), copied as is.
    public static let companionFiles = [
        "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
        "added_tokens.json", "generation_config.json",
    ]

    /// Copies those of `companionFiles` present in `source` (a checkpoint or run folder) into `dest`,
    /// each atomically. Returns the names copied. Nothing to do when both are the same folder.
    @discardableResult
    public static func copyCompanionFiles(from source: String, to dest: String) throws -> [String] {
        let source = resolve(source)
        let same = URL(fileURLWithPath: source).standardizedFileURL.resolvingSymlinksInPath()
            == URL(fileURLWithPath: dest).standardizedFileURL.resolvingSymlinksInPath()
        if same { return [] }
        var copied: [String] = []
        for name in companionFiles {
            let from = (source as NSString).appendingPathComponent(name)
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: from, isDirectory: &isDir), !isDir.boolValue else { continue }
            guard let data = FileManager.default.contents(atPath: from) else {
                throw ConfigError("\(from): cannot read this file to copy it beside the new weights in \(dest)")
            }
            try atomicWrite(data, to: (dest as NSString).appendingPathComponent(name))
            copied.append(name)
        }
        return copied
    }
}
