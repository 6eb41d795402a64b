import FuzzSupport
import ParScale

/// config.json: loaded (which validates it), then written back.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = writeInput(UnsafeBufferPointer(start: data, count: size), as: "config.json")
    expectErrorOrSuccess {
        let config = try ModelConfig.load(from: path)
        try config.validate()
        _ = try config.jsonData()
    }
    return 0
}
