import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import SandpiperTestSupport

/// `sandpiper run`: the controller as an operator starts it (a real process, real HTTP on 127.0.0.1, real
/// signals), on copies of the bundled trace clusters replayed fast.
final class RunControllerTests: XCTestCase {
    /// A running `sandpiper run` with its stderr collected line by line.
    final class Controller: @unchecked Sendable {
        let process = Process()
        private let lock = NSLock()
        private var buffer = Data()

        init(_ arguments: [String], in directory: URL, environment: [String: String] = [:]) throws {
            process.executableURL = CLI.binary
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            process.arguments = ["run"] + arguments
            process.currentDirectoryURL = directory
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            err.fileHandleForReading.readabilityHandler = { [weak self] handle in
                let data = handle.availableData
                guard let self, !data.isEmpty else { return }
                lock.lock(); buffer.append(data); lock.unlock()
            }
            try process.run()
        }

        deinit { if process.isRunning { process.terminate() } }

        var lines: [String] {
            lock.lock(); defer { lock.unlock() }
            return String(decoding: buffer, as: UTF8.self).split(separator: "\n").map(String.init)
        }

        /// JSON log events (`--log-format json`).
        var events: [[String: Any]] {
            lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }

        /// Polls until `condition` holds or the deadline passes (generous: the machine is shared).
        func waitFor<T>(_ what: String, timeout: TimeInterval = 90, _ condition: () -> T?) throws -> T {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if let value = condition() { return value }
                if !process.isRunning, let value = condition() { return value }
                if !process.isRunning {
                    throw NSError(domain: "run", code: 1, userInfo: [NSLocalizedDescriptionKey:
                        "sandpiper run exited (\(process.terminationStatus)) before \(what):\n\(lines.joined(separator: "\n"))"])
                }
                Thread.sleep(forTimeInterval: 0.1)
            }
            throw NSError(domain: "run", code: 2, userInfo: [NSLocalizedDescriptionKey:
                "timed out waiting for \(what):\n\(lines.suffix(20).joined(separator: "\n"))"])
        }

        /// The port from the `listening` event.
        func port() throws -> Int {
            try waitFor("the listening event") {
                events.first { $0["msg"] as? String == "listening" }
                    .flatMap { ($0["address"] as? String)?.split(separator: ":").last }.flatMap { Int($0) }
            }
        }

        func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

        /// Waits for the process to exit and returns its status.
        func exitStatus(timeout: TimeInterval = 60) throws -> Int32 {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            XCTAssertFalse(process.isRunning, "sandpiper run did not exit within \(timeout)s")
            return process.isRunning ? -1 : process.terminationStatus
        }
    }

    /// GET over a real HTTP client (URLSession / libcurl).
    func get(_ port: Int, _ path: String) -> (status: Int, body: String)? {
        let url = URL(string: "http://127.0.0.1:\(port)\(path)")!
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: (Int, String)?
        let task = URLSession.shared.dataTask(with: url) { data, response, _ in
            if let http = response as? HTTPURLResponse {
                result = (http.statusCode, String(decoding: data ?? Data(), as: UTF8.self))
            }
            done.signal()
        }
        task.resume()
        _ = done.wait(timeout: .now() + 30)
        return result
    }

    /// Sample values of a series with exactly these labels (Prometheus text format).
    static func value(_ metrics: String, _ name: String, _ labels: [String: String]) -> Double? {
        for line in metrics.split(separator: "\n") where line.hasPrefix(name + "{") {
            guard let close = line.lastIndex(of: "}") else { continue }
            let inner = line[line.index(line.startIndex, offsetBy: name.count + 1)..<close]
            var found: [String: String] = [:]
            for pair in inner.split(separator: ",") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                guard kv.count == 2 else { continue }
                found[String(kv[0])] = String(kv[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            }
            if found == labels { return Double(line[line.index(after: close)...].trimmingCharacters(in: .whitespaces)) }
        }
        return nil
    }

    /// The sorted sample times of a trace CSV, read here independently of Sandpiper's parser.
    static func traceTimes(_ url: URL) throws -> [Double] {
        let rows = try String(contentsOf: url, encoding: .utf8).split(separator: "\n").dropFirst()
        return Set(rows.compactMap { Double($0.split(separator: ",").first ?? "") }).sorted()
    }

    static func windowN(_ policy: URL) throws -> Int {
        let text = try String(contentsOf: policy, encoding: .utf8)
        let match = text.firstMatch(of: /window: \{k: \d+, n: (\d+)\}/)
        return Int(match!.1)!
    }

    // MARK: Tests

    /// The README's first step: metrics, health and readiness over HTTP; counters advance; hosts by status match
    /// the spec; the lock is held while running (a one-shot reconcile is refused) and gone after SIGTERM, exit 0.
    func testRunServesMetricsAndStopsCleanlyOnSIGTERM() throws {
        let root = try CLI.sandbox(self)
        let dir = root.appendingPathComponent("Clusters/demo")
        // One host in maintenance, so "hosts by status" has two non-zero buckets to check against the spec.
        let specURL = dir.appendingPathComponent("cluster.yaml")
        var spec = try String(contentsOf: specURL, encoding: .utf8)
        spec = spec.replacingOccurrences(of: "uri: test:hosts/pm3.xml\n",
                                         with: "uri: test:hosts/pm3.xml\n    maintenance: true\n")
        try spec.write(to: specURL, atomically: true, encoding: .utf8)
        let hostCount = spec.components(separatedBy: "uri: test:").count - 1
        let maintenanceCount = spec.components(separatedBy: "maintenance: true").count - 1
        XCTAssertEqual(maintenanceCount, 1)

        let run = try Controller(["Clusters/demo", "--listen", "127.0.0.1:0", "--speed", "20", "--log-format", "json"],
                                 in: root)
        let port = try run.port()
        XCTAssertEqual(get(port, "/healthz")?.status, 200)
        XCTAssertEqual(get(port, "/nothing")?.status, 404)

        let rounds = { (m: String) in Self.value(m, "sandpiper_rounds_total", ["cluster": "demo", "result": "ok"]) }
        let first = try run.waitFor("two rounds") { () -> Double? in
            guard let m = get(port, "/metrics")?.body, let r = rounds(m), r >= 2 else { return nil }
            return r
        }
        let metrics = try run.waitFor("the round counter to advance") { () -> String? in
            guard let m = get(port, "/metrics")?.body, let r = rounds(m), r > first else { return nil }
            return m
        }
        XCTAssertEqual(Self.value(metrics, "sandpiper_hosts", ["cluster": "demo", "status": "up"]),
                       Double(hostCount - maintenanceCount))
        XCTAssertEqual(Self.value(metrics, "sandpiper_hosts", ["cluster": "demo", "status": "maintenance"]),
                       Double(maintenanceCount))
        XCTAssertEqual(Self.value(metrics, "sandpiper_rounds_total", ["cluster": "demo", "result": "failed"]), 0)
        XCTAssertNotNil(Self.value(metrics, "sandpiper_last_success_timestamp_seconds", ["cluster": "demo"]))
        XCTAssertTrue(metrics.contains("sandpiper_round_duration_seconds_count{cluster=\"demo\"}"))
        XCTAssertTrue(metrics.contains("sandpiper_lock_held{cluster=\"demo\",holder=\"run by "), metrics)
        // `manual`: everything the plan holds is pending review; the log's round events say how many.
        let lastRound = try XCTUnwrap(run.events.last { $0["msg"] as? String == "round done" })
        XCTAssertNotNil(Self.value(metrics, "sandpiper_actions_pending_review", ["cluster": "demo"]))
        XCTAssertNotNil(lastRound["plan"])
        XCTAssertEqual(get(port, "/readyz")?.status, 200)

        // One active controller per cluster: the lock is held while it runs.
        let lockFile = dir.appendingPathComponent(".sandpiper.lock")
        XCTAssertTrue(FileManager.default.fileExists(atPath: lockFile.path))
        let second = try CLI.run(["reconcile", "Clusters/demo"], in: root)
        XCTAssertEqual(second.status, 1)
        XCTAssertTrue(second.stderr.contains("locked"), second.stderr)

        run.signal(SIGTERM)
        XCTAssertEqual(try run.exitStatus(), 0, run.lines.joined(separator: "\n"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: lockFile.path), "lock left after SIGTERM")
        XCTAssertTrue(run.events.contains { $0["msg"] as? String == "lock released" })
        // A run of `manual` rounds leaves one plan for review, not one per round.
        let plans = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("plans").path)
        XCTAssertEqual(plans.count, 1, "\(plans)")
    }

    /// Windows are persisted under .samples/ and read back: a restarted controller continues the trace where the
    /// previous one stopped instead of starting over. Trace times come from the CSV, read here.
    func testRestartKeepsHistory() throws {
        let root = try CLI.sandbox(self)
        let times = try Self.traceTimes(root.appendingPathComponent("Clusters/demo/traces/demo.csv"))
        let n = try Self.windowN(root.appendingPathComponent("Policies/default.yaml"))
        func observed(_ args: [String]) throws -> [Double] {
            let run = try Controller(["Clusters/demo", "--speed", "50", "--log-format", "json"] + args, in: root)
            XCTAssertEqual(try run.exitStatus(timeout: 120), 0, run.lines.joined(separator: "\n"))
            return run.events.filter { $0["msg"] as? String == "round done" }.compactMap { $0["observed_at"] as? Double }
        }
        let firstRun = try observed(["--max-rounds", "3"])
        XCTAssertEqual(firstRun, Array(times[(n - 1)...(n + 1)]))
        let stored = root.appendingPathComponent("Clusters/demo/.samples/windows.json")
        XCTAssertTrue(FileManager.default.fileExists(atPath: stored.path))
        let secondRun = try observed(["--max-rounds", "2"])
        XCTAssertEqual(secondRun, Array(times[(n + 2)...(n + 3)]), "the restart did not continue the history")
        // The windows are telemetry, not decisions: git ignores them.
        let ignore = try String(contentsOf: CLI.repositoryRoot.appendingPathComponent(".gitignore"), encoding: .utf8)
        XCTAssertTrue(ignore.contains("Clusters/*/.samples/"))
    }

    /// With `automation: full` the controller applies; the action counters equal the journal's outcomes in
    /// state.json (the independent record apply writes), by kind.
    func testAppliedActionsCountedAsJournaled() throws {
        let root = try CLI.sandbox(self)
        let policy = try String(contentsOf: root.appendingPathComponent("Policies/default.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "automation: manual", with: "automation: full")
        try policy.write(to: root.appendingPathComponent("Policies/full.yaml"), atomically: true, encoding: .utf8)
        let specURL = root.appendingPathComponent("Clusters/demo/cluster.yaml")
        let spec = try String(contentsOf: specURL, encoding: .utf8)
            .replacingOccurrences(of: "policy: default", with: "policy: full")
        try spec.write(to: specURL, atomically: true, encoding: .utf8)
        let file = root.appendingPathComponent("demo.prom")
        let run = try Controller(["Clusters/demo", "--speed", "50", "--max-rounds", "12", "--log-format", "json",
                                  "--metrics-file", file.path], in: root)
        XCTAssertEqual(try run.exitStatus(timeout: 180), 0, run.lines.joined(separator: "\n"))
        let metrics = try String(contentsOf: file, encoding: .utf8)
        let state = try JSONSerialization.jsonObject(
            with: Data(contentsOf: root.appendingPathComponent("Clusters/demo/state.json"))) as? [String: Any]
        let journal = state?["journal"] as? [[String: Any]] ?? []
        // The journal names plan and action; the kind is in the applied plan saved under plans/.
        var done: [String: Int] = [:]
        for entry in journal where entry["status"] as? String == "done" {
            let planID = try XCTUnwrap(entry["planID"] as? String)
            let plan = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent(
                "Clusters/demo/plans/\(planID).json"))) as? [String: Any]
            let action = (plan?["actions"] as? [[String: Any]])?.first { $0["id"] as? String == entry["actionID"] as? String }
            let kind = action?["swapGroup"] != nil ? "swap" : action?["kind"] as? String ?? "?"
            done[kind, default: 0] += 1
        }
        XCTAssertFalse(done.isEmpty, "the demo under full automation applied nothing: \(journal)")
        var counted: [String: Int] = [:]
        for kind in ["define", "start", "tune", "resize", "migrate", "swap", "stop", "undefine"] {
            if let v = Self.value(metrics, "sandpiper_actions_total",
                                  ["cluster": "demo", "kind": kind, "outcome": "applied"]), v > 0 {
                counted[kind, default: 0] += Int(v)
            }
        }
        XCTAssertEqual(counted, done)
        XCTAssertEqual(Self.value(metrics, "sandpiper_rounds_total", ["cluster": "demo", "result": "ok"]), 12)
        // Applied actions are logged one line each, with the plan and action.
        let actionEvents = run.events.filter { $0["msg"] as? String == "action finished" }
        XCTAssertEqual(actionEvents.count, done.values.reduce(0, +))
        XCTAssertTrue(actionEvents.allSatisfy { $0["plan"] != nil && $0["action"] != nil && $0["cluster"] as? String == "demo" })
    }

    /// A copy of the demo whose policy applies everything (`full`).
    func fullAutomationDemo() throws -> URL {
        let root = try CLI.sandbox(self)
        let policy = try String(contentsOf: root.appendingPathComponent("Policies/default.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "automation: manual", with: "automation: full")
        try policy.write(to: root.appendingPathComponent("Policies/full.yaml"), atomically: true, encoding: .utf8)
        let specURL = root.appendingPathComponent("Clusters/demo/cluster.yaml")
        try String(contentsOf: specURL, encoding: .utf8).replacingOccurrences(of: "policy: default", with: "policy: full")
            .write(to: specURL, atomically: true, encoding: .utf8)
        return root
    }

    /// The journal of state.json: (planID/actionID, status) in order.
    func journal(_ root: URL) throws -> [(String, String)] {
        let state = try JSONSerialization.jsonObject(
            with: Data(contentsOf: root.appendingPathComponent("Clusters/demo/state.json"))) as? [String: Any]
        return (state?["journal"] as? [[String: Any]] ?? []).map {
            ("\($0["planID"] ?? "")/\($0["actionID"] ?? "")", $0["status"] as? String ?? "")
        }
    }

    /// SIGTERM while actions are in flight (journalled `started`, apply paused there by the crash-safety hook):
    /// the controller waits for their outcomes, then exits 0 with the lock released; no action is left between
    /// `started` and its outcome.
    func testSIGTERMMidApplyWaitsForTheOutcome() throws {
        let root = try fullAutomationDemo()
        let run = try Controller(["Clusters/demo", "--speed", "20", "--log-format", "json"], in: root,
                                 environment: ["SANDPIPER_APPLY_PAUSE_MS": "1500"])
        _ = try run.waitFor("an action in flight") { run.events.contains { $0["msg"] as? String == "action started" } ? true : nil }
        run.signal(SIGTERM)
        XCTAssertEqual(try run.exitStatus(timeout: 60), 0, run.lines.joined(separator: "\n"))
        let entries = try journal(root)
        let started = Set(entries.filter { $0.1 == "started" }.map(\.0))
        let finished = Set(entries.filter { $0.1 != "started" }.map(\.0))
        XCTAssertFalse(started.isEmpty)
        XCTAssertEqual(started.subtracting(finished), [], "actions left between started and their outcome")
        let messages = run.events.compactMap { $0["msg"] as? String }
        let stop = try XCTUnwrap(messages.firstIndex(of: "stopping at the next safe point"))
        XCTAssertTrue(messages[stop...].contains("action finished"), "the signal came before the outcome")
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("Clusters/demo/.sandpiper.lock").path))
    }

    /// A round that outlives --drain-timeout: the process exits 1 and leaves what a crash leaves (the lock,
    /// naming it, and the action journalled as started), for the next run or force-unlock.
    func testDrainTimeoutExitsOneAndKeepsTheLock() throws {
        let root = try fullAutomationDemo()
        let run = try Controller(["Clusters/demo", "--speed", "20", "--log-format", "json", "--drain-timeout", "1"],
                                 in: root, environment: ["SANDPIPER_APPLY_PAUSE_MS": "20000"])
        _ = try run.waitFor("an action in flight") { run.events.contains { $0["msg"] as? String == "action started" } ? true : nil }
        let signalled = Date()
        run.signal(SIGTERM)
        XCTAssertEqual(try run.exitStatus(timeout: 30), 1)
        XCTAssertLessThan(Date().timeIntervalSince(signalled), 15, "exited by the drain timeout, not the pause")
        XCTAssertTrue(run.events.contains { ($0["msg"] as? String ?? "").hasPrefix("drain timeout") })
        XCTAssertTrue(FileManager.default.fileExists(atPath: root.appendingPathComponent("Clusters/demo/.sandpiper.lock").path))
        XCTAssertTrue(try journal(root).contains { $0.1 == "started" })
    }

    /// Hotspot series against an independent recomputation: one-shot `plan --at T --json` for each trace time
    /// the controller planned on gives the open hotspots per round; detected and resolved are the set
    /// differences between consecutive rounds, open and unresolved are the last plan's.
    func testHotspotCountersMatchOneShotPlans() throws {
        let root = try CLI.sandbox(self)
        let times = try Self.traceTimes(root.appendingPathComponent("Clusters/demo/traces/demo.csv"))
        let n = try Self.windowN(root.appendingPathComponent("Policies/default.yaml"))
        let rounds = min(30, times.count - n + 1)
        let file = root.appendingPathComponent("run.prom")
        let run = try Controller(["Clusters/demo", "--speed", "100", "--max-rounds", "\(rounds)", "--metrics-file",
                                  file.path, "--log-format", "json"], in: root)
        XCTAssertEqual(try run.exitStatus(timeout: 180), 0, run.lines.joined(separator: "\n"))
        let metrics = try String(contentsOf: file, encoding: .utf8)

        var previous = Set<String>()
        var detected = 0, resolved = 0
        var last: [String: Any] = [:]
        for t in times[(n - 1)..<(n - 1 + rounds)] {
            let r = try CLI.run(["plan", "Clusters/demo", "--at", "\(t)", "--json"], in: root)
            let plan = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stderr)
            // A VM's CPU at its own allocation is not counted as a hotspot (DESIGN: summary counts).
            let open = Set((plan["hotspots"] as? [[String: Any]] ?? [])
                .filter { $0["trigger"] as? String != "at-allocation" }
                .map { "\($0["host"] ?? "")/\($0["vm"] ?? "")/\($0["resource"] ?? "")" })
            detected += open.subtracting(previous).count
            resolved += previous.subtracting(open).count
            previous = open
            last = plan["summary"] as? [String: Any] ?? [:]
        }
        XCTAssertGreaterThan(detected, 0, "the demo trace has hotspots in this range")
        XCTAssertEqual(Self.value(metrics, "sandpiper_hotspots_detected_total", ["cluster": "demo"]), Double(detected))
        XCTAssertEqual(Self.value(metrics, "sandpiper_hotspots_resolved_total", ["cluster": "demo"]), Double(resolved))
        XCTAssertEqual(Self.value(metrics, "sandpiper_hotspots_open", ["cluster": "demo"]),
                       (last["hotspots"] as? Int).map(Double.init))
        XCTAssertEqual(Self.value(metrics, "sandpiper_hotspots_unresolved", ["cluster": "demo"]),
                       (last["unresolved"] as? Int).map(Double.init))
        XCTAssertEqual(Self.value(metrics, "sandpiper_observation_time_seconds", ["cluster": "demo"]),
                       times[n - 2 + rounds])
    }

    /// A broken edit of the spec while running: the controller says so (log, `sandpiper_spec_valid 0`) and keeps
    /// running rounds on the last good spec; SIGINT stops it cleanly too.
    func testInvalidSpecEditKeepsLastGoodSpec() throws {
        let root = try CLI.sandbox(self)
        let run = try Controller(["Clusters/demo", "--listen", "127.0.0.1:0", "--speed", "20", "--log-format", "json"],
                                 in: root)
        let port = try run.port()
        _ = try run.waitFor("a round") { run.events.contains { $0["msg"] as? String == "round done" } ? true : nil }
        let specURL = root.appendingPathComponent("Clusters/demo/cluster.yaml")
        try "apiVersion: sandpiper/v1\nkind: Cluster\nname: demo\nhosts: [\n".write(to: specURL, atomically: true, encoding: .utf8)
        let before = run.events.filter { $0["msg"] as? String == "round done" }.count
        let metrics = try run.waitFor("spec_valid 0 and two more rounds") { () -> String? in
            guard let m = get(port, "/metrics")?.body,
                  Self.value(m, "sandpiper_spec_valid", ["cluster": "demo"]) == 0,
                  run.events.filter({ $0["msg"] as? String == "round done" }).count >= before + 2 else { return nil }
            return m
        }
        XCTAssertEqual(Self.value(metrics, "sandpiper_rounds_total", ["cluster": "demo", "result": "failed"]), 0)
        let error = try XCTUnwrap(run.events.first { $0["msg"] as? String == "spec invalid, running on the last good spec" })
        XCTAssertTrue((error["error"] as? String ?? "").contains("cluster.yaml"), "\(error)")
        run.signal(SIGINT)
        XCTAssertEqual(try run.exitStatus(), 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("Clusters/demo/.sandpiper.lock").path))
    }

    /// Untouched files: rounds reuse the loaded spec (no `spec read` logged, the loader never runs). An edit that
    /// keeps the file's size, inode and modification time (content is compared, not timestamps) is read in the
    /// next interval and takes effect: pm3 in maintenance on /metrics. Then rounds reuse it again.
    func testUnchangedSpecIsReusedAndAnEditIsPickedUp() throws {
        let root = try CLI.sandbox(self)
        let run = try Controller(["Clusters/demo", "--listen", "127.0.0.1:0", "--speed", "20", "--log-format", "json"],
                                 in: root)
        let port = try run.port()
        func count(_ msg: String) -> Int { run.events.filter { $0["msg"] as? String == msg }.count }
        func maintenance() -> Double? {
            get(port, "/metrics").flatMap { Self.value($0.body, "sandpiper_hosts", ["cluster": "demo", "status": "maintenance"]) }
        }
        _ = try run.waitFor("three rounds") { count("round done") >= 3 ? true : nil }
        XCTAssertEqual(count("spec read"), 0, "untouched files must not be decoded again")
        XCTAssertEqual(maintenance(), 0)

        let specURL = root.appendingPathComponent("Clusters/demo/cluster.yaml")
        let original = try String(contentsOf: specURL, encoding: .utf8)
        let edited = original.replacingOccurrences(of: "    labels: {rack: b}\n", with: "    maintenance: true\n")
        XCTAssertNotEqual(edited, original)
        XCTAssertEqual(edited.utf8.count, original.utf8.count, "the edit keeps the size")
        let modified = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: specURL.path)[.modificationDate] as? Date)
        let inode = try FileManager.default.attributesOfItem(atPath: specURL.path)[.systemFileNumber] as? Int
        try edited.write(to: specURL, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.modificationDate: modified], ofItemAtPath: specURL.path)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: specURL.path)[.systemFileNumber] as? Int, inode)

        _ = try run.waitFor("pm3 in maintenance") { maintenance() == 1 ? true : nil }
        XCTAssertEqual(count("spec read"), 1)
        let rounds = count("round done")
        _ = try run.waitFor("three more rounds") { count("round done") >= rounds + 3 ? true : nil }
        XCTAssertEqual(count("spec read"), 1, "the edited, now untouched spec is reused")
        run.signal(SIGTERM)
        XCTAssertEqual(try run.exitStatus(), 0)
    }

    /// SIGHUP does not end the controller (its default action would) and re-reads the trace: after the trace's
    /// CPU column is zeroed and SIGHUP sent, the hosts' CPU utilization on /metrics is what a one-shot reconcile
    /// of the zeroed trace reports (what is left are reservations).
    func testSIGHUPReloadsTheTrace() throws {
        let root = try CLI.sandbox(self)
        let run = try Controller(["Clusters/demo", "--listen", "127.0.0.1:0", "--speed", "20", "--log-format", "json"],
                                 in: root)
        let port = try run.port()
        func cpu(_ m: String) -> [Double] {
            ["pm1", "pm2", "pm3"].compactMap {
                Self.value(m, "sandpiper_host_utilization_ratio", ["cluster": "demo", "host": $0, "resource": "cpu"])
            }
        }
        let before = try run.waitFor("utilization") { () -> [Double]? in
            guard let m = get(port, "/metrics")?.body, cpu(m).count == 3 else { return nil }
            return cpu(m)
        }
        XCTAssertGreaterThan(before.reduce(0, +), 0)
        let traceURL = root.appendingPathComponent("Clusters/demo/traces/demo.csv")
        let lines = try String(contentsOf: traceURL, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        let zeroed = lines.enumerated().map { i, line -> String in
            guard i > 0, !line.isEmpty else { return String(line) }
            var fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            fields[2] = "0"
            return fields.joined(separator: ",")
        }
        try zeroed.joined(separator: "\n").write(to: traceURL, atomically: true, encoding: .utf8)
        let oracleRoot = try CLI.sandbox(self)
        try zeroed.joined(separator: "\n").write(to: oracleRoot.appendingPathComponent("Clusters/demo/traces/demo.csv"),
                                                atomically: true, encoding: .utf8)
        let oracleFile = oracleRoot.appendingPathComponent("oracle.prom")
        let oneShot = try CLI.run(["reconcile", "Clusters/demo", "--metrics-file", oracleFile.path], in: oracleRoot)
        XCTAssertEqual(oneShot.status, 0, oneShot.stderr)
        let expected = cpu(try String(contentsOf: oracleFile, encoding: .utf8))
        XCTAssertEqual(expected.count, 3)
        XCTAssertLessThan(expected.reduce(0, +), before.reduce(0, +))
        run.signal(SIGHUP)
        _ = try run.waitFor("the reload") { run.events.contains { $0["msg"] as? String == "SIGHUP: reloading specs, policies and traces" } ? true : nil }
        _ = try run.waitFor("the zeroed trace's utilization after the reload") { () -> Bool? in
            guard let m = get(port, "/metrics")?.body, cpu(m) == expected else { return nil }
            return true
        }
        XCTAssertTrue(run.process.isRunning)
        run.signal(SIGTERM)
        XCTAssertEqual(try run.exitStatus(), 0)
    }

    /// Live telemetry (libvirt test-driver hosts, `source: libvirt`, 1 s interval): one sample per tick, windows
    /// persisted with a sample per VM and read back by the next run.
    func testLiveSamplingPersistsWindows() throws {
        let root = try CLI.sandbox(self)
        let specURL = root.appendingPathComponent("Clusters/demo/cluster.yaml")
        let spec = try String(contentsOf: specURL, encoding: .utf8)
            .replacingOccurrences(of: "  source: trace ", with: "  source: libvirt #")
            .replacingOccurrences(of: "  interval: 10s", with: "  interval: 1s")
        try spec.write(to: specURL, atomically: true, encoding: .utf8)
        let first = try Controller(["Clusters/demo", "--max-rounds", "3", "--log-format", "json"], in: root)
        XCTAssertEqual(try first.exitStatus(timeout: 120), 0, first.lines.joined(separator: "\n"))
        XCTAssertEqual(first.events.filter { $0["msg"] as? String == "round done" }.count, 3)
        let stored = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent(
            "Clusters/demo/.samples/windows.json"))) as? [String: Any]
        XCTAssertEqual(stored?["source"] as? String, "libvirt")
        let windows = try XCTUnwrap(stored?["windows"] as? [String: [Any]])
        // The first tick only primes the counters: 3 ticks give 2 samples per running VM.
        XCTAssertFalse(windows.isEmpty)
        XCTAssertTrue(windows.values.allSatisfy { $0.count == 2 }, "\(windows)")
        let second = try Controller(["Clusters/demo", "--max-rounds", "1", "--log-format", "json"], in: root)
        XCTAssertEqual(try second.exitStatus(timeout: 120), 0)
        let resumed = try XCTUnwrap(second.events.first { $0["msg"] as? String == "resumed sample history" })
        XCTAssertTrue((resumed["from"] as? String ?? "").hasPrefix("\(windows.count) live window(s)"), "\(resumed)")
    }

    // MARK: Git: lease, standby, GitOps pull

    @discardableResult
    func git(_ args: String..., in dir: URL) throws -> String {
        let r = try GitCLI.run(args, in: dir, home: dir)
        XCTAssertEqual(r.status, 0, "git \(args.joined(separator: " ")): \(r.stderr)")
        return r.stdout
    }

    /// Commits `spec` as Clusters/demo/cluster.yaml on origin's main from `seed`, retrying while the controller's
    /// own pushes move the branch.
    func pushSpec(_ spec: String, from seed: URL, message: String) throws {
        for _ in 0..<20 {
            try git("fetch", "-q", "origin", in: seed)
            try git("reset", "-q", "--hard", "origin/main", in: seed)
            try spec.write(to: seed.appendingPathComponent("Clusters/demo/cluster.yaml"), atomically: true, encoding: .utf8)
            try git("commit", "-q", "-am", message, in: seed)
            if try GitCLI.run(["push", "-q", "origin", "main"], in: seed, home: seed).status == 0 { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTFail("could not push \(message)")
    }

    /// Two controllers on two clones of one remote: the first holds the lease (renewed each round), the second
    /// waits as a standby (not ready); an invalid commit on the branch is pulled, reported (log, spec_valid 0)
    /// and not acted on, and the fix is picked up; when the active controller dies (SIGKILL) the standby takes
    /// over once the lease expires; SIGTERM releases the lease on the remote.
    func testLeaseStandbyTakeoverAndGitOpsPull() throws {
        let root = try CLI.sandbox(self)
        let seed = root
        try "Clusters/*/.samples/\nClusters/*/.sandpiper.lock\n".write(to: seed.appendingPathComponent(".gitignore"),
                                                                       atomically: true, encoding: .utf8)
        try git("init", "-q", "-b", "main", in: seed)
        try git("add", "-A", in: seed)
        try git("commit", "-q", "-m", "Initial spec", in: seed)
        let origin = root.appendingPathComponent("origin.git")
        try git("init", "-q", "--bare", "-b", "main", origin.path, in: seed)
        try git("remote", "add", "origin", origin.path, in: seed)
        try git("push", "-q", "origin", "main", in: seed)
        let a = root.appendingPathComponent("a"), b = root.appendingPathComponent("b")
        try git("clone", "-q", origin.path, a.path, in: root)
        try git("clone", "-q", origin.path, b.path, in: root)
        let env = ["SANDPIPER_GIT_AUTHOR": "Sandpiper CI <ci@sandpiper.example>"]
        let args = ["Clusters/demo", "--remote", "origin", "--branch", "main", "--speed", "20", "--lease", "3",
                    "--log-format", "json", "--listen", "127.0.0.1:0"]
        func has(_ c: Controller, _ msg: String) -> Bool { c.events.contains { $0["msg"] as? String == msg } }

        let first = try Controller(args, in: a, environment: env)
        _ = try first.waitFor("a pushed round") {
            first.events.contains { $0["msg"] as? String == "round done" && $0["pushed"] as? String == "true" } ? true : nil
        }
        XCTAssertTrue(has(first, "lease taken: this controller is active"))
        let second = try Controller(args, in: b, environment: env)
        let secondPort = try second.port()
        _ = try second.waitFor("standby") { has(second, "standby: another controller holds the lease") ? true : nil }
        // Rounds later it is still a standby (the lease is renewed), not ready, and has run no round.
        let firstPort = try first.port()
        let roundsNow = first.events.filter { $0["msg"] as? String == "round done" }.count
        _ = try first.waitFor("more rounds") {
            first.events.filter { $0["msg"] as? String == "round done" }.count >= roundsNow + 8 ? true : nil
        }
        XCTAssertFalse(has(second, "round done"))
        XCTAssertEqual(get(secondPort, "/readyz")?.status, 503)
        XCTAssertEqual(get(secondPort, "/metrics").flatMap { Self.value($0.body, "sandpiper_standby", ["cluster": "demo"]) }, 1)

        // GitOps pull: an invalid commit is reported, not acted on; the fix is picked up.
        let specURL = seed.appendingPathComponent("Clusters/demo/cluster.yaml")
        let good = try String(contentsOf: specURL, encoding: .utf8)
        try pushSpec(good.replacingOccurrences(of: "vcpus: 2\n", with: "vcpus: two\n"), from: seed, message: "broken edit")
        let invalid = try first.waitFor("the invalid commit") {
            first.events.first { $0["msg"] as? String == "spec at the branch tip is invalid; nothing applied until it is fixed" }
        }
        XCTAssertTrue((invalid["error"] as? String ?? "").contains("cluster.yaml"), "\(invalid)")
        XCTAssertEqual(get(firstPort, "/metrics").flatMap { Self.value($0.body, "sandpiper_spec_valid", ["cluster": "demo"]) }, 0)
        try pushSpec(good, from: seed, message: "fix")
        _ = try first.waitFor("the fix") {
            get(firstPort, "/metrics").flatMap { Self.value($0.body, "sandpiper_spec_valid", ["cluster": "demo"]) } == 1 ? true : nil
        }
        XCTAssertFalse(has(second, "round done"), "the standby acted while the lease was renewed")

        // The active controller dies without releasing: the standby takes over after the lease expires.
        first.signal(SIGKILL)
        _ = try first.exitStatus()
        _ = try second.waitFor("the takeover", timeout: 120) {
            has(second, "took over an expired lease") && has(second, "round done") ? true : nil
        }
        second.signal(SIGTERM)
        XCTAssertEqual(try second.exitStatus(), 0, second.lines.joined(separator: "\n"))
        let refs = try git("ls-remote", origin.path, in: root)
        XCTAssertFalse(refs.contains("refs/sandpiper/locks/demo"), refs)
    }

    /// One-shot reconcile writes the same series to a node_exporter textfile.
    func testReconcileWritesMetricsFile() throws {
        let root = try CLI.sandbox(self)
        let file = root.appendingPathComponent("textfile/sandpiper.prom")
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        let r = try CLI.run(["reconcile", "Clusters/demo", "--json", "--metrics-file", file.path], in: root)
        XCTAssertEqual(r.status, 0, r.stderr)
        let metrics = try String(contentsOf: file, encoding: .utf8)
        let json = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]
        XCTAssertEqual(Self.value(metrics, "sandpiper_rounds_total", ["cluster": "demo", "result": "ok"]), 1)
        XCTAssertEqual(Self.value(metrics, "sandpiper_actions_pending_review", ["cluster": "demo"]),
                       (json?["pending"] as? Int).map(Double.init))
        XCTAssertEqual(Self.value(metrics, "sandpiper_hotspots_open", ["cluster": "demo"]),
                       (json?["hotspots"] as? Int).map(Double.init))
        XCTAssertTrue(metrics.contains("# TYPE sandpiper_rounds_total counter"), metrics)
    }

    /// Argument and address mistakes are refused with a message, never a hang.
    func testBadListenAddressIsRefused() throws {
        let root = try CLI.sandbox(self)
        let r = try CLI.run(["run", "Clusters/demo", "--listen", "nowhere:99999"], in: root, timeout: 30)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--listen"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("Clusters/demo/.sandpiper.lock").path))
    }
}
