import Foundation
import FuzzSupport
import ParScaleTrain

/// trainer_state.json, decoded as a resume decodes it, then encoded again.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = writeInput(UnsafeBufferPointer(start: data, count: size), as: "trainer_state.json")
    expectErrorOrSuccess {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let state = try JSONDecoder().decode(TrainerState.self, from: bytes)
        _ = try JSONEncoder().encode(state)
    }
    return 0
}
