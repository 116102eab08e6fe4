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
    /// The cluster directory relative to the repository root (`Clusters/demo`), recorded in plans.
    public var repositoryPath: String = ""
    /// The replayed trace (telemetry source `trace`), parsed once at load; nil when the trace is read at observe
    /// time (an absolute path outside the cluster's files).
    public var trace: Trace? = nil
    /// The test-driver node files the spec names that `TestNodeReader` read while checking them, by the
    /// absolute path `connectionURI` opens: observe uses them instead of reading the files again.
    public var testNodeFiles: [String: TestNodeReader.Contents] = [:]
    /// What the load read from disk (nil for a load from a git tree): `inputs?.unchanged()` tells whether a
    /// reload could differ.
    public var inputs: LoadInputs? = nil

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
        // One loader for disk and for git trees: the disk is read through the same `ClusterFiles` view, rooted
        // at the cluster directory's grandparent (the repository part that holds Clusters/ and Policies/).
        let (specFile, shown) = locateSpec(path)
        let directory = specFile.deletingLastPathComponent()
        guard FileManager.default.fileExists(atPath: specFile.path) else {
            throw .unreadable(path: shown, reason: "no such file")
        }
        let root = directory.deletingLastPathComponent().deletingLastPathComponent()
        let rootPath = root.path == "/" ? "" : root.path
        let relativeDirectory = String(directory.path.dropFirst(rootPath.count + 1))
        let cwd = FileManager.default.currentDirectoryPath + "/"
        let recorder = LoadRecorder()
        var files = ClusterFiles(
            clusterDirectory: relativeDirectory, directory: directory,
            read: { relative in
                let absolute = rootPath + "/" + relative
                let bytes = readFile(absolute)
                recorder.inputs.read(absolute, bytes)
                return bytes
            },
            exists: { relative in
                let absolute = rootPath + "/" + relative
                let found = LoadInputs.isFile(absolute)
                recorder.inputs.exists(absolute, found)
                return found
            },
            shown: { relative in
                let absolute = rootPath + "/" + relative
                if relative == relativeDirectory + "/cluster.yaml" { return shown }
                return absolute.hasPrefix(cwd) ? String(absolute.dropFirst(cwd.count)) : absolute
            })
        files.existsAbsolute = { path in
            let found = FileManager.default.fileExists(atPath: path)
            recorder.inputs.exists(path, found)
            return found
        }
        var loaded = try load(files: files)
        loaded.inputs = recorder.inputs
        loaded.repositoryPath = relativeDirectory
        loaded.specFile = specFile
        loaded.policyFile = URL(fileURLWithPath: rootPath + "/" + files.policyPath(loaded.spec.policy))
        return loaded
    }

    /// A regular file's bytes, read straight into the array (a trace is hundreds of MiB: no `Data` copy);
    /// nil when it cannot be opened or is not a regular file.
    static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var filled = 0
        let ok = bytes.withUnsafeMutableBytes { buffer -> Bool in
            while filled < buffer.count {
                let n = read(fd, buffer.baseAddress! + filled, buffer.count - filled)
                if n < 0 { if errno == EINTR { continue }; return false }
                if n == 0 { break }
                filled += n
            }
            return true
        }
        guard ok else { return nil }
        if filled < bytes.count { bytes.removeLast(bytes.count - filled) }  // the file shrank while read
        return bytes
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
}
