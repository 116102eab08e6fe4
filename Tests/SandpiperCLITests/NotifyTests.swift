import Foundation
import XCTest
import SandpiperTestSupport

/// `notify:` webhooks of `sandpiper run`, against a real HTTP receiver on 127.0.0.1 started by each test.
final class NotifyTests: XCTestCase {
    typealias Controller = RunControllerTests.Controller

    /// Appends a `notify:` list to the sandbox's default policy.
    func addNotify(_ root: URL, _ yaml: String, policy: String = "default") throws {
        let url = root.appendingPathComponent("Policies/\(policy).yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
        try (text + "notify:\n" + yaml).write(to: url, atomically: true, encoding: .utf8)
    }

    static func hotspotKeys(_ plan: [String: Any]) -> [String: (host: String, vm: String?)] {
        var keys: [String: (String, String?)] = [:]
        for h in plan["hotspots"] as? [[String: Any]] ?? [] where h["trigger"] as? String != "at-allocation" {
            let host = h["host"] as? String ?? "", vm = h["vm"] as? String
            keys["\(host)/\(vm ?? "")/\(h["resource"] ?? "")"] = (host, vm)
        }
        return keys
    }

    /// Every event of a replayed demo, with a secret URL read from a file: the JSON payloads that arrive are the
    /// ones an independent recomputation predicts (one-shot `plan --at T --json` per round: hotspots new since
    /// the previous round, gone since it, newly unresolved, a changed proposal), with the documented fields; the
    /// delivered count is on the metrics; the URL's secrets appear in no log line and no metric.
    func testJSONPayloadsMatchOneShotPlans() throws {
        let root = try CLI.sandbox(self)
        let receiver = try WebhookReceiver()
        defer { receiver.stop() }
        let secretDir = root.appendingPathComponent("secret")
        try FileManager.default.createDirectory(at: secretDir, withIntermediateDirectories: true)
        try "http://127.0.0.1:\(receiver.port)/hooks/T0KEN-s3cr3t?token=qq-s3cr3t-qq\n"
            .write(to: secretDir.appendingPathComponent("webhook.url"), atomically: true, encoding: .utf8)
        try addNotify(root, "  - {urlFile: ../secret/webhook.url, format: json}\n")

        let times = try RunControllerTests.traceTimes(root.appendingPathComponent("Clusters/demo/traces/demo.csv"))
        let n = try RunControllerTests.windowN(root.appendingPathComponent("Policies/default.yaml"))
        let rounds = min(30, times.count - n + 1)
        let file = root.appendingPathComponent("run.prom")
        let started = Date()
        let run = try Controller(["Clusters/demo", "--speed", "100", "--max-rounds", "\(rounds)", "--metrics-file",
                                  file.path, "--log-format", "json"], in: root)
        XCTAssertEqual(try run.exitStatus(timeout: 180), 0, run.lines.joined(separator: "\n"))
        let finished = Date()

        // The oracle: what each round's plan holds, from one-shot plans of the same trace times.
        var expected: [(event: String, hosts: Set<String>, vms: Set<String>)] = []
        var open: [String: (host: String, vm: String?)] = [:]
        var unresolved = Set<String>()
        var proposal: [String] = []
        for t in times[(n - 1)..<(n - 1 + rounds)] {
            let r = try CLI.run(["plan", "Clusters/demo", "--at", "\(t)", "--json"], in: root)
            let plan = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stderr)
            let now = Self.hotspotKeys(plan)
            let new = now.filter { open[$0.key] == nil }.map(\.value)
            if !new.isEmpty {
                expected.append(("hotspot-detected", Set(new.map(\.host)), Set(new.compactMap(\.vm))))
            }
            let gone = open.filter { now[$0.key] == nil }.map(\.value)
            if !gone.isEmpty {
                expected.append(("hotspot-resolved", Set(gone.map(\.host)), Set(gone.compactMap(\.vm))))
            }
            open = now
            let entries = plan["unresolved"] as? [[String: Any]] ?? []
            let keyed = entries.map { u in
                ("\(u["host"] as? String ?? "")/\(u["vm"] as? String ?? "")/\((u["resources"] as? [String] ?? []).joined(separator: ","))", u)
            }
            let newUnresolved = keyed.filter { !unresolved.contains($0.0) }.map(\.1)
            if !newUnresolved.isEmpty {
                expected.append(("hotspot-unresolved", Set(newUnresolved.compactMap { $0["host"] as? String }),
                                 Set(newUnresolved.compactMap { $0["vm"] as? String })))
            }
            unresolved = Set(keyed.map(\.0))
            // Automation manual: the whole plan waits for review.
            let actions = plan["actions"] as? [[String: Any]] ?? []
            let described = actions.map { "\($0["kind"] ?? "") \($0["vm"] ?? "") \($0["from"] ?? "") \($0["to"] ?? "") \($0["host"] ?? "")" }
            if !described.isEmpty && described != proposal {
                expected.append(("plan-pending-review",
                                 Set(actions.flatMap { a in ["host", "from", "to"].compactMap { a[$0] as? String } }),
                                 Set(actions.compactMap { $0["vm"] as? String })))
            }
            proposal = described
        }
        XCTAssertTrue(expected.contains { $0.event == "hotspot-detected" }, "the demo has hotspots in this range")
        XCTAssertTrue(expected.contains { $0.event == "hotspot-resolved" }, "and they end in this range")
        XCTAssertTrue(expected.contains { $0.event == "plan-pending-review" })

        let requests = receiver.waitFor(expected.count, timeout: 30)
        let payloads = requests.compactMap(\.json)
        XCTAssertEqual(payloads.count, requests.count, "every body is JSON")
        // Per event kind, in order (one round can send several kinds; their order within a round is not contract).
        for kind in Set(expected.map(\.event)).union(payloads.compactMap { $0["event"] as? String }) {
            let want = expected.filter { $0.event == kind }
            let got = payloads.filter { $0["event"] as? String == kind }
            XCTAssertEqual(got.count, want.count, "\(kind): \(got)")
            for (g, w) in zip(got, want) {
                XCTAssertEqual(Set(g["hosts"] as? [String] ?? []), w.hosts, "\(kind): \(g)")
                XCTAssertEqual(Set(g["vms"] as? [String] ?? []), w.vms, "\(kind): \(g)")
            }
        }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for (request, p) in zip(requests, payloads) {
            XCTAssertEqual(request.method, "POST")
            XCTAssertEqual(request.target, "/hooks/T0KEN-s3cr3t?token=qq-s3cr3t-qq", "posted to the URL from the file")
            XCTAssertEqual(request.headers["content-type"], "application/json")
            XCTAssertEqual(p["formatVersion"] as? Int, 1)
            XCTAssertEqual(p["cluster"] as? String, "demo")
            XCTAssertFalse((p["summary"] as? String ?? "").isEmpty)
            XCTAssertFalse((p["details"] as? [String] ?? []).isEmpty)
            XCTAssertTrue(p.keys.contains("plan"))
            let time = try XCTUnwrap((p["time"] as? String).flatMap(formatter.date(from:)), "\(p)")
            XCTAssertTrue(time >= started.addingTimeInterval(-1) && time <= finished.addingTimeInterval(1), "\(time)")
        }
        // A pending plan names the proposal the controller saved.
        let pending = try XCTUnwrap(payloads.first { $0["event"] as? String == "plan-pending-review" })
        let planID = try XCTUnwrap(pending["plan"] as? String)
        XCTAssertTrue((pending["details"] as? [String] ?? []).contains { $0.contains(planID) }, "\(pending)")

        let metrics = try String(contentsOf: file, encoding: .utf8)
        XCTAssertEqual(RunControllerTests.value(metrics, "sandpiper_notifications_total",
                                                ["cluster": "demo", "result": "delivered"]), Double(requests.count))
        XCTAssertEqual(RunControllerTests.value(metrics, "sandpiper_notifications_total",
                                                ["cluster": "demo", "result": "failed"]), 0)
        let output = run.lines.joined(separator: "\n")
        XCTAssertTrue(output.contains("http://127.0.0.1:\(receiver.port)/***"), output)
        for text in [output, metrics] {
            XCTAssertFalse(text.contains("s3cr3t") || text.contains("T0KEN"), "a URL secret leaked:\n\(text)")
        }
    }

    /// Slack format, and a receiver that fails twice (HTTP 500) then accepts: the same `{"text": ...}` body is
    /// posted three times, the retries wait (backoff 1 s, then 2 s), the log names the webhook only redacted,
    /// and the metrics count two retries.
    func testSlackPayloadRetriedAfterTwoFailures() throws {
        let root = try CLI.sandbox(self)
        let receiver = try WebhookReceiver(statuses: [500, 500])
        defer { receiver.stop() }
        let url = "http://127.0.0.1:\(receiver.port)/services/T000/B000/XyzSecret9"
        try addNotify(root, "  - url: \(url)\n    format: slack\n    events: [hotspot-detected]\n")
        let file = root.appendingPathComponent("run.prom")
        let run = try Controller(["Clusters/demo", "--speed", "100", "--log-format", "json", "--metrics-file", file.path],
                                 in: root)
        let requests = receiver.waitFor(3, timeout: 90)
        run.signal(SIGTERM)
        XCTAssertEqual(try run.exitStatus(), 0, run.lines.joined(separator: "\n"))
        XCTAssertGreaterThanOrEqual(requests.count, 3, run.lines.joined(separator: "\n"))
        let first = Array(requests.prefix(3))
        XCTAssertEqual(Set(first.map(\.body)).count, 1, "a retry posts the same payload")
        XCTAssertEqual(first.map(\.target), Array(repeating: "/services/T000/B000/XyzSecret9", count: 3))
        let body = try XCTUnwrap(first[0].json)
        XCTAssertEqual(Array(body.keys), ["text"])
        let text = try XCTUnwrap(body["text"] as? String)
        XCTAssertTrue(text.contains("demo") && text.contains("hotspot"), text)

        let retries = run.events.filter { $0["msg"] as? String == "notification delivery failed; retrying" }
        XCTAssertEqual(retries.compactMap { $0["attempt"] as? Int }, [1, 2])
        XCTAssertTrue(retries.allSatisfy { $0["webhook"] as? String == "http://127.0.0.1:\(receiver.port)/***" }, "\(retries)")
        XCTAssertTrue(retries.allSatisfy { ($0["error"] as? String ?? "").contains("HTTP 500") }, "\(retries)")
        let delivered = try XCTUnwrap(run.events.first { $0["msg"] as? String == "notification delivered" })
        XCTAssertEqual(delivered["attempts"] as? Int, 3)
        let output = run.lines.joined(separator: "\n")
        XCTAssertFalse(output.contains("XyzSecret9") || output.contains("T000"), output)
        let metrics = try String(contentsOf: file, encoding: .utf8)
        XCTAssertFalse(metrics.contains("XyzSecret9"))
        XCTAssertEqual(RunControllerTests.value(metrics, "sandpiper_notifications_total",
                                                ["cluster": "demo", "result": "retried"]), 2)
        // Every request the receiver got by the time the controller exited (more can arrive between waitFor and
        // SIGTERM): all delivered but the two answered with 500.
        XCTAssertEqual(RunControllerTests.value(metrics, "sandpiper_notifications_total",
                                                ["cluster": "demo", "result": "delivered"]),
                       Double(receiver.requests.count - 2))
    }

    /// A receiver that accepts and never answers: rounds keep their pace (a round waiting on the webhook would
    /// take the 10 s request timeout), and SIGTERM exits 0 after the short bounded flush, saying what was not
    /// delivered.
    func testSilentReceiverDoesNotStallRoundsOrExit() throws {
        let root = try CLI.sandbox(self)
        let receiver = try WebhookReceiver(answers: false)
        defer { receiver.stop() }
        try addNotify(root, "  - url: http://127.0.0.1:\(receiver.port)/hook\n")
        let run = try Controller(["Clusters/demo", "--speed", "100", "--log-format", "json"], in: root)
        let rounds = try run.waitFor("15 rounds", timeout: 120) { () -> [[String: Any]]? in
            let done = run.events.filter { $0["msg"] as? String == "round done" }
            return done.count >= 15 && receiver.connections >= 1 ? done : nil
        }
        XCTAssertTrue(receiver.requests.count >= 1, "a POST reached the receiver and is waiting for its answer")
        let slowest = rounds.compactMap { $0["duration_ms"] as? Int }.max() ?? .max
        XCTAssertLessThan(slowest, 5000, "a round waited for the webhook")
        // Nor does the loop between rounds (ticks are 0.1 s apart at --speed 100).
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let ends = rounds.compactMap { ($0["time"] as? String).flatMap(formatter.date(from:)) }
        let longestGap = zip(ends, ends.dropFirst()).map { $1.timeIntervalSince($0) }.max() ?? 0
        XCTAssertLessThan(longestGap, 5, "the loop waited for the webhook between rounds")
        XCTAssertEqual(run.events.filter { $0["msg"] as? String == "notification delivered" }.count, 0)
        let signalled = Date()
        run.signal(SIGTERM)
        XCTAssertEqual(try run.exitStatus(timeout: 60), 0, run.lines.joined(separator: "\n"))
        XCTAssertLessThan(Date().timeIntervalSince(signalled), 30, "the exit waited for the webhook")
        XCTAssertTrue(run.events.contains { $0["msg"] as? String == "notifications not delivered before exit" },
                      run.lines.suffix(10).joined(separator: "\n"))
    }

    /// Full automation with a VM whose template libvirt refuses: an `apply-failed` payload names the VM and the
    /// plan (once, though the define fails every round); a broken edit of the spec then sends `spec-invalid` with
    /// the file and line.
    func testApplyFailedAndInvalidSpec() throws {
        let root = try CLI.sandbox(self)
        let receiver = try WebhookReceiver()
        defer { receiver.stop() }
        let policy = try String(contentsOf: root.appendingPathComponent("Policies/default.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "automation: manual", with: "automation: full")
        try policy.write(to: root.appendingPathComponent("Policies/full.yaml"), atomically: true, encoding: .utf8)
        try addNotify(root, "  - url: http://127.0.0.1:\(receiver.port)/hook\n    events: [apply-failed, spec-invalid]\n",
                      policy: "full")
        let dir = root.appendingPathComponent("Clusters/demo")
        // Well-formed, but libvirt has no guest for this architecture: the define fails in apply.
        try String(contentsOf: dir.appendingPathComponent("templates/vm.xml"), encoding: .utf8)
            .replacingOccurrences(of: "arch='x86_64'", with: "arch='no-such-arch'")
            .write(to: dir.appendingPathComponent("templates/broken.xml"), atomically: true, encoding: .utf8)
        let specURL = dir.appendingPathComponent("cluster.yaml")
        var spec = try String(contentsOf: specURL, encoding: .utf8).replacingOccurrences(of: "policy: default", with: "policy: full")
        spec = spec.replacingOccurrences(of: "\nvms:\n", with: "\nvms:\n  - {name: ghost, vcpus: 1, memory: 512MiB, template: templates/broken.xml}\n")
        try spec.write(to: specURL, atomically: true, encoding: .utf8)

        let run = try Controller(["Clusters/demo", "--speed", "50", "--log-format", "json"], in: root)
        let failure = try run.waitFor("an apply-failed payload") {
            receiver.requests.compactMap(\.json).first { $0["event"] as? String == "apply-failed" }
        }
        XCTAssertEqual(failure["vms"] as? [String], ["ghost"], "\(failure)")
        XCTAssertTrue((failure["details"] as? [String] ?? []).contains { $0.contains("ghost") }, "\(failure)")
        let failedEvents = run.events.filter { $0["msg"] as? String == "action failed" }
        XCTAssertFalse(failedEvents.isEmpty)
        XCTAssertEqual(failure["plan"] as? String, failedEvents[0]["plan"] as? String)
        _ = try run.waitFor("two more rounds") { () -> Bool? in
            run.events.filter { ($0["msg"] as? String ?? "").hasPrefix("round done") }.count >= 4 ? true : nil
        }

        try "apiVersion: sandpiper/v1\nkind: Cluster\nname: demo\nhosts: [\n".write(to: specURL, atomically: true, encoding: .utf8)
        let invalid = try run.waitFor("a spec-invalid payload") {
            receiver.requests.compactMap(\.json).first { $0["event"] as? String == "spec-invalid" }
        }
        let details = (invalid["details"] as? [String] ?? []).joined(separator: "\n")
        XCTAssertTrue(details.contains("cluster.yaml:"), details)
        // Rounds go on; the same error is not sent again.
        let before = run.events.filter { ($0["msg"] as? String ?? "").hasPrefix("round done") }.count
        _ = try run.waitFor("three more rounds") { () -> Bool? in
            run.events.filter { ($0["msg"] as? String ?? "").hasPrefix("round done") }.count >= before + 3 ? true : nil
        }
        run.signal(SIGTERM)
        XCTAssertEqual(try run.exitStatus(), 0)
        let kinds = receiver.requests.compactMap { $0.json?["event"] as? String }
        XCTAssertEqual(kinds.filter { $0 == "apply-failed" }.count, 1, "\(kinds)")
        XCTAssertEqual(kinds.filter { $0 == "spec-invalid" }.count, 1, "\(kinds)")
    }

    /// One-shot `reconcile`: the hotspots its plan holds (the same as `plan --json` of the same state) arrive as
    /// `hotspot-detected`, the plan left for review as `plan-pending-review`; a receiver that never answers holds
    /// the exit only for the bounded flush (5 s).
    func testReconcileNotifiesAndExitsBounded() throws {
        let root = try CLI.sandbox(self)
        let receiver = try WebhookReceiver()
        defer { receiver.stop() }
        try addNotify(root, "  - url: http://127.0.0.1:\(receiver.port)/hook\n")
        let planned = try CLI.run(["plan", "Clusters/demo", "--json"], in: root)
        let plan = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(planned.stdout.utf8)) as? [String: Any], planned.stderr)
        let hot = Self.hotspotKeys(plan).map(\.value)
        XCTAssertFalse(hot.isEmpty, "the demo's last window has hotspots")
        let r = try CLI.run(["reconcile", "Clusters/demo"], in: root)
        XCTAssertTrue(r.status == 0 || r.status == 2, r.stderr)
        let kinds = receiver.requests.compactMap(\.json)
        let detected = try XCTUnwrap(kinds.first { $0["event"] as? String == "hotspot-detected" }, "\(kinds)")
        XCTAssertEqual(Set(detected["hosts"] as? [String] ?? []), Set(hot.map(\.host)))
        XCTAssertEqual(Set(detected["vms"] as? [String] ?? []), Set(hot.compactMap(\.vm)))
        XCTAssertTrue(kinds.contains { $0["event"] as? String == "plan-pending-review" }, "\(kinds)")
        XCTAssertFalse(kinds.contains { $0["event"] as? String == "hotspot-resolved" }, "\(kinds)")

        let silent = try WebhookReceiver(answers: false)
        defer { silent.stop() }
        let url = root.appendingPathComponent("Policies/default.yaml")
        try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "/127.0.0.1:\(receiver.port)/", with: "/127.0.0.1:\(silent.port)/")
            .write(to: url, atomically: true, encoding: .utf8)
        let started = Date()
        let again = try CLI.run(["reconcile", "Clusters/demo"], in: root, timeout: 60)
        XCTAssertTrue(again.status == 0 || again.status == 2, again.stderr)
        XCTAssertGreaterThanOrEqual(silent.connections, 1)
        XCTAssertLessThan(Date().timeIntervalSince(started), 25, "the exit waited for the webhook")
        XCTAssertTrue(again.stderr.contains("notifications not delivered before exit"), again.stderr)
    }

    func git(_ args: [String], in dir: URL) throws {
        let r = try GitCLI.run(args, in: dir, home: dir)
        XCTAssertEqual(r.status, 0, "git \(args.joined(separator: " ")): \(r.stderr)")
    }

    /// Commits `text` as `path` on origin's main from `seed`, retrying while the controller's own pushes move it.
    func push(_ path: String, _ text: String, from seed: URL, message: String) throws {
        for _ in 0..<20 {
            try git(["fetch", "-q", "origin"], in: seed)
            try git(["reset", "-q", "--hard", "origin/main"], in: seed)
            try text.write(to: seed.appendingPathComponent(path), atomically: true, encoding: .utf8)
            try git(["commit", "-q", "-am", message], in: seed)
            if try GitCLI.run(["push", "-q", "origin", "main"], in: seed, home: seed).status == 0 { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTFail("could not push \(message)")
    }

    /// GitOps (`run --remote`): webhooks added by a commit to the branch's policy are used from the next round
    /// (the controller's own checkout never has them), and an invalid spec at the branch tip is sent as
    /// `spec-invalid` naming the file.
    func testBranchTipPolicyAndInvalidSpecAtTheTip() throws {
        let root = try CLI.sandbox(self)
        let receiver = try WebhookReceiver()
        defer { receiver.stop() }
        let seed = root
        try "Clusters/*/.samples/\nClusters/*/.sandpiper.lock\n".write(to: seed.appendingPathComponent(".gitignore"),
                                                                       atomically: true, encoding: .utf8)
        try git(["init", "-q", "-b", "main"], in: seed)
        try git(["add", "-A"], in: seed)
        try git(["commit", "-q", "-m", "Initial spec"], in: seed)
        let origin = root.appendingPathComponent("origin.git")
        try git(["init", "-q", "--bare", "-b", "main", origin.path], in: seed)
        try git(["remote", "add", "origin", origin.path], in: seed)
        try git(["push", "-q", "origin", "main"], in: seed)
        let a = root.appendingPathComponent("a")
        try git(["clone", "-q", origin.path, a.path], in: root)
        let run = try Controller(["Clusters/demo", "--remote", "origin", "--branch", "main", "--speed", "20",
                                  "--log-format", "json"], in: a,
                                 environment: ["SANDPIPER_GIT_AUTHOR": "Sandpiper CI <ci@sandpiper.example>"])
        _ = try run.waitFor("a round") { run.events.contains { $0["msg"] as? String == "round done" } ? true : nil }

        let policy = try String(contentsOf: seed.appendingPathComponent("Policies/default.yaml"), encoding: .utf8)
        try push("Policies/default.yaml", policy + "notify:\n  - {url: http://127.0.0.1:\(receiver.port)/tip, events: [spec-invalid]}\n",
                 from: seed, message: "notify")
        _ = try run.waitFor("the webhook from the branch") {
            run.events.contains { $0["msg"] as? String == "webhooks" } ? true : nil
        }
        let spec = try String(contentsOf: seed.appendingPathComponent("Clusters/demo/cluster.yaml"), encoding: .utf8)
        try push("Clusters/demo/cluster.yaml", spec.replacingOccurrences(of: "vcpus: 2\n", with: "vcpus: two\n"),
                 from: seed, message: "broken edit")
        let invalid = try run.waitFor("a spec-invalid payload") {
            receiver.requests.compactMap(\.json).first { $0["event"] as? String == "spec-invalid" }
        }
        XCTAssertEqual(receiver.requests.first?.target, "/tip")
        let details = (invalid["details"] as? [String] ?? []).joined(separator: "\n")
        XCTAssertTrue(details.contains("cluster.yaml") && details.contains("vcpus"), details)
        run.signal(SIGTERM)
        XCTAssertEqual(try run.exitStatus(), 0)
        XCTAssertFalse(FileManager.default.contents(atPath: a.appendingPathComponent("Policies/default.yaml").path)
            .map { String(decoding: $0, as: UTF8.self).contains("notify") } ?? true,
                       "the controller's checkout never had the webhook")
    }
}
