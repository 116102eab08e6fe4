import Foundation
import XCTest

/// docs/ops: the systemd unit, the Prometheus scrape config and the alert rules agree with the controller. The
/// series the alerts name are checked against what `sandpiper run` really exports after a round (its metrics file),
/// not against a list kept by hand.
final class OpsFilesTests: XCTestCase {
    let ops = CLI.repositoryRoot.appendingPathComponent("docs/ops")

    func testSystemdUnitRunsTheControllerAndWaitsForItsDrain() throws {
        let unit = try String(contentsOf: ops.appendingPathComponent("sandpiper-run.service"), encoding: .utf8)
        var settings: [String: String] = [:]
        for line in unit.split(separator: "\n") where !line.hasPrefix("#") && line.contains("=") {
            let kv = line.split(separator: "=", maxSplits: 1).map(String.init)
            settings[kv[0]] = kv[1]
        }
        let exec = try XCTUnwrap(settings["ExecStart"]).split(separator: " ").map(String.init)
        XCTAssertEqual(Array(exec.prefix(4)), ["/usr/local/bin/sandpiper", "run", "--listen", "127.0.0.1:9464"])
        let drain = try XCTUnwrap(exec.firstIndex(of: "--drain-timeout").flatMap { Double(exec[$0 + 1]) })
        let stop = try XCTUnwrap(settings["TimeoutStopSec"].flatMap(Double.init))
        XCTAssertGreaterThan(stop, drain, "systemd must not SIGKILL before the drain timeout")
        XCTAssertEqual(settings["KillSignal"], "SIGTERM")
        XCTAssertEqual(settings["Restart"], "on-failure")
        XCTAssertEqual(settings["ExecReload"], "/bin/kill -HUP $MAINPID")
        // The controller accepts the unit's arguments (a bad flag would make systemd restart it forever).
        let help = try CLI.run(["run", "--help"])
        for flag in exec.dropFirst(2) where flag.hasPrefix("--") { XCTAssertTrue(help.stdout.contains(flag), flag) }
    }

    func testAlertsUseTheSeriesTheControllerExports() throws {
        let root = try CLI.sandbox(self)
        let metrics = root.appendingPathComponent("sandpiper.prom")
        let run = try CLI.run(["run", "Clusters/demo", "--max-rounds", "1", "--speed", "100",
                               "--metrics-file", metrics.path], in: root)
        XCTAssertEqual(run.status, 0, run.stderr)
        let script = CLI.repositoryRoot.appendingPathComponent("docs/tools/ops_agrees.py").path
        let prometheus = ops.appendingPathComponent("prometheus.yml").path
        let alerts = ops.appendingPathComponent("alerts.yml")
        let checked = try python([script, prometheus, alerts.path, metrics.path])
        XCTAssertEqual(checked.status, 0, checked.stdout + checked.stderr)

        // ...and the check can fail: a misspelt series is reported.
        let bad = root.appendingPathComponent("alerts.yml")
        try String(contentsOf: alerts, encoding: .utf8)
            .replacingOccurrences(of: "sandpiper_hotspots_unresolved{", with: "sandpiper_hotspot_unresolved{")
            .write(to: bad, atomically: true, encoding: .utf8)
        let refused = try python([script, prometheus, bad.path, metrics.path])
        XCTAssertEqual(refused.status, 1, refused.stdout)
        XCTAssertTrue(refused.stdout.contains("sandpiper_hotspot_unresolved, which the controller does not export"),
                      refused.stdout)

        // promtool, when Debian's prometheus package happens to be installed, checks PromQL too.
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/promtool") {
            let p = try tool("/usr/bin/promtool", ["check", "rules", alerts.path])
            XCTAssertEqual(p.status, 0, p.stdout + p.stderr)
        }
    }

    private func python(_ args: [String]) throws -> Run { try tool("/usr/bin/env", ["python3"] + args) }

    private func tool(_ path: String, _ args: [String]) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                   stderr: String(decoding: e, as: UTF8.self))
    }
}
