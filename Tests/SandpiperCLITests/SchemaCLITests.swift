import Foundation
import XCTest
import SandpiperModel

/// `sandpiper schema`: the checked-in docs/schema files are what the binary prints, and the schema agrees with the
/// decoder (docs/tools/schema_agrees.py with PyPI's jsonschema) on the bundled clusters and policies, on a spec
/// using every key of the tables, and on the bad-spec corpus.
final class SchemaCLITests: XCTestCase {
    func testCheckedInSchemasAreCurrent() throws {
        for doc in ["cluster", "policy"] {
            let run = try CLI.run(["schema", doc])
            XCTAssertEqual(run.status, 0, run.stderr)
            let file = CLI.repositoryRoot.appendingPathComponent("docs/schema/\(doc).schema.json")
            XCTAssertEqual(run.stdout, try String(contentsOf: file, encoding: .utf8),
                           "regenerate: sandpiper schema \(doc) > docs/schema/\(doc).schema.json")
            let json = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any]
            let properties = try XCTUnwrap(json?["properties"] as? [String: Any])
            XCTAssertEqual(Set(properties.keys), Set((doc == "cluster" ? SpecKeys.cluster : SpecKeys.policy).keys))
        }
        XCTAssertEqual(try CLI.run(["schema", "hosts"]).status, 64)
    }

    /// Every key of the tables, with valid values.
    static let everyClusterKey = """
        apiVersion: sandpiper/v1
        kind: Cluster
        name: all
        policy: all
        telemetry: {source: libvirt, interval: 10s}
        slas:
          gold: {thresholds: {cpu: 0.7, net: 75%, mem: 0.9}, migration: live}
        hosts:
          - name: pm1
            uri: qemu+ssh://pm1/system
            capacity: {cpus: 8, memory: 32GiB, network: 1Gbit, reserved: {cpus: 1, memory: 2GiB}}
            maintenance: false
            labels: {rack: a}
            power: {on: [/bin/true], off: [/bin/true], status: [/bin/echo, on]}
            allocationRatio: {cpu: 4.0, memory: 1.0}
            schedulable: false
          - {name: pm2, uri: "qemu+ssh://pm2/system"}
        vms:
          - name: web1
            vcpus: 2
            memory: 2GiB
            sla: gold
            template: templates/web.xml
            resources:
              cpu: {reservation: 0.5, limit: 2, shares: high}
              memory: {reservation: 1GiB, limit: 2GiB, shares: 2000}
            placement: {host: pm1, labels: {rack: a}}
            automation: disabled
          - {name: web2, vcpus: 1, memory: 512MiB}
        groups:
          - {name: spread, vms: [web1, web2], rule: anti-affinity, enforcement: should}

        """
    static let everyPolicyKey = """
        apiVersion: sandpiper/v1
        kind: Policy
        thresholds: {cpu: 0.75, net: 0.75, mem: 90%}
        window: {k: 3, n: 5}
        prediction: {model: ar, order: 2}
        profiling: {percentile: 95, headroom: 0.1, memoryStep: 32MiB, guestFreeTarget: 32MiB, mode: black-box}
        placement: {swaps: true, maxMigrationsPerRun: 4, maxConcurrentPerHost: 2, minResidency: 5m, minGain: 0.05}
        automation:
          level: partial
          windows: [{allow: "Mon-Fri 22:00-06:00", timezone: Europe/Berlin}, {deny: "Sat,Sun 00:00-24:00"}]
          repairOverridesWindows: true
        consolidation: {enabled: true, targetUtilization: 0.6, lowUtilization: 0.3, minHostsOn: 1, spareHosts: 1,
                        powerOffAfter: 30m, wakeAhead: true, powerCommands: deny, commandTimeout: 2m}
        allocationRatio: {cpu: 4.0, memory: 1.5}
        migration: {bandwidth: 500Mbit, maxDowntime: 300ms, autoConverge: true, postCopy: false, timeoutPerGiB: 60s,
                    compressed: false, tls: false}

        """

    func testSchemaAgreesWithTheDecoder() throws {
        let probe = try runPython(["-c", "import yaml, jsonschema"])
        guard probe.status == 0 else {
            throw XCTSkip("python3 with PyYAML and jsonschema is needed (pip install pyyaml jsonschema): \(probe.stderr)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sandpiper-schema-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        // The decoder accepts both files...
        let (_, _, diagnostics) = SpecDecoder.check(Self.everyClusterKey, file: "all.yaml") { _ in true }
        XCTAssertEqual(diagnostics.map(\.description), [])
        XCTAssertNoThrow(try SpecDecoder.decodePolicy(Self.everyPolicyKey, file: "all-policy.yaml", name: "all"))
        let cluster = dir.appendingPathComponent("all.yaml"), policy = dir.appendingPathComponent("all-policy.yaml")
        try Data(Self.everyClusterKey.utf8).write(to: cluster)
        try Data(Self.everyPolicyKey.utf8).write(to: policy)
        let root = CLI.repositoryRoot
        var files = [cluster.path, policy.path]
        for c in try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Clusters").path).sorted() {
            files.append(root.appendingPathComponent("Clusters/\(c)/cluster.yaml").path)
        }
        for p in try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Policies").path).sorted() {
            files.append(root.appendingPathComponent("Policies/\(p)").path)
        }
        let script = root.appendingPathComponent("docs/tools/schema_agrees.py").path
        let schemas = root.appendingPathComponent("docs/schema").path
        let corpus = root.appendingPathComponent("Tests/SandpiperModelTests/Fixtures/bad").path
        let run = try runPython([script, schemas, corpus] + files)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)

        // ...and the check can fail: a key the decoder refuses is refused by the schema too.
        let bad = dir.appendingPathComponent("bad.yaml")
        try Data(Self.everyClusterKey.replacingOccurrences(of: "schedulable: false", with: "cordoned: true").utf8).write(to: bad)
        let badText = try String(contentsOf: bad, encoding: .utf8)
        XCTAssertFalse(SpecDecoder.check(badText, file: "bad.yaml") { _ in true }.diagnostics.isEmpty)
        let refused = try runPython([script, schemas, corpus, bad.path])
        XCTAssertEqual(refused.status, 1, refused.stdout)
        XCTAssertTrue(refused.stdout.contains("cordoned"), refused.stdout)
    }

    private func runPython(_ args: [String]) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                   stderr: String(decoding: e, as: UTF8.self))
    }
}

/// The completion scripts README documents are produced and know every subcommand, the new ones included.
final class CompletionScriptTests: XCTestCase {
    func testCompletionScriptsNameEverySubcommand() throws {
        for shell in ["bash", "zsh", "fish"] {
            let run = try CLI.run(["--generate-completion-script", shell])
            XCTAssertEqual(run.status, 0, run.stderr)
            for command in ["validate", "plan", "apply", "reconcile", "import", "schema"] {
                XCTAssertTrue(run.stdout.contains(command), "\(shell) completion lacks \(command)")
            }
        }
    }
}
