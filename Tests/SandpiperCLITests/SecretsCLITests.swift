import Foundation
import XCTest
import SandpiperTestSupport

/// Credentials in host URIs never leave cluster.yaml: every command and every sink (stdout, stderr, `--json`,
/// state.json, saved plans, commits and every git object, local and pushed) is grepped for each secret.
/// The hosts point at a closed port on 127.0.0.1, so libvirt and ssh fail for real and quote what they were
/// given (ssh names the decoded key file, libvirt repeats a URI it cannot parse).
final class SecretsCLITests: XCTestCase {
    static let env = ["SANDPIPER_GIT_AUTHOR": "Sandpiper CI <ci@sandpiper.example>"]

    /// Distinctive pieces; every one must stay out of every output. Each appears in one URI below.
    static let secrets = [
        "PwHashA1", "PwSlashA2", "PwQmarkA3", "PassPhrB1", "KeyNameC1", "KeyEncD1", "TlsPwE1", "PkiDirE2",
        "AuthFileF1", "UpperPwG1", "SemiPwH1", "AmpPwH2", "TokenI1", "PrivKeyJ1", "DecodedK1",
    ]

    /// URIs libvirt accepts (validate passes); the hosts are unreachable (port 1 on 127.0.0.1 is closed).
    static let acceptedURIs = [
        // '#', '/' and '?' in a password, percent-encoded as they must be
        "qemu+ssh://root:PwHashA1%23PwSlashA2%2FPwQmarkA3%3F@127.0.0.1:1/system?no_verify=1",
        "qemu+ssh://op@127.0.0.1:1/session?passphrase=PassPhrB1&no_verify=1",
        // a percent-encoded parameter name: libvirt decodes it to keyfile, ssh quotes the path
        "qemu+ssh://op@127.0.0.1:1/session?key%66ile=/tmp/sp-secret/KeyNameC1&no_verify=1",
        // a percent-encoded value: ssh quotes the decoded path
        "qemu+ssh://op@127.0.0.1:1/session?keyfile=%2Ftmp%2Fsp-secret%2FKeyEncD1&no_verify=1",
        "qemu+tls://op:TlsPwE1@127.0.0.1:1/system?pkipath=/tmp/sp-secret/PkiDirE2",
        // ';' between parameters (libvirt splits on it when no '&' follows)
        "qemu+ssh://op@127.0.0.1:1/system?authfile=/tmp/AuthFileF1;no_verify=1",
        "qemu+ssh://op@127.0.0.1:1/system?PASSWORD=UpperPwG1&no_verify=1",
        "qemu+ssh://op:SemiPwH1%3BAmpPwH2%26@127.0.0.1:1/system",
        "qemu+ssh://op@127.0.0.1:1/system?api_token=TokenI1&private%5Fkey=PrivKeyJ1&no_verify=1",
        "qemu+ssh://op:%44ecodedK1@127.0.0.1:1/system",
    ]

    /// URIs libvirt cannot parse ("Unable to parse URI …" quoting the whole URI), or with a fragment it ignores:
    /// validate refuses each, naming the host, without echoing the secret.
    static let refused: [(uri: String, secrets: [String])] = [
        ("qemu+ssh://root:RefHashR1#RefHashR2@pm6/system", ["RefHashR1", "RefHashR2"]),
        ("qemu+ssh://root:RefQmarkR3?RefQmarkR4@pm6/system", ["RefQmarkR3", "RefQmarkR4"]),
        ("qemu+ssh://root:RefSlashR5/RefSlashR6@pm6/system", ["RefSlashR5", "RefSlashR6"]),
        ("qemu+ssh://root:RefAtR7@RefAtR8@pm6/system", ["RefAtR7", "RefAtR8"]),
        ("qemu+ssh://root:Ref SpaceR9@pm6/system", ["Ref SpaceR9", "SpaceR9"]),
        ("qemu+ssh://pm6/system?password=RefFragR10#RefFragR11", ["RefFragR10", "RefFragR11"]),
        ("qemu+ssh://root:RefPctR12%zz@pm6/system", ["RefPctR12"]),
        ("qemu+ssh://pm6/system?key%66ile=/k/RefKeyR13#RefKeyR14", ["RefKeyR13", "RefKeyR14"]),
    ]

    func git(_ args: String..., in dir: URL) throws -> String {
        let r = try GitCLI.run(args, in: dir, home: dir)
        XCTAssertEqual(r.status, 0, "git \(args.joined(separator: " ")): \(r.stderr)")
        return r.stdout
    }

    /// The demo cluster plus one unreachable host per URI.
    func writeCluster(_ root: URL, uris: [String]) throws {
        let spec = root.appendingPathComponent("Clusters/demo/cluster.yaml")
        var text = try String(contentsOf: spec, encoding: .utf8)
        let extra = uris.enumerated().map { i, uri in
            "  - name: remote\(i)\n    uri: '\(uri)'\n"
        }.joined()
        text = text.replacingOccurrences(of: "vms:\n", with: extra + "vms:\n")
        try text.write(to: spec, atomically: true, encoding: .utf8)
    }

    /// Every occurrence of any of `secrets` in `text`, as "secret in what".
    func leaks(_ text: String, _ what: String, secrets: [String] = secrets) -> [String] {
        secrets.filter { text.contains($0) }.map { "\($0) in \(what)" }
    }

    /// Every git object Sandpiper wrote (all objects except those of the operator's own commit `base`),
    /// pretty-printed, plus `git log -p --all` from `base` on.
    func gitText(_ gitDir: URL, base: String, in root: URL) throws -> String {
        let operatorObjects = Set(try git("--git-dir", gitDir.path, "rev-list", "--objects", base, in: root)
            .split(separator: "\n").map { String($0.prefix(40)) })
        let all = try git("--git-dir", gitDir.path, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)",
                          in: root).split(separator: "\n").map(String.init)
        XCTAssertGreaterThan(all.count, operatorObjects.count, "Sandpiper wrote objects to \(gitDir.path)")
        var text = ""
        for object in all where !operatorObjects.contains(object) {
            text += try git("--git-dir", gitDir.path, "cat-file", "-p", object, in: root) + "\n"
        }
        text += try git("--git-dir", gitDir.path, "log", "-p", "--all", "^" + base, in: root)
        return text
    }

    /// Every file under `root` except the operator's spec and the git directories.
    func filesText(_ root: URL) throws -> [(String, String)] {
        var out: [(String, String)] = []
        let e = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey])!
        for case let url as URL in e {
            let rel = url.path.replacingOccurrences(of: root.path + "/", with: "")
            if rel.hasPrefix(".git") || rel.hasPrefix("origin.git") { e.skipDescendants(); continue }
            if rel.hasSuffix("cluster.yaml") { continue }
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true,
                  let data = FileManager.default.contents(atPath: url.path) else { continue }
            out.append((rel, String(decoding: data, as: UTF8.self)))
        }
        return out
    }

    func testNoSecretReachesAnyOutputStateOrGitObject() throws {
        let root = try CLI.sandbox(self)
        try writeCluster(root, uris: Self.acceptedURIs)
        _ = try git("init", "-q", "-b", "main", in: root)
        _ = try git("add", "-A", in: root)
        _ = try git("commit", "-q", "-m", "Operator's spec", in: root)
        let base = try git("rev-parse", "HEAD", in: root).trimmingCharacters(in: .whitespacesAndNewlines)
        let bare = root.appendingPathComponent("origin.git")
        _ = try git("init", "-q", "--bare", bare.path, in: root)
        _ = try git("remote", "add", "origin", bare.path, in: root)
        _ = try git("push", "-q", "origin", "main", in: root)
        try "origin.git/\n".write(to: root.appendingPathComponent(".git/info/exclude"), atomically: true, encoding: .utf8)

        var found: [String] = []
        var unknownReasons = 0
        func run(_ args: [String], expect: Set<Int32>) throws -> Run {
            let r = try CLI.run(args, in: root, environment: Self.env, timeout: 300)
            XCTAssertTrue(expect.contains(r.status), "\(args): exit \(r.status)\n\(r.stderr)")
            found += leaks(r.stdout, "stdout of \(args)") + leaks(r.stderr, "stderr of \(args)")
            return r
        }
        let validate = try run(["validate", "Clusters/demo"], expect: [0])
        XCTAssertTrue(validate.stdout.contains("valid"), validate.stdout)
        _ = try run(["validate", "Clusters/demo", "--json"], expect: [0])
        let observe = try run(["observe", "Clusters/demo", "--json"], expect: [0, 1])
        // The failures are real: each remote host is unknown with libvirt's reason.
        for i in Self.acceptedURIs.indices where observe.stdout.contains("remote\(i)") { unknownReasons += 1 }
        XCTAssertEqual(unknownReasons, Self.acceptedURIs.count, observe.stdout)
        XCTAssertTrue(observe.stdout.contains("unknown"), observe.stdout)
        _ = try run(["observe", "Clusters/demo"], expect: [0, 1])
        let planFile = root.appendingPathComponent("plan.json").path
        _ = try run(["plan", "Clusters/demo", "--json", "--out", planFile], expect: [0])
        _ = try run(["plan", "Clusters/demo"], expect: [0])
        _ = try run(["show", planFile, "--json"], expect: [0])
        _ = try run(["show", planFile], expect: [0])
        _ = try run(["apply", planFile, "--json"], expect: [0, 1])
        _ = try run(["apply", "Clusters/demo", "--auto-approve", "--json"], expect: [0, 1])
        _ = try run(["reconcile", "Clusters/demo", "--ci", "--json"], expect: [0, 1, 2])
        _ = try run(["reconcile", "Clusters/demo", "--commit", "--propose"], expect: [0, 1, 2])
        _ = try run(["reconcile", "Clusters/demo", "--ci"], expect: [0, 1, 2])

        // The libvirt/ssh errors really quoted secrets (so the scrubbing above was exercised): state.json holds
        // the redacted reasons in their place.
        let state = try String(contentsOf: root.appendingPathComponent("Clusters/demo/state.json"), encoding: .utf8)
        XCTAssertTrue(state.contains("***"), "reasons were redacted: \(state.prefix(2000))")

        for (path, text) in try filesText(root) { found += leaks(text, path) }
        found += leaks(try gitText(root.appendingPathComponent(".git"), base: base, in: root), "local git objects")
        found += leaks(try gitText(bare, base: base, in: root), "pushed git objects")
        XCTAssertEqual(found, [], "secrets leaked")
    }

    func testValidateRefusesURIsLibvirtCannotParseWithoutEchoingThem() throws {
        let root = try CLI.sandbox(self)
        try writeCluster(root, uris: Self.refused.map(\.uri))
        let secrets = Self.refused.flatMap(\.secrets)
        var found: [String] = []
        for args in [["validate", "Clusters/demo"], ["validate", "Clusters/demo", "--json"],
                     ["plan", "Clusters/demo", "--json"], ["observe", "Clusters/demo"],
                     ["reconcile", "Clusters/demo", "--json"]] {
            let r = try CLI.run(args, in: root, timeout: 120)
            XCTAssertEqual(r.status, 1, "\(args) refuses the spec: \(r.stdout)\(r.stderr)")
            found += leaks(r.stdout, "stdout of \(args)", secrets: secrets)
            found += leaks(r.stderr, "stderr of \(args)", secrets: secrets)
            if args == ["validate", "Clusters/demo"] {
                // One error per host, naming its field.
                for i in Self.refused.indices {
                    XCTAssertTrue(r.stderr.contains("hosts[\(i + 3)].uri"), "remote\(i) reported: \(r.stderr)")
                }
                XCTAssertTrue(r.stderr.contains("percent-encoded (%23, %2F, %3F, %40)"), r.stderr)
                XCTAssertTrue(r.stderr.contains("qemu+ssh://root:***@pm6/system"), r.stderr)
            }
        }
        for (path, text) in try filesText(root) { found += leaks(text, path, secrets: secrets) }
        XCTAssertEqual(found, [], "secrets leaked")
    }
}
