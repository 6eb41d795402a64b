import Foundation

/// A ParScale adapter: the prefixes and the aggregation head trained on a frozen P = 1 backbone,
/// saved apart from it ("dynamic ParScale": one backbone, several P chosen at inference).
/// File: safetensors with the official tensor names, and metadata naming the backbone's hash and
/// the ParScale settings.
public enum Adapter {
    public static let format = "parscale-adapter-v1"

    /// A hash of the backbone's tensors (names and float32 bits, layout order): two FNV-1a 64
    /// streams, enough to tell backbones apart (not a cryptographic guarantee).
    public static func backboneHash(_ model: ParScaleModel) -> String {
        var host = [Float](repeating: 0, count: model.parameters.count)
        host.withUnsafeMutableBufferPointer { model.backend.download(model.parameters, into: $0) }
        var a: UInt64 = 0xcbf2_9ce4_8422_2325, b: UInt64 = 0x8422_2325_cbf2_9ce4
        func mix(_ byte: UInt8) {
            a = (a ^ UInt64(byte)) &* 0x100_0000_01b3
            b = (b ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 &+ 0x9E37_79B9
        }
        for e in model.layout.entries where !ParameterLayout.isParScaleOnly(e.name) {
            for byte in e.name.utf8 { mix(byte) }
            for i in e.range {
                let bits = host[i].bitPattern
                mix(UInt8(bits & 0xFF)); mix(UInt8(bits >> 8 & 0xFF)); mix(UInt8(bits >> 16 & 0xFF)); mix(UInt8(bits >> 24))
            }
        }
        return String(format: "%016llx%016llx", a, b)
    }

    /// Saves the ParScale tensors of `model` (P > 1) as an adapter of the backbone with `backboneHash`.
    public static func save(_ model: ParScaleModel, backboneHash: String, to path: String) throws {
        let c = model.config
        guard c.streams > 1 else { throw ModelError("an adapter needs a model with P > 1") }
        var host = [Float](repeating: 0, count: model.parameters.count)
        host.withUnsafeMutableBufferPointer { model.backend.download(model.parameters, into: $0) }
        try host.withUnsafeBufferPointer { all in
            let entries = model.layout.entries.filter { ParameterLayout.isParScaleOnly($0.name) }.map { e in
                SafeTensorsWriter.Entry(
                    name: e.name, dtype: .F32, shape: e.shape,
                    payload: .floats(UnsafeBufferPointer(rebasing: all[e.range])))
            }
            try SafeTensorsWriter.write(
                entries,
                metadata: [
                    "format": format, "backbone_hash": backboneHash, "parscale_n": String(c.parscaleN),
                    "parscale_n_tokens": String(c.parscaleNTokens), "parscale_attn_smooth": String(c.parscaleAttnSmooth),
                ], to: path)
        }
    }

    /// The P-stream model made of `backbone` (P = 1) and the adapter at `path`; a wrong backbone,
    /// or a file that is not an adapter, is a clear error.
    public static func apply(_ path: String, to backbone: ParScaleModel) throws -> ParScaleModel {
        let file = try SafeTensorsFile(contentsOf: path)
        guard file.metadata["format"] == format else {
            throw SafeTensorsError(file: path, "not a parscale adapter (metadata format is '\(file.metadata["format"] ?? "absent")', expected '\(format)')")
        }
        guard backbone.config.streams == 1 else {
            throw ModelError("--adapter needs a P = 1 backbone as --model; this model has P = \(backbone.config.streams)")
        }
        let hash = backboneHash(backbone)
        guard file.metadata["backbone_hash"] == hash else {
            throw SafeTensorsError(
                file: path,
                "this adapter belongs to backbone \(file.metadata["backbone_hash"] ?? "?"), not to the given model (\(hash)): use the backbone it was trained on")
        }
        guard let p = file.metadata["parscale_n"].flatMap(Int.init), let t = file.metadata["parscale_n_tokens"].flatMap(Int.init),
            let s = file.metadata["parscale_attn_smooth"].flatMap(Double.init), p > 1, t > 0
        else { throw SafeTensorsError(file: path, "metadata lacks valid parscale_n / parscale_n_tokens / parscale_attn_smooth") }
        var config = backbone.config
        config.modelType = "qwen2_parscale"
        config.parscaleN = p
        config.parscaleNTokens = t
        config.parscaleAttnSmooth = s
        try config.validate()
        let layout = ParameterLayout(config)
        var host = [Float](repeating: 0, count: layout.totalCount)
        var source = [Float](repeating: 0, count: backbone.parameters.count)
        source.withUnsafeMutableBufferPointer { backbone.backend.download(backbone.parameters, into: $0) }
        for e in layout.entries {
            if ParameterLayout.isParScaleOnly(e.name) {
                guard let info = file.tensors[e.name], info.shape == e.shape else {
                    throw SafeTensorsError(file: path, tensor: e.name, "missing, or not of shape \(e.shape) for P = \(p), T = \(t)")
                }
                try host.withUnsafeMutableBufferPointer {
                    try file.readFloats(e.name, into: UnsafeMutableBufferPointer(rebasing: $0[e.range]))
                }
            } else {
                let from = backbone.layout.entry(e.name)!
                host.replaceSubrange(e.range, with: source[from.range])
            }
        }
        let parameters = backbone.backend.allocate(layout.totalCount)
        host.withUnsafeBufferPointer { backbone.backend.upload($0, to: parameters) }
        return ParScaleModel(config: config, backend: backbone.backend, parameters: parameters)
    }
}
