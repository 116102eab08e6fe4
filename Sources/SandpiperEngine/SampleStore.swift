import Foundation
import SandpiperModel

/// Sample windows persisted between runs in `Clusters/<name>/.samples/windows.json` (git-ignored):
/// telemetry is not a decision, so it stays out of state.json and out of git history.
public enum SampleStore {
    public static func url(directory: URL) -> URL { directory.appendingPathComponent(".samples/windows.json") }

    public static func save(_ observation: Observation, directory: URL) throws(EngineError) {
        var windows: [String: [Sample]] = [:]
        for vm in observation.vms { windows[vm.name] = vm.samples }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            try AtomicFile.write(try encoder.encode(windows), to: url(directory: directory))
        } catch {
            throw .state(.writeFailed(path: url(directory: directory).path, reason: "\(error)"))
        }
    }
}
