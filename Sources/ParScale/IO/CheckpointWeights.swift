import Foundation

/// The weight files of a checkpoint folder, single or sharded, as Hugging Face writes them:
///   DIR/model.safetensors                      one file, or
///   DIR/model.safetensors.index.json           {"metadata": {"total_size": N},
///                                               "weight_map": {"tensor.name": "model-00001-of-00002.safetensors", ...}}
///   DIR/model-00001-of-00002.safetensors ...   the shards it names.
/// When both exist the single file wins (as in transformers). Each file is memory mapped once, and
/// every tensor is read from exactly the file the index names; the index and the shards must agree.
public final class CheckpointWeights {
    public static let singleFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"

    /// The weight files, shards in name order (one for a single file).
    public let files: [SafeTensorsFile]
    /// The index, when the weights are sharded.
    public let indexPath: String?
    /// Each tensor's file and header entry.
    public let location: [String: (file: SafeTensorsFile, info: SafeTensorInfo)]

    /// Tensor names, sorted.
    public var names: [String] { location.keys.sorted() }
    public var paths: [String] { files.map(\.path) }

    /// The weights of a checkpoint folder (not resolved: pass `Checkpoint.resolve(dir)` for run folders).
    public convenience init(directory dir: String) throws {
        let single = (dir as NSString).appendingPathComponent(Self.singleFileName)
        let index = (dir as NSString).appendingPathComponent(Self.indexFileName)
        let fm = FileManager.default
        if fm.fileExists(atPath: single) {
            try self.init(file: single)
        } else if fm.fileExists(atPath: index) {
            try self.init(index: index)
        } else {
            throw SafeTensorsError(
                file: single, "cannot open: no such file, and no \(Self.indexFileName) of sharded weights either")
        }
    }

    /// One path: a checkpoint folder, a sharded checkpoint's index, or a single safetensors file.
    public convenience init(path: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            try self.init(directory: path)
        } else if path.hasSuffix(".index.json") {
            try self.init(index: path)
        } else if !FileManager.default.fileExists(atPath: path),
            (path as NSString).lastPathComponent == Self.singleFileName,
            FileManager.default.fileExists(atPath: Self.indexPath(besideSingleFile: path))
        {
            // `Checkpoint.weightsPath(dir)` of a sharded folder.
            try self.init(index: Self.indexPath(besideSingleFile: path))
        } else {
            try self.init(file: path)
        }
    }

    static func indexPath(besideSingleFile path: String) -> String {
        ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(indexFileName)
    }

    /// A single safetensors file.
    public init(file path: String) throws {
        let file = try SafeTensorsFile(contentsOf: path)
        files = [file]
        indexPath = nil
        var location: [String: (file: SafeTensorsFile, info: SafeTensorInfo)] = [:]
        for (name, info) in file.tensors { location[name] = (file, info) }
        self.location = location
    }

    /// A sharded checkpoint: its index and every shard the index names, checked against each other.
    public init(index indexPath: String) throws {
        let map = try Self.readIndex(indexPath)
        let dir = (indexPath as NSString).deletingLastPathComponent
        let indexName = (indexPath as NSString).lastPathComponent
        // Each shard mapped once, in name order.
        var shards: [String: SafeTensorsFile] = [:]
        var files: [SafeTensorsFile] = []
        for shard in Set(map.values).sorted() {
            let path = (dir as NSString).appendingPathComponent(shard)
            guard FileManager.default.fileExists(atPath: path) else {
                let named = map.keys.filter { map[$0] == shard }.sorted()
                throw SafeTensorsError(
                    file: path,
                    "missing shard: \(indexName) places \(named.count) tensor\(named.count == 1 ? "" : "s") in it (e.g. '\(named[0])'), but there is no such file")
            }
            let file = try SafeTensorsFile(contentsOf: path)
            shards[shard] = file
            files.append(file)
        }
        // A tensor held by two shards is ambiguous, whatever the index says.
        var holder: [String: SafeTensorsFile] = [:]
        for file in files {
            for name in file.names {
                if let other = holder[name] {
                    let named = map[name].map { "\(indexName) names \($0)" } ?? "\(indexName) does not list it"
                    throw SafeTensorsError(
                        file: file.path, tensor: name,
                        "tensor is in two shards, this one and \((other.path as NSString).lastPathComponent) (\(named)); a checkpoint must hold each tensor once")
                }
                holder[name] = file
            }
        }
        var location: [String: (file: SafeTensorsFile, info: SafeTensorInfo)] = [:]
        for file in files {
            for name in file.names where map[name] == nil {
                throw SafeTensorsError(
                    file: file.path, tensor: name,
                    "the shard holds this tensor, but \(indexName)'s weight_map does not list it (the index and its shards disagree)")
            }
        }
        for name in map.keys.sorted() {
            let shard = shards[map[name]!]!
            guard let info = shard.tensors[name] else {
                throw SafeTensorsError(
                    file: shard.path, tensor: name,
                    "\(indexName) places this tensor in this shard, but the shard does not hold it (it has \(shard.tensors.count) tensor\(shard.tensors.count == 1 ? "" : "s"))")
            }
            location[name] = (shard, info)
        }
        self.files = files
        self.indexPath = indexPath
        self.location = location
    }

    /// The header entry of `name`; errors name the weights and the tensor.
    public func info(_ name: String) throws -> SafeTensorInfo {
        guard let entry = location[name] else { throw absent(name) }
        return entry.info
    }

    private func absent(_ name: String) -> SafeTensorsError {
        SafeTensorsError(file: indexPath ?? files[0].path, tensor: name, "no such tensor in these weights")
    }

    /// The path of the file holding `name` (the index for an absent tensor of sharded weights).
    public func path(of name: String) -> String {
        location[name]?.file.path ?? indexPath ?? files[0].path
    }

    /// Reads `name` as floats from the file that holds it (see `SafeTensorsFile.readFloats`).
    public func readFloats(_ name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        guard let entry = location[name] else { throw absent(name) }
        try entry.file.readFloats(name, into: destination)
    }

    /// Bytes of the weight files on disk (the shards' sum; the index not counted).
    public var fileBytes: Int {
        files.reduce(0) { total, file in
            total + ((try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? 0)
        }
    }

    // MARK: - The index

    /// A shard name the index may use: a plain file name in the checkpoint's own folder.
    static func isSafeShardName(_ name: String) -> Bool {
        !name.isEmpty && !name.contains("/") && !name.contains("\\") && !name.contains("..") && !name.contains("\0")
            && name != "."
    }

    /// The weight_map of an index file, checked: tensor name -> shard file name.
    static func readIndex(_ path: String) throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw SafeTensorsError(file: path, "cannot read the index file")
        }
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: data)
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw SafeTensorsError(
                file: path,
                "not valid JSON\(detail.map { " (\($0))" } ?? ""); expected {\"metadata\": {\"total_size\": N}, \"weight_map\": {\"tensor name\": \"shard file\", ...}}")
        }
        guard let object = json as? [String: Any] else {
            throw SafeTensorsError(file: path, "the index must be a JSON object with a \"weight_map\" object")
        }
        if let metadata = object["metadata"] {
            guard let fields = metadata as? [String: Any] else {
                throw SafeTensorsError(file: path, "\"metadata\" must be a JSON object (e.g. {\"total_size\": N})")
            }
            if let total = fields["total_size"] {
                // Booleans arrive as NSNumber of type "c": rejected, as are fractions.
                guard let number = total as? NSNumber, String(cString: number.objCType) != "c",
                    let value = Int(exactly: number.doubleValue), value >= 0
                else {
                    throw SafeTensorsError(file: path, "\"metadata\".\"total_size\" must be a non-negative integer (bytes of tensor data), got \(total)")
                }
            }
        }
        guard let rawMap = object["weight_map"] else {
            throw SafeTensorsError(file: path, "the index has no \"weight_map\" (tensor name -> shard file)")
        }
        guard let entries = rawMap as? [String: Any] else {
            throw SafeTensorsError(file: path, "\"weight_map\" must be a JSON object mapping tensor names to shard file names")
        }
        guard !entries.isEmpty else { throw SafeTensorsError(file: path, "\"weight_map\" lists no tensors") }
        var map: [String: String] = [:]
        for name in entries.keys.sorted() {
            guard let shard = entries[name] as? String else {
                throw SafeTensorsError(file: path, tensor: name, "\"weight_map\" must give a shard file name (a string) for each tensor, got \(entries[name]!)")
            }
            guard isSafeShardName(shard) else {
                throw SafeTensorsError(
                    file: path, tensor: name,
                    "shard name '\(shard)' is not a plain file name (no path separator or \"..\"): shards must lie in the checkpoint's own folder")
            }
            map[name] = shard
        }
        return map
    }
}

extension SafeTensorsDType: Codable {}
