import Foundation
import SandpiperModel

/// Where `ClusterLoader.load(files:)` reads a cluster from when it is not a directory on disk
/// (a commit's tree): repository-relative paths in, bytes out.
public struct ClusterFiles {
    /// Repository-relative directory of the cluster (`Clusters/demo`).
    public var clusterDirectory: String
    /// Content of a repository-relative file, nil when absent.
    public var read: (String) -> [UInt8]?
    /// Whether a repository-relative file exists, without reading it (a trace is megabytes).
    public var exists: (String) -> Bool
    /// How a repository-relative path is shown in diagnostics (`main:Clusters/demo/cluster.yaml`).
    public var shown: (String) -> String
    /// Where the cluster's own files (trace, host XML, templates, state.json) can be found on disk,
    /// for `LoadedCluster.resolve` (a materialised copy of the tree).
    public var directory: URL
    /// Whether an absolute path named by the spec (a template outside the repository) exists.
    public var existsAbsolute: (String) -> Bool = { FileManager.default.fileExists(atPath: $0) }

    public init(clusterDirectory: String, directory: URL, read: @escaping (String) -> [UInt8]?,
                exists: ((String) -> Bool)? = nil, shown: @escaping (String) -> String) {
        self.clusterDirectory = clusterDirectory.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        self.directory = directory
        self.read = read
        self.exists = exists ?? { read($0) != nil }
        self.shown = shown
    }

    /// The repository-relative path of the policy `name` for this cluster: `Policies/<name>.yaml` at the root
    /// of the repository part that holds `Clusters/` (the cluster directory's grandparent).
    public func policyPath(_ name: String) -> String {
        let parts = clusterDirectory.split(separator: "/").dropLast(2)
        return (parts.map(String.init) + ["Policies", "\(name).yaml"]).joined(separator: "/")
    }

    public var specPath: String { clusterDirectory + "/cluster.yaml" }
}

extension ClusterLoader {
    /// Loads a cluster from in-memory files (a commit's tree) with the same checks, limits and diagnostics as
    /// `load(_:)`; paths in diagnostics are shown through `files.shown`. Relative files named by the spec
    /// (trace, host node XML, templates) must exist in the same tree.
    public static func load(files: ClusterFiles) throws(LoadError) -> LoadedCluster {
        let specShown = files.shown(files.specPath)
        let specText = try decode(files.read(files.specPath), shown: specShown)
        let checked = SpecDecoder.check(specText.text, file: specShown) { relative in
            if relative.hasPrefix("/") { return files.existsAbsolute(relative) }
            guard let path = normalize(files.clusterDirectory + "/" + relative) else { return false }
            return files.exists(path)
        }
        let nodeFiles = nodeFileDiagnostics(checked.spec, files)
        var diagnostics = checked.diagnostics + nodeFiles.diagnostics
        var policy: Policy?
        var policyPath = files.policyPath("default")
        var policyDigest = ""
        if let spec = checked.spec, let sourceMap = checked.sourceMap {
            policyPath = files.policyPath(spec.policy)
            let policyShown = files.shown(policyPath)
            if let bytes = files.read(policyPath) {
                do {
                    let text = try decode(bytes, shown: policyShown)
                    policyDigest = text.digest
                    policy = try SpecDecoder.decodePolicy(text.text, file: policyShown, name: spec.policy)
                } catch let e as SpecErrors {
                    diagnostics += e.diagnostics
                } catch {
                    diagnostics += (error as? LoadError)?.diagnostics ?? []
                }
            } else {
                diagnostics.append(sourceMap.diagnostic("policy",
                    "policy \"\(spec.policy)\" not found (looked for \(policyShown))"))
            }
        }
        // A replayed trace is part of the spec's contract: check it here, not at the first plan, and keep it
        // (observe replays it from memory; the file is parsed once).
        var parsedTrace: Trace?
        if let spec = checked.spec, spec.telemetry.source == .trace, let trace = spec.telemetry.trace,
           !trace.hasPrefix("/"), let path = normalize(files.clusterDirectory + "/" + trace),
           let bytes = files.read(path) {
            do { parsedTrace = try Trace.parse(bytes: bytes, file: files.shown(path)) } catch {
                diagnostics.append(SpecDiagnostic(file: error.file, line: error.line, column: error.column, field: "",
                                                  message: error.message))
            }
        }
        guard diagnostics.isEmpty, let spec = checked.spec, let policy else {
            throw .invalid(SpecErrors(diagnostics))
        }
        let policyLevels = files.clusterDirectory.split(separator: "/").count
        let policyFile = files.directory.appendingPathComponent(
            String(repeating: "../", count: max(0, policyLevels)) + policyPath).standardizedFileURL
        return LoadedCluster(spec: spec, policy: policy, directory: files.directory,
                             specFile: files.directory.appendingPathComponent("cluster.yaml"),
                             policyFile: policyFile, specDigest: specText.digest, policyDigest: policyDigest,
                             trace: parsedTrace, testNodeFiles: nodeFiles.contents)
    }

    private static func decode(_ bytes: [UInt8]?, shown: String) throws(LoadError) -> (text: String, digest: String) {
        guard let bytes else { throw .unreadable(path: shown, reason: "no such file") }
        if bytes.count > maxFileBytes {
            throw .unreadable(path: shown, reason: "file is \(bytes.count) bytes; the limit is \(maxFileBytes)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .unreadable(path: shown, reason: "is not UTF-8 text")
        }
        return (text, SHA256.hex(Data(bytes)))
    }

    /// `a/b/../c` -> `a/c`; nil when it climbs above the repository root.
    static func normalize(_ path: String) -> String? {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { if parts.popLast() == nil { return nil }; continue }
            parts.append(part)
        }
        return parts.joined(separator: "/")
    }
}
