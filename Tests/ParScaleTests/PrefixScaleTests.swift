import XCTest

@testable import ParScale
import TestSupport

/// `PrefixScale.keys`: the prefixes are drawn at the std of the keys the new backbone computes
/// itself (k_proj applied to normed embeddings), at two widths.
final class PrefixScaleTests: XCTestCase {
    func testKeyScaledPrefixesMatchTheBackbonesKeys() {
        for hidden in [32, 96] {
            let config = tinyConfig(P: 4, hidden: hidden, intermediate: 88, prefixTokens: 8)
            let model = ParScaleModel.initialized(config, backend: CPUBackend(), options: InitOptions(seed: 7, prefixScale: .keys))
            let params = model.parameters.host
            func entry(_ name: String) -> ParameterTensor { model.layout.entries.first { $0.name == name }! }
            func sd(_ values: [Double]) -> Double { (values.reduce(0) { $0 + $1 * $1 } / Double(values.count)).squareRoot() }
            let prefix = entry("model.layers.0.self_attn.prefix_k")
            let prefixSD = sd((prefix.offset..<prefix.offset + prefix.count).map { Double(params[$0]) })
            // Keys of every vocabulary entry: k_proj (zero bias) of the unit-RMS normed embedding row.
            let embedding = entry("model.embed_tokens.weight"), kProj = entry("model.layers.0.self_attn.k_proj.weight")
            let H = hidden, keyRows = kProj.count / H
            var keys: [Double] = []
            for v in 0..<config.vocabSize {
                let row = (0..<H).map { Double(params[embedding.offset + v * H + $0]) }
                let rms = (row.reduce(0) { $0 + $1 * $1 } / Double(H)).squareRoot()
                for j in 0..<keyRows {
                    keys.append((0..<H).reduce(0.0) { $0 + Double(params[kProj.offset + j * H + $1]) * row[$1] / rms })
                }
            }
            XCTAssertEqual(prefixSD / sd(keys), 1, accuracy: 0.1, "hidden \(hidden): prefix sd \(prefixSD), keys' sd \(sd(keys))")
            XCTAssertEqual(prefixSD, 0.02 * Double(H).squareRoot(), accuracy: 0.1 * 0.02 * Double(H).squareRoot())
        }
    }
}
