import Foundation
import XCTest
import SandpiperModel

/// `sandpiper import` on libvirt test-driver hosts (absolute `test:///...` URIs): the written cluster.yaml declares
/// what the node files hold (read here with a regex, not through Sandpiper), validates, and plans no change.
final class ImportCLITests: XCTestCase {
    /// A git work tree with three test-driver node files (copies of the demo's) outside it.
    private func fleet() throws -> (repo: URL, nodes: [URL]) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sandpiper-import-\(UUID().uuidString)")
        let repo = root.appendingPathComponent("repo")
        try FileManager.default.createDirectory(at: repo.appendingPathComponent(".git"), withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        var nodes: [URL] = []
        for h in ["pm1", "pm2", "pm3"] {
            let to = root.appendingPathComponent("\(h).xml")
            try FileManager.default.copyItem(at: CLI.repositoryRoot.appendingPathComponent("Clusters/demo/hosts/\(h).xml"), to: to)
            nodes.append(to)
        }
        return (repo, nodes)
    }

    /// The oracle: (cpus, memory MiB, [(domain, vcpus, memory MiB)]) straight from a node file.
    private func expected(_ node: URL) throws -> (cpus: Int, memMiB: Int, domains: [String: (Int, Int)]) {
        let xml = try String(contentsOf: node, encoding: .utf8)
        func first(_ pattern: String, in s: String) -> String? {
            guard let r = s.range(of: pattern, options: .regularExpression) else { return nil }
            return String(s[r]).replacingOccurrences(of: "<[^>]*>", with: "", options: .regularExpression)
        }
        let cpus = Int(first("<active>[0-9]+</active>", in: xml)!)!
        let head = xml.components(separatedBy: "<domain")[0]
        let memKiB = Int(first("<memory>[0-9]+</memory>", in: head)!)!
        var domains: [String: (Int, Int)] = [:]
        for d in xml.components(separatedBy: "<domain").dropFirst() {
            let name = first("<name>[^<]+</name>", in: d)!
            let vcpus = Int(first("<vcpu>[0-9]+</vcpu>", in: d)!)!
            let mem = Int(first("<memory unit='MiB'>[0-9]+</memory>", in: d)!)!
            domains[name] = (vcpus, mem)
        }
        return (cpus, memKiB / 1024, domains)
    }

    private func spec(_ dir: URL) throws -> ClusterSpec {
        let file = dir.appendingPathComponent("cluster.yaml")
        return try SpecDecoder.decodeCluster(String(contentsOf: file, encoding: .utf8), file: file.path).0
    }

    func testImportDeclaresTheFleetValidatesAndPlansNoChange() throws {
        let (repo, nodes) = try fleet()
        let run = try CLI.run(["import"] + nodes.map { "test://" + $0.path } + ["--name", "adopted"], in: repo)
        XCTAssertEqual(run.status, 0, run.stderr)
        let dir = repo.appendingPathComponent("Clusters/adopted")
        let spec = try spec(dir)
        XCTAssertEqual(spec.hosts.map(\.name), ["pm1", "pm2", "pm3"])
        var wantVMs: [String: (Int, Int)] = [:]
        for (host, node) in zip(spec.hosts, nodes) {
            let e = try expected(node)
            XCTAssertEqual(host.uri, "test://" + node.path)
            XCTAssertEqual(host.capacity.cpus, Double(e.cpus))
            XCTAssertEqual(host.capacity.memoryMiB, Double(e.memMiB))
            wantVMs.merge(e.domains) { a, _ in a }
        }
        XCTAssertFalse(wantVMs.isEmpty)
        XCTAssertEqual(Set(spec.vms.map(\.name)), Set(wantVMs.keys))
        for vm in spec.vms {
            XCTAssertEqual(vm.vcpus, wantVMs[vm.name]?.0, vm.name)
            XCTAssertEqual(vm.memoryMiB, Double(wantVMs[vm.name]!.1), vm.name)
            XCTAssertNil(vm.placement, "no pins")
            let template = try String(contentsOf: dir.appendingPathComponent(vm.template!), encoding: .utf8)
            XCTAssertTrue(template.contains("<name>\(vm.name)</name>"), "template of \(vm.name) is its domain XML")
        }
        // A policy was written (there was none): plan only.
        let policy = try String(contentsOf: repo.appendingPathComponent("Policies/default.yaml"), encoding: .utf8)
        XCTAssertEqual(try SpecDecoder.decodePolicy(policy, file: "default.yaml", name: "default").automation, .manual)
        XCTAssertTrue(run.stdout.contains("not expressed"), run.stdout)

        XCTAssertEqual(try CLI.run(["validate", "Clusters/adopted"], in: repo).status, 0)
        let plan = try CLI.run(["plan", "Clusters/adopted", "--json", "--samples", "1", "--interval", "0.1"], in: repo)
        XCTAssertEqual(plan.status, 0, plan.stderr)
        let doc = try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((doc["drift"] as? [Any])?.count, 0, "\(doc["drift"] ?? "")")
        let kinds = (doc["actions"] as! [[String: Any]]).compactMap { $0["kind"] as? String }
        XCTAssertTrue(Set(kinds).isDisjoint(with: ["define", "start", "stop", "undefine"]), "\(kinds)")

        // A second import into the same directory refuses and leaves the file alone.
        let before = try Data(contentsOf: dir.appendingPathComponent("cluster.yaml"))
        let again = try CLI.run(["import", "test://" + nodes[0].path, "--name", "adopted"], in: repo)
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.stderr.contains("--add-to"), again.stderr)
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("cluster.yaml")), before)
    }

    func testCredentialsAreRedactedUnlessKept() throws {
        let (repo, nodes) = try fleet()
        let uri = "test://\(nodes[0].path)?password=hunter2&keyfile=/secret/key"
        let run = try CLI.run(["import", uri, "--name", "a"], in: repo)
        XCTAssertEqual(run.status, 0, run.stderr)
        let text = try String(contentsOf: repo.appendingPathComponent("Clusters/a/cluster.yaml"), encoding: .utf8)
        for secret in ["hunter2", "/secret/key"] {
            XCTAssertFalse(text.contains(secret)); XCTAssertFalse(run.stdout.contains(secret))
            XCTAssertFalse(run.stderr.contains(secret))
        }
        XCTAssertTrue(text.contains("password=***"), text)
        XCTAssertEqual(try spec(repo.appendingPathComponent("Clusters/a")).hosts.map(\.name), ["pm1"])

        let kept = try CLI.run(["import", uri, "--name", "b", "--keep-credentials"], in: repo)
        XCTAssertEqual(kept.status, 0, kept.stderr)
        XCTAssertEqual(try spec(repo.appendingPathComponent("Clusters/b")).hosts.first?.uri, uri)
    }

    func testAddToKeepsTheFileAndRefusesDeclaredVMs() throws {
        let (repo, nodes) = try fleet()
        XCTAssertEqual(try CLI.run(["import", "test://" + nodes[0].path, "--name", "grow", "--out", "Clusters/grow"],
                                   in: repo).status, 0)
        let dir = repo.appendingPathComponent("Clusters/grow")
        let file = dir.appendingPathComponent("cluster.yaml")
        // The operator edits the file: a comment and a renamed host must survive the addition.
        var text = try String(contentsOf: file, encoding: .utf8)
        text = text.replacingOccurrences(of: "name: pm1", with: "name: rack-a-1") + "# operator's note\n"
        try Data(text.utf8).write(to: file)

        let add = try CLI.run(["import", "test://" + nodes[1].path, "test://" + nodes[2].path, "--add-to", "Clusters/grow"],
                              in: repo)
        XCTAssertEqual(add.status, 0, add.stderr)
        let merged = try String(contentsOf: file, encoding: .utf8)
        XCTAssertTrue(merged.contains("# operator's note"))
        let spec = try spec(dir)
        XCTAssertEqual(spec.hosts.map(\.name), ["rack-a-1", "pm2", "pm3"])
        var want = Set<String>()
        for node in nodes { want.formUnion(try expected(node).domains.keys) }
        XCTAssertEqual(Set(spec.vms.map(\.name)), want)
        XCTAssertEqual(try CLI.run(["validate", "Clusters/grow"], in: repo).status, 0)

        // Adding a host whose VMs are already declared is refused; nothing changes.
        let before = try Data(contentsOf: file)
        let clash = try CLI.run(["import", "test://" + nodes[1].path, "--add-to", "Clusters/grow"], in: repo)
        XCTAssertEqual(clash.status, 1)
        XCTAssertTrue(clash.stderr.contains("already declared"), clash.stderr)
        XCTAssertEqual(try Data(contentsOf: file), before)
    }

    func testUnreadableHostWritesNothing() throws {
        let (repo, nodes) = try fleet()
        let run = try CLI.run(["import", "test://" + nodes[0].path, "test:///nonexistent/node.xml", "--name", "x"],
                              in: repo)
        XCTAssertEqual(run.status, 1)
        XCTAssertTrue(run.stderr.contains("cannot import test:///nonexistent/node.xml"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: repo.appendingPathComponent("Clusters/x").path))
        XCTAssertEqual(try CLI.run(["import", "test://" + nodes[0].path], in: repo).status, 64, "--name is required")
    }

    /// `--out` names a cluster directory inside a repository; one whose policy would land in `/Policies` is refused
    /// before anything is read or written.
    func testOutDirectlyBelowTheRootIsRefused() throws {
        let (repo, nodes) = try fleet()
        let name = "sandpiper-out-\(UUID().uuidString.prefix(8))"
        let run = try CLI.run(["import", "test://" + nodes[0].path, "--name", "x", "--out", "/tmp/\(name)"], in: repo)
        XCTAssertEqual(run.status, 64, run.stderr)
        XCTAssertTrue(run.stderr.contains("<repository>/Clusters/<name>"), run.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/tmp/\(name)"))
    }
}
