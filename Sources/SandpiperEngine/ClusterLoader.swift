import Foundation
import SandpiperModel

/// A cluster spec and its policy, loaded from disk and checked, with what a saved plan records about them.
public struct LoadedCluster: Sendable {
    public var spec: ClusterSpec
    public var policy: Policy
    /// Directory holding cluster.yaml.
    public var directory: URL
    public var specFile: URL
    public var policyFile: URL
    /// SHA-256 of the exact bytes of cluster.yaml and of the policy file.
    public var specDigest: String
    public var policyDigest: String

    /// Absolute path of a file named relative to cluster.yaml.
    public func resolve(_ relative: String) -> URL {
        relative.hasPrefix("/") ? URL(fileURLWithPath: relative)
            : directory.appendingPathComponent(relative).standardizedFileURL
    }

    /// The libvirt URI to open for `host`: `test:hosts/pm1.xml` becomes `test:///abs/.../hosts/pm1.xml`.
    public func connectionURI(for host: HostSpec) -> String {
        if case .success(let uri) = HostURI.parse(host.uri), let file = uri.relativeTestFile {
            return "test://" + resolve(file).path
        }
        return host.uri
    }
}

/// Failure to load a cluster: every diagnostic found, or a file that could not be read.
public enum LoadError: Error, CustomStringConvertible, Sendable {
    case invalid(SpecErrors)
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let errors): errors.description
        case .unreadable(let path, let reason): "\(path): \(reason)"
        }
    }

    public var diagnostics: [SpecDiagnostic] {
        switch self {
        case .invalid(let e): e.diagnostics
        case .unreadable(let path, let reason):
            [SpecDiagnostic(file: path, line: 1, column: 1, field: "", message: reason)]
        }
    }
}

public enum ClusterLoader {
    /// Loads `path` (a cluster directory, or its cluster.yaml) and the policy it names from
    /// `Policies/` at the root of the repository that holds `Clusters/` (the cluster directory's grandparent).
    /// Paths in diagnostics are shown as the operator wrote them.
    public static func load(_ path: String) throws(LoadError) -> LoadedCluster {
        let (specFile, shown) = locateSpec(path)
        let specText = try read(specFile, shown: shown)
        let directory = specFile.deletingLastPathComponent()

        let fm = FileManager.default
        let checked = SpecDecoder.check(specText.text, file: shown) { relative in
            let url = relative.hasPrefix("/") ? URL(fileURLWithPath: relative) : directory.appendingPathComponent(relative)
            return fm.fileExists(atPath: url.path)
        }
        var diagnostics = checked.diagnostics

        var policy: Policy?
        var policyFile = directory.appendingPathComponent("../../Policies/default.yaml").standardizedFileURL
        var policyDigest = ""
        // The policy is checked even when the spec has errors, so one run reports both files' problems.
        if let spec = checked.spec, let sourceMap = checked.sourceMap {
            policyFile = directory.appendingPathComponent("../../Policies/\(spec.policy).yaml").standardizedFileURL
            let policyShown = displayPath(policyFile, relativeTo: shown, specFile: specFile)
            if !fm.fileExists(atPath: policyFile.path) {
                diagnostics.append(sourceMap.diagnostic("policy",
                    "policy \"\(spec.policy)\" not found (looked for \(policyShown))"))
            } else {
                do {
                    let text = try read(policyFile, shown: policyShown)
                    policyDigest = text.digest
                    policy = try SpecDecoder.decodePolicy(text.text, file: policyShown, name: spec.policy)
                } catch let e as SpecErrors {
                    diagnostics += e.diagnostics
                } catch {
                    diagnostics += (error as? LoadError)?.diagnostics ?? []
                }
            }
        }
        guard diagnostics.isEmpty, let spec = checked.spec, let policy else {
            throw .invalid(SpecErrors(diagnostics))
        }
        return LoadedCluster(spec: spec, policy: policy, directory: directory, specFile: specFile,
                             policyFile: policyFile, specDigest: specText.digest, policyDigest: policyDigest)
    }

    /// Largest file read as a spec or policy; bigger ones are refused before parsing.
    public static let maxFileBytes = 4 << 20

    private static func locateSpec(_ path: String) -> (URL, String) {
        var isDirectory: ObjCBool = false
        let url = URL(fileURLWithPath: path)
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            let shown = path.hasSuffix("/") ? path + "cluster.yaml" : path + "/cluster.yaml"
            return (url.appendingPathComponent("cluster.yaml").standardizedFileURL, shown)
        }
        return (url.standardizedFileURL, path)
    }

    private static func displayPath(_ file: URL, relativeTo shown: String, specFile: URL) -> String {
        // Show the policy path in the same style as the spec path the operator typed.
        let cwd = FileManager.default.currentDirectoryPath
        if !shown.hasPrefix("/"), file.path.hasPrefix(cwd + "/") {
            return String(file.path.dropFirst(cwd.count + 1))
        }
        return file.path
    }

    private static func read(_ url: URL, shown: String) throws(LoadError) -> (text: String, digest: String) {
        let attributes = try? FileManager.default.attributesOfItem(atPath: url.path)
        guard attributes != nil else { throw .unreadable(path: shown, reason: "no such file") }
        if let size = attributes?[.size] as? Int, size > maxFileBytes {
            throw .unreadable(path: shown, reason: "file is \(size) bytes; the limit is \(maxFileBytes)")
        }
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw .unreadable(path: shown, reason: "cannot be read")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw .unreadable(path: shown, reason: "is not UTF-8 text")
        }
        return (text, SHA256.hex(data))
    }
}
