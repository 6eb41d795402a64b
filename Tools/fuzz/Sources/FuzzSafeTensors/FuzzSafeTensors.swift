import FuzzSupport
import ParScale

/// A safetensors file: header parsed on open, then every tensor read as floats.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = writeInput(UnsafeBufferPointer(start: data, count: size), as: "model.safetensors")
    expectErrorOrSuccess {
        let file = try SafeTensorsFile(contentsOf: path)
        for name in file.names {
            let info = try file.info(name)
            if info.shape.reduce(1, *) <= 1 << 20 { _ = try? file.floats(name) }
        }
        _ = try? file.floats("absent")
    }
    return 0
}
