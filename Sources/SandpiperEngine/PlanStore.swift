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
    /// The digest is taken of the plan's canonical JSON (`JSONValue.canonical`), so re-indenting the file or
    /// another JSON library's spacing does not change it; a changed value does.
    public static func decode(_ data: Data, source: String) throws(EngineError) -> PlanDocument {
        let document: PlanDocument
        do { document = try PlanDocument.decode(data) } catch {
            throw .plan("\(source): not a Sandpiper plan (\(describe(error)))")
        }
        guard let id = document.id else { throw .plan("\(source): the plan has no id; it was not made by `sandpiper plan`") }
        let actual: String
        switch document.idAlgorithm {
        case nil:
            actual = document.legacyID
        case PlanDocument.canonicalIDAlgorithm?:
            do { actual = try PlanDocument.canonicalID(ofJSON: data) } catch {
                throw .plan("\(source): not a Sandpiper plan (\(describe(error)))")
            }
        case let other?:
            throw .plan("\(source): the plan's id algorithm \(other) is unknown to Sandpiper \(SandpiperVersion.current)"
                + (document.sandpiperVersion.map { " (the plan was made by Sandpiper \($0))" } ?? "")
                + "; make a new plan with this version")
        }
        guard id == actual else {
            throw .plan("\(source): the plan was modified after it was made (its id is \(id), its content hashes to "
                + "\(actual)); make a new plan with `sandpiper plan` and review that")
        }
        if let problem = document.actions.lazy.compactMap(invalidParameters).first {
            throw .plan("\(source): \(problem); make a new plan with `sandpiper plan`")
        }
        return document
    }

    /// A decoding error as one line that names the field (`actions[2].kind: ...`).
    public static func describe(_ error: any Error) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { k in k.intValue.map { "[\($0)]" } ?? ".\(k.stringValue)" }.joined()
                .trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch error as? DecodingError {
        case .dataCorrupted(let c)?:
            return c.codingPath.isEmpty ? "not valid JSON" : "\(path(c.codingPath)): \(c.debugDescription)"
        case .keyNotFound(let key, let c)?:
            return "\(path(c.codingPath + [key])): missing"
        case .typeMismatch(let type, let c)?:
            return "\(path(c.codingPath)): expected \(type)"
        case .valueNotFound(let type, let c)?:
            return "\(path(c.codingPath)): expected \(type), found null"
        default:
            return "\(error)"
        }
    }

    /// The cluster directory a saved plan belongs to: `--cluster` when given; else the directory the plan
    /// records (`clusterDirectory`, relative to its repository root) found above the plan file or above the
    /// current directory; else the plan file's `../..` (`Clusters/<name>/plans/<id>.json`).
    public static func clusterDirectory(for document: PlanDocument, planPath: String,
                                        override: String? = nil) throws(EngineError) -> String {
        if let override { return override }
        let fm = FileManager.default
        func hasSpec(_ dir: URL) -> Bool { fm.fileExists(atPath: dir.appendingPathComponent("cluster.yaml").path) }
        let planFile = URL(fileURLWithPath: planPath).standardizedFileURL
        if let recorded = document.clusterDirectory, !recorded.isEmpty, !recorded.hasPrefix("/"),
           !recorded.split(separator: "/").contains("..") {
            for start in [planFile.deletingLastPathComponent(),
                          URL(fileURLWithPath: fm.currentDirectoryPath).standardizedFileURL] {
                var dir = start
                while true {
                    let candidate = dir.appendingPathComponent(recorded)
                    if hasSpec(candidate) { return candidate.path }
                    let parent = dir.deletingLastPathComponent()
                    if parent.path == dir.path { break }
                    dir = parent
                }
            }
        }
        let conventional = planFile.deletingLastPathComponent().deletingLastPathComponent()
        if document.clusterDirectory == nil || hasSpec(conventional) { return conventional.path }
        let name = document.cluster.map { "cluster \($0)" } ?? "its cluster"
        let recorded = document.clusterDirectory.map { " (\($0) in its repository)" } ?? ""
        throw .plan("\(planPath): cannot find \(name)\(recorded) above the plan file or the current directory; "
            + "run apply from the repository, or pass --cluster DIR")
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
