import Foundation
import XCTest
import SandpiperGit
import SandpiperTestSupport

/// Real repositories in temporary directories. The `git` CLI is used only to build fixtures
/// and to cross-check what libgit2 wrote; it runs with an isolated HOME and no system config.
final class Fixture {
    let root: String

    init() throws {
        root = FileManager.default.temporaryDirectory
            .appendingPathComponent("sandpiper-git-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root + "/home", withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Runs `git args` in `dir` and returns stdout; fails the test on a non-zero exit.
    @discardableResult
    func git(_ args: String..., in dir: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let (status, out, err) = try run(args, in: dir)
        guard status == 0 else {
            XCTFail("git \(args.joined(separator: " ")) failed (\(status)): \(err)", file: file, line: line)
            throw CocoaError(.executableLoad)
        }
        return out
    }

    /// Runs `git args` and returns the exit status (for commands expected to fail).
    func gitStatus(_ args: String..., in dir: String) throws -> Int32 {
        try run(args, in: dir).0
    }

    private func run(_ args: [String], in dir: String) throws -> (Int32, String, String) {
        let r = try GitCLI.run(args, in: URL(fileURLWithPath: dir), home: URL(fileURLWithPath: root + "/home"))
        return (r.status, r.stdout, r.stderr)
    }

    /// A working repository on `main` with two commits of an operator's cluster layout.
    func operatorRepo(name: String = "ops") throws -> String {
        let dir = root + "/" + name
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try git("init", "-q", "-b", "main", in: dir)
        try git("config", "user.name", "Operator", in: dir)
        try git("config", "user.email", "op@example.org", in: dir)
        try write("apiVersion: sandpiper/v1\nkind: Cluster\nname: demo\n", to: dir + "/Clusters/demo/cluster.yaml")
        try write("kind: Policy\n", to: dir + "/Policies/default.yaml")
        try git("add", "-A", in: dir)
        try git("commit", "-q", "-m", "Initial spec", in: dir)
        try write("{\"serial\": 1}\n", to: dir + "/Clusters/demo/state.json")
        try git("add", "-A", in: dir)
        try git("commit", "-q", "-m", "First state", in: dir)
        return dir
    }

    func write(_ text: String, to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }
}

extension String {
    var bytes: [UInt8] { Array(utf8) }
}

let sandpiperSignature = Signature(name: "Sandpiper Bot", email: "bot@sandpiper.example",
                                   time: Date(timeIntervalSince1970: 1_700_000_000), timeZoneOffsetMinutes: 60)
