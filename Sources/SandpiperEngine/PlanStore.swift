import Foundation
import SandpiperModel

/// Saved plans: `Clusters/<name>/plans/<id>.json` (or any path given with --out).
public enum PlanStore {
    public static func defaultURL(_ cluster: LoadedCluster, id: String) -> URL {
        cluster.directory.appendingPathComponent("plans/\(id).json")
    }

    public static func save(_ document: PlanDocument, to url: URL) throws(EngineError) {
        do { try AtomicFile.write(try document.encoded() + Data("\n".utf8), to: url) } catch {
            throw .plan("cannot save the plan to \(url.path): \(error)")
        }
    }

    public static func load(_ path: String) throws(EngineError) -> PlanDocument {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .plan("\(path): no such plan file")
        }
        do { return try PlanDocument.decode(data) } catch {
            throw .plan("\(path): not a Sandpiper plan (\(error))")
        }
    }
}
