import Foundation
import FuzzSupport
import ParScale

/// The shards of the fixture's sharded checkpoint, copied once beside the fuzzed index.
let shardsReady: Bool = {
    let source = ProcessInfo.processInfo.environment["PARSCALE_FUZZ_SHARDS"] ?? "Tests/Fixtures/hf-qwen2/model"
    for i in 1...3 {
        let name = "model-0000\(i)-of-00003.safetensors"
        try? FileManager.default.removeItem(atPath: fuzzPath(name))
        try? FileManager.default.copyItem(atPath: (source as NSString).appendingPathComponent(name), toPath: fuzzPath(name))
    }
    return true
}()

/// model.safetensors.index.json beside three real shards; every tensor it places is then read.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    precondition(shardsReady)
    let path = writeInput(UnsafeBufferPointer(start: data, count: size), as: "model.safetensors.index.json")
    expectErrorOrSuccess {
        let weights = try CheckpointWeights(index: path)
        for name in weights.names {
            let info = try weights.info(name)
            var out = [Float](repeating: 0, count: info.shape.reduce(1, *))
            try out.withUnsafeMutableBufferPointer { try weights.readFloats(name, into: $0) }
        }
    }
    return 0
}
