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
        if let problem = document.actions.lazy.compactMap(invalidParameters).first {
            throw .plan("\(source): \(problem); make a new plan with `sandpiper plan`")
        }
        return document
    }

    /// What `plan` never writes: values libvirt cannot take (a hand-made or damaged plan).
    static func invalidParameters(_ a: PlanDocument.Action) -> String? {
        let p = a.parameters
        func mib(_ v: Double?, allowUnlimited: Bool = false) -> Bool {
            guard let v else { return true }
            return v.isFinite && (v >= 0 || (allowUnlimited && v == -1)) && v <= Double(1 << 30)
        }
        if let v = p.vcpus, !(1...4096).contains(v) { return "action \(a.id): \(v) vCPUs is out of range" }
        if let s = p.cpuShares, !(0...10_000_000).contains(s) { return "action \(a.id): cpu shares \(s) is out of range" }
        if let t = p.cpuPeriodMicros, !(1_000...1_000_000).contains(t) { return "action \(a.id): cpu period \(t) is out of range" }
        if let q = p.cpuQuotaMicros, q != -1, !(1_000...100_000_000_000).contains(q) {
            return "action \(a.id): cpu quota \(q) is out of range"
        }
        if !mib(p.memoryMiB) || !mib(p.balloonMiB) || !mib(p.memoryHardLimitMiB, allowUnlimited: true)
            || !mib(p.memorySoftLimitMiB, allowUnlimited: true) {
            return "action \(a.id): a memory amount is out of range"
        }
        return nil
    }
}
