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
        return try decode(data, source: path)
    }

    /// Decodes a saved plan and checks that it is what `plan` wrote: its id is the digest of its content, so a
    /// plan edited after review (by hand or by a bad merge) is refused instead of applied under the reviewed id.
    public static func decode(_ data: Data, source: String) throws(EngineError) -> PlanDocument {
        let document: PlanDocument
        do { document = try PlanDocument.decode(data) } catch {
            throw .plan("\(source): not a Sandpiper plan (\(error))")
        }
        let actual = Engine.planID(document)
        guard let id = document.id else { throw .plan("\(source): the plan has no id; it was not made by `sandpiper plan`") }
        guard id == actual else {
            throw .plan("\(source): the plan was modified after it was made (its id is \(id), its content hashes to "
                + "\(actual)); make a new plan with `sandpiper plan` and review that")
        }
        return document
    }
}
