import Foundation
import FuzzSupport
import ParScale

/// The backbone the corpus's adapters were saved for: the tests' tiny P = 1 model, seed 1.
let backbone: ParScaleModel = {
    let config = ModelConfig(
        vocabSize: 256, hiddenSize: 32, intermediateSize: 88, numHiddenLayers: 2, numAttentionHeads: 4,
        numKeyValueHeads: 2, tieWordEmbeddings: true, parscaleN: 1, parscaleNTokens: 4,
        parscaleAttnSmooth: ModelConfig.defaultSmoothingForNewModels)
    let model = ParScaleModel.initialized(config, backend: CPUBackend(), options: InitOptions(seed: 1))
    // PARSCALE_FUZZ_MAKE_SEED=path: write a valid adapter of this backbone there (the corpus seed) and exit.
    if let seed = ProcessInfo.processInfo.environment["PARSCALE_FUZZ_MAKE_SEED"] {
        var c = config
        c.modelType = "qwen2_parscale"
        c.parscaleN = 2
        let p2 = ParScaleModel.initialized(c, backend: CPUBackend(), options: InitOptions(seed: 2))
        do { try Adapter.save(p2, backboneHash: Adapter.backboneHash(model), to: seed) } catch { fatalError("\(error)") }
        exit(0)
    }
    return model
}()

/// An adapter file applied to the backbone.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let model = backbone
    let path = writeInput(UnsafeBufferPointer(start: data, count: size), as: "adapter.safetensors")
    expectErrorOrSuccess { _ = try Adapter.apply(path, to: model) }
    return 0
}
