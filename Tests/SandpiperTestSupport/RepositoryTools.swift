import Foundation

/// The checkout these tests run from (for the bundled Clusters/ and Policies/): the nearest directory above this
/// file that holds Package.swift.
public let repositoryRoot: URL = {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
    }
    fatalError("Package.swift not found above \(#filePath)")
}()

/// Copies a bundled item (`Clusters`, `Clusters/<name>`, `Policies`) without the git-ignored run artefacts an
/// operator following the README leaves in the checkout (state.json, plans/, .samples/, lock files): a test
/// starts from the bundled spec, not from the last `plan`/`apply`/`run` on this machine.
public func copyBundled(from source: URL, to target: URL) throws {
    let fm = FileManager.default
    try fm.copyItem(at: source, to: target)
    guard let walk = fm.enumerator(at: target, includingPropertiesForKeys: nil) else { return }
    var artefacts: [URL] = []
    for case let url as URL in walk {
        let name = url.lastPathComponent
        let inCluster = fm.fileExists(atPath: url.deletingLastPathComponent().appendingPathComponent("cluster.yaml").path)
        if inCluster && (["state.json", "plans", ".samples", ".sandpiper.lock"].contains(name)
                         || name.hasPrefix(".sandpiper.lock.")) {
            artefacts.append(url)
            walk.skipDescendants()
        }
    }
    for url in artefacts { try fm.removeItem(at: url) }
}

/// The `git` command line, for building fixtures and cross-checking what libgit2 wrote. Found on PATH; runs
/// with an isolated HOME, no system configuration and a fixed operator identity, so the machine's git settings
/// never leak into a test.
public enum GitCLI {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// `git` on PATH (the test process's, else the usual system directories).
    public static let executable: URL = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/local/bin", "/usr/bin", "/bin"]
        for dir in directories where !dir.isEmpty {
            let candidate = URL(fileURLWithPath: dir).appendingPathComponent("git")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return URL(fileURLWithPath: "/usr/bin/git")
    }()

    /// Runs `git arguments` in `directory` with HOME = `home` and waits.
    public static func run(_ arguments: [String], in directory: URL, home: URL) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = [
            "HOME": home.path, "GIT_CONFIG_NOSYSTEM": "1", "PATH": executable.deletingLastPathComponent().path + ":/usr/bin:/bin",
            "GIT_AUTHOR_NAME": "Operator", "GIT_AUTHOR_EMAIL": "op@example.org",
            "GIT_COMMITTER_NAME": "Operator", "GIT_COMMITTER_EMAIL": "op@example.org",
        ]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read stderr on another thread so a full pipe never blocks git.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }
}
