import Foundation
import XCTest
import SandpiperLibvirt
import SandpiperTestSupport

/// `telemetry.source: prometheus` end to end with real components: Debian's `prometheus` (scrape interval 1 s, its
/// own storage dir, a spare port) scraping a small Python server that serves counters whose rates the test knows,
/// and a fake Prometheus API for the error paths. Everything runs on 127.0.0.1 and is stopped by its PID.
final class PrometheusTelemetryTests: XCTestCase {
    static let prometheusBinary = "/usr/bin/prometheus"
    static let secret = "sandpiper:Sup3r-S3cret-pw"

    /// Exact rates: web1 by domain name (cpu 2 cores, 1.25 MB/s = 10 Mbit/s, 512 MiB), db1 by UUID only (its
    /// `domain` label is an old name: 0.5 cores, 1 Mbit/s, 1 GiB); web2 has no series and batch1 a NaN memory:
    /// both reported, neither read as zero. observe does not wait n intervals.
    func testWindowsFromPrometheusScrapingKnownCounters() throws {
        let lab = try PrometheusLab(self)
        let exporter = try lab.startFakeServer()
        let prometheus = try lab.startPrometheus(targets: ["127.0.0.1:\(exporter.port)"])
        let interval = 3.0
        // n = 5 intervals of 3 s plus the rate range: wait until Prometheus holds that much, by asking it.
        try lab.waitForHistory(prometheus: prometheus.port, job: "target0", seconds: 5 * interval + 2)
        let root = try CLI.sandbox(self)
        let dir = try lab.writeCluster(root: root, telemetry: "{source: prometheus, url: \"http://127.0.0.1:\(prometheus.port)\", interval: 3s}")
        let started = Date()
        let run = try CLI.run(["observe", dir.path, "--json"])
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertLessThan(elapsed, 4 * interval, "observe with Prometheus reads history; it must not sample n intervals")
        let report = try lab.report(run.stdout)
        let web1 = try XCTUnwrap(report.vms["web1"])
        XCTAssertEqual(web1.samples, 5, "\(report.warnings)")
        XCTAssertEqual(try XCTUnwrap(web1.cpuCores), 2.0, accuracy: 0.02)
        XCTAssertEqual(try XCTUnwrap(web1.netMbps), 10.0, accuracy: 0.1)
        XCTAssertEqual(try XCTUnwrap(web1.memUsedMiB), 512, accuracy: 1e-9)
        let db1 = try XCTUnwrap(report.vms["db1"])
        XCTAssertEqual(db1.samples, 5, "matched by uuid: \(report.warnings)")
        XCTAssertEqual(try XCTUnwrap(db1.cpuCores), 0.5, accuracy: 0.005)
        XCTAssertEqual(try XCTUnwrap(db1.netMbps), 1.0, accuracy: 0.01)
        XCTAssertEqual(try XCTUnwrap(db1.memUsedMiB), 1024, accuracy: 1e-9)
        for (vm, reason) in [("web2", "no cpu series"), ("batch1", "memory: NaN/Inf at 5 of 5 intervals")] {
            let v = try XCTUnwrap(report.vms[vm])
            XCTAssertEqual(v.samples, 0, vm)
            XCTAssertNil(v.cpuCores, "\(vm) without usable samples must not read as 0 cores")
            XCTAssertTrue(report.warnings.contains { $0.hasPrefix("\(vm): ") && $0.contains(reason) && $0.contains("not as idle") },
                          "\(vm): \(report.warnings)")
        }
        XCTAssertFalse(report.warnings.contains { $0.hasPrefix("web1:") || $0.hasPrefix("db1:") }, "\(report.warnings)")
    }

    /// Prometheus down, HTTP 500 (whose body echoes the Authorization header), bad JSON and a server that does not
    /// answer within the timeout: each reported with its reason, no VM gets samples, the credentials never appear.
    /// With the right credentials the same fake API answers, which proves they are sent.
    func testPrometheusFailuresAreReportedNotZeroAndCredentialsStaySecret() throws {
        let lab = try PrometheusLab(self)
        let fake = try lab.startFakeServer()
        let root = try CLI.sandbox(self)
        let creds = root.appendingPathComponent("prometheus.credentials")
        try (Self.secret + "\n").write(to: creds, atomically: true, encoding: .utf8)
        let refused = try PrometheusLab.sparePort()
        let cases: [(path: String, port: Int, expect: String)] = [
            ("", refused, "connection refused"), ("/status500", fake.port, "HTTP 500"),
            ("/badjson", fake.port, "bad JSON"), ("/slow", fake.port, "no answer within 1s"),
        ]
        for c in cases {
            let dir = try lab.writeCluster(root: root, telemetry: """
                {source: prometheus, url: "http://127.0.0.1:\(c.port)\(c.path)", credentialsFile: \(creds.path), timeout: 1s, interval: 10s}
                """)
            let run = try CLI.run(["observe", dir.path, "--json"], timeout: 60)
            XCTAssertEqual(run.status, 0, run.stderr)
            let report = try lab.report(run.stdout)
                XCTAssertTrue(report.vms.values.allSatisfy { $0.samples == 0 && $0.cpuCores == nil }, "\(c.path): \(run.stdout)")
            XCTAssertTrue(report.warnings.contains { $0.contains(c.expect) && $0.contains("web1") && $0.contains("not as idle") },
                          "\(c.path): \(report.warnings)")
            XCTAssertEqual(report.warnings.filter { $0.contains("query failed") }.count, 1, "\(c.path): said once")
            for secret in [Self.secret, "Sup3r-S3cret-pw", Data(Self.secret.utf8).base64EncodedString()] {
                XCTAssertFalse(run.stdout.contains(secret) || run.stderr.contains(secret), "\(c.path) leaked the credentials")
            }
        }
        // The fake API answers only with the credentials: web1 at 0.25 cores.
        let dir = try lab.writeCluster(root: root, telemetry: """
            {source: prometheus, url: "http://127.0.0.1:\(fake.port)/auth", credentialsFile: \(creds.path), interval: 10s}
            """)
        let run = try CLI.run(["observe", dir.path, "--json"], timeout: 60)
        XCTAssertEqual(run.status, 0, run.stderr)
        let web1 = try XCTUnwrap(try lab.report(run.stdout).vms["web1"])
        XCTAssertEqual(web1.samples, 5, run.stdout)
        XCTAssertEqual(web1.cpuCores, 0.25)
        XCTAssertFalse(run.stdout.contains(Self.secret) || run.stderr.contains(Self.secret))
    }

    /// `sandpiper run` reads the windows from Prometheus every round (nothing kept in .samples/ but the source) and
    /// logs the per-VM telemetry warnings; the credentials are sent and never logged.
    func testRunControllerReadsPrometheusEachRound() throws {
        let lab = try PrometheusLab(self)
        let fake = try lab.startFakeServer()
        let root = try CLI.sandbox(self)
        let creds = root.appendingPathComponent("prometheus.credentials")
        try Self.secret.write(to: creds, atomically: true, encoding: .utf8)
        _ = try lab.writeCluster(root: root, telemetry: """
            {source: prometheus, url: "http://127.0.0.1:\(fake.port)/auth", credentialsFile: \(creds.path), interval: 1s}
            """)
        let run = try RunControllerTests.Controller(["Clusters/prom", "--max-rounds", "2", "--log-format", "json"], in: root)
        XCTAssertEqual(try run.exitStatus(timeout: 120), 0, run.lines.joined(separator: "\n"))
        let messages = run.events.compactMap { $0["msg"] as? String }
        XCTAssertEqual(messages.filter { $0 == "round done" }.count, 2, run.lines.joined(separator: "\n"))
        XCTAssertTrue(messages.contains { $0.hasPrefix("web2: Prometheus telemetry incomplete (no cpu series") },
                      run.lines.joined(separator: "\n"))
        XCTAssertFalse(messages.contains { $0.hasPrefix("web1:") || $0.contains("query failed") }, run.lines.joined(separator: "\n"))
        XCTAssertFalse(run.lines.joined().contains("Sup3r-S3cret-pw"))
        let stored = try Data(contentsOf: root.appendingPathComponent("Clusters/prom/.samples/windows.json"))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: stored) as? [String: Any])
        XCTAssertEqual(json["source"] as? String, "prometheus")
        XCTAssertEqual((json["windows"] as? [String: Any])?.count, 0, "Prometheus keeps the history")
    }

    /// The spec: errors with file:line:column and field, and a password in the URL is refused without repeating it.
    func testPrometheusSpecErrors() throws {
        let lab = try PrometheusLab(self)
        let root = try CLI.sandbox(self)
        let cases: [(String, String)] = [
            ("{source: prometheus, interval: 10s}", ":5:12: telemetry.url: missing required field (telemetry source is prometheus)"),
            ("{source: prometheus, url: \"ftp://p:9090\"}", "telemetry.url: scheme must be http or https"),
            ("{source: prometheus, url: \"http://admin:hunter22@p:9090\"}", "telemetry.url: credentials in the URL are not accepted"),
            ("{source: libvirt, url: \"http://p:9090\"}", "telemetry.url: only used with telemetry source prometheus"),
            ("{source: prometheus, url: \"http://p:9090\", hostLoad: true}", "telemetry.hostLoad: not read from Prometheus"),
            ("{source: prometheus, url: \"http://p:9090\", queries: {disk: x}}", "telemetry.queries.disk"),
            ("{source: prometheus, url: \"http://p:9090\", queries: {cpu: \" \"}}", "telemetry.queries.cpu: must not be empty"),
            ("{source: prometheus, url: \"http://p:9090\", credentialsFile: nope.txt}", "telemetry.credentialsFile: file \"nope.txt\" not found"),
        ]
        for (telemetry, expected) in cases {
            let dir = try lab.writeCluster(root: root, telemetry: telemetry)
            let run = try CLI.run(["validate", dir.path])
            XCTAssertEqual(run.status, 1, telemetry)
            let out = run.stdout + run.stderr
            XCTAssertTrue(out.contains(expected), "\(telemetry): \(out)")
            XCTAssertTrue(out.contains("cluster.yaml:5:"), "\(telemetry) names file and line: \(out)")
            XCTAssertFalse(out.contains("hunter22"), out)
        }
        let ok = try lab.writeCluster(root: root, telemetry: """
            {source: prometheus, url: "http://127.0.0.1:9090/prom/", timeout: 2s, queries: {cpu: "rate(x[$interval])"}}
            """)
        let run = try CLI.run(["validate", ok.path])
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
    }

    /// Debian's prometheus-libvirt-exporter (0.2.0) against a session libvirtd this test starts, with a running tiny
    /// guest, scraped by Prometheus. What 0.2.0 exports for it: cpu time and memory (the current allocation, 64 MiB),
    /// no interface series (a session guest's user-mode NIC has no host device): with the default queries the
    /// guest is reported for the missing network series; with a network query override it is profiled from the
    /// exporter's cpu and memory.
    func testRealLibvirtExporterScrapedByPrometheus() throws {
        if let reason = QemuLab.unavailableReason() { throw XCTSkip(reason) }
        let lab = try PrometheusLab(self)
        let qemu = try QemuLab()
        defer { qemu.teardown(domain: "tiny", connections: []) }
        try qemu.startDaemon("P", hostUUID: "7e7e7e7e-0000-4000-8000-000000000051", migrationPortMin: 51_200)
        let conn = try qemu.connect("P")
        defer { try? conn.destroy("tiny"); try? conn.undefine("tiny"); conn.close() }
        _ = try conn.define(xml: QemuLab.tinyXML())
        try conn.start("tiny")
        let exporterPort = try PrometheusLab.sparePort()
        _ = try lab.start("/usr/bin/prometheus-libvirt-exporter",
                          ["--web.listen-address=127.0.0.1:\(exporterPort)", "--libvirt.uri=\(qemu.uri("P"))"])
        let prometheus = try lab.startPrometheus(targets: ["127.0.0.1:\(exporterPort)"])
        try lab.waitForHistory(prometheus: prometheus.port, job: "target0", seconds: 5 * 2 + 2)
        let root = try CLI.sandbox(self)
        let hosts = "hosts:\n  - {name: p, uri: \"\(qemu.uri("P"))\"}\n"
        let url = "http://127.0.0.1:\(prometheus.port)"
        var dir = try lab.writeCluster(root: root, telemetry: "{source: prometheus, url: \"\(url)\", interval: 2s}", hosts: hosts)
        var run = try CLI.run(["observe", dir.path, "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        var report = try lab.report(run.stdout)
        XCTAssertEqual(report.vms["tiny"]?.samples, 0, run.stdout)
        XCTAssertTrue(report.warnings.contains { $0.hasPrefix("tiny: ") && $0.contains("no network series") }, "\(report.warnings)")
        XCTAssertFalse(report.warnings.contains { $0.contains("no cpu series") || $0.contains("no memory series") }, "\(report.warnings)")

        dir = try lab.writeCluster(root: root, telemetry: """
            {source: prometheus, url: "\(url)", interval: 2s, queries: {network: "0 * rate(libvirt_domain_info_cpu_time_seconds_total[$interval])"}}
            """, hosts: hosts)
        run = try CLI.run(["observe", dir.path, "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        report = try lab.report(run.stdout)
        let tiny = try XCTUnwrap(report.vms["tiny"])
        XCTAssertEqual(tiny.samples, 5, "\(report.warnings)")
        XCTAssertEqual(try XCTUnwrap(tiny.memUsedMiB), 64, accuracy: 1e-9, "memory_usage_bytes is the 64 MiB allocation")
        let cpu = try XCTUnwrap(tiny.cpuCores)
        XCTAssertTrue(cpu >= 0 && cpu <= 1.05, "a 1-vCPU guest: \(cpu)")
    }
}

/// Processes one test started (fake server, Prometheus, exporter), stopped by PID at teardown.
final class PrometheusLab {
    struct Report {
        struct VM { var samples: Int; var cpuCores: Double?; var netMbps: Double?; var memUsedMiB: Double? }
        var vms: [String: VM]
        var warnings: [String]
    }

    let dir: URL
    private var processes: [Process] = []

    init(_ test: XCTestCase) throws {
        guard FileManager.default.isExecutableFile(atPath: PrometheusTelemetryTests.prometheusBinary) else {
            throw XCTSkip("prometheus is not installed (apt-get install -y prometheus prometheus-libvirt-exporter; .ci/install-deps)")
        }
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("sandpiper-prom-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        test.addTeardownBlock { [self] in
            for p in processes.reversed() { LabProcess.stop(p) }
            try? FileManager.default.removeItem(at: dir)
        }
    }

    static func sparePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard ok else { throw NSError(domain: "PrometheusLab", code: 1) }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    @discardableResult
    func start(_ path: String, _ arguments: [String], log: String? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        let logFile = dir.appendingPathComponent(log ?? (URL(fileURLWithPath: path).lastPathComponent + ".log"))
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logFile)
        p.standardOutput = handle
        p.standardError = handle
        p.standardInput = FileHandle.nullDevice
        try p.run()
        processes.append(p)
        return p
    }

    /// The Python server: exporter-format `/metrics` with known rates, and a fake query_range API under
    /// `/status500`, `/badjson`, `/slow` and `/auth`.
    func startFakeServer() throws -> (process: Process, port: Int) {
        let script = dir.appendingPathComponent("fake.py")
        try Self.fakeServer.write(to: script, atomically: true, encoding: .utf8)
        let portFile = dir.appendingPathComponent("fake.port")
        let expected = "Basic " + Data(PrometheusTelemetryTests.secret.utf8).base64EncodedString()
        let p = try start("/usr/bin/python3", [script.path, portFile.path, expected], log: "fake.log")
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let s = try? String(contentsOf: portFile, encoding: .utf8), let port = Int(s) { return (p, port) }
            guard p.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw NSError(domain: "PrometheusLab", code: 2, userInfo: [NSLocalizedDescriptionKey: "fake server did not start: "
            + ((try? String(contentsOf: dir.appendingPathComponent("fake.log"), encoding: .utf8)) ?? "")])
    }

    /// Debian's prometheus, scrape interval 1 s, one job per target (`target0`...), storage in the lab dir.
    func startPrometheus(targets: [String]) throws -> (process: Process, port: Int) {
        let port = try Self.sparePort()
        var config = "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n"
        for (i, t) in targets.enumerated() { config += "  - {job_name: target\(i), static_configs: [{targets: ['\(t)']}]}\n" }
        let file = dir.appendingPathComponent("prometheus.yml")
        try config.write(to: file, atomically: true, encoding: .utf8)
        let p = try start(PrometheusTelemetryTests.prometheusBinary, [
            "--config.file=\(file.path)", "--storage.tsdb.path=\(dir.appendingPathComponent("tsdb").path)",
            "--web.listen-address=127.0.0.1:\(port)",
        ])
        return (p, port)
    }

    /// Polls Prometheus (deadline 120 s) until job `job` has been scraped successfully for `seconds`.
    func waitForHistory(prometheus port: Int, job: String, seconds: Double) throws {
        let query = "count_over_time(up{job=\"\(job)\"}[\(Int(seconds.rounded(.up)) + 1)s]) and up{job=\"\(job)\"} == 1"
        var c = URLComponents(string: "http://127.0.0.1:\(port)/api/v1/query")!
        c.queryItems = [URLQueryItem(name: "query", value: query)]
        let deadline = Date().addingTimeInterval(120)
        var last = ""
        while Date() < deadline {
            if let data = try? Data(contentsOf: c.url!),
               let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
               let result = (json["data"] as? [String: Any])?["result"] as? [[String: Any]],
               let value = (result.first?["value"] as? [Any])?.last as? String, let n = Double(value) {
                if n >= seconds + 1 { return }
                last = "\(n) scrapes"
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
        throw NSError(domain: "PrometheusLab", code: 3, userInfo: [NSLocalizedDescriptionKey:
            "Prometheus did not collect \(seconds)s of \(job) within 120s (\(last)): "
            + ((try? String(contentsOf: dir.appendingPathComponent("prometheus.log"), encoding: .utf8))?.suffix(800) ?? "")])
    }

    /// A repository cluster: the demo's test-driver hosts (or `hosts`), no declared VMs, the given telemetry.
    func writeCluster(root: URL, telemetry: String, hosts: String? = nil) throws -> URL {
        let d = root.appendingPathComponent("Clusters/prom")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        if hosts == nil, !FileManager.default.fileExists(atPath: d.appendingPathComponent("hosts").path) {
            try FileManager.default.copyItem(at: root.appendingPathComponent("Clusters/demo/hosts"),
                                             to: d.appendingPathComponent("hosts"))
        }
        let demoHosts = "hosts:\n" + (1...3).map { "  - {name: pm\($0), uri: \"test:hosts/pm\($0).xml\"}\n" }.joined()
        let yaml = "apiVersion: sandpiper/v1\nkind: Cluster\nname: prom\npolicy: default\ntelemetry: \(telemetry)\n"
            + (hosts ?? demoHosts)
        try yaml.write(to: d.appendingPathComponent("cluster.yaml"), atomically: true, encoding: .utf8)
        try? FileManager.default.removeItem(at: d.appendingPathComponent("state.json"))
        return d
    }

    func report(_ stdout: String) throws -> Report {
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any], stdout)
        var vms: [String: Report.VM] = [:]
        for v in json["vms"] as? [[String: Any]] ?? [] {
            vms[v["name"] as! String] = Report.VM(samples: v["samples"] as? Int ?? -1, cpuCores: v["cpuCores"] as? Double,
                                                  netMbps: v["netMbps"] as? Double, memUsedMiB: v["memUsedMiB"] as? Double)
        }
        return Report(vms: vms, warnings: json["warnings"] as? [String] ?? [])
    }

    static let fakeServer = #"""
    import json, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    T0 = time.time()
    EXPECTED_AUTH = sys.argv[2]
    WEB1 = 'domain="web1",uuid="93c3efe0-0000-4000-8000-000000000001"'
    DB1 = 'domain="db1-old-name",uuid="144d2ef6-0000-4000-8000-000000000002"'
    BATCH1 = 'domain="batch1",uuid="be194afe-0000-4000-8000-000000000002"'

    def metrics():
        t = time.time() - T0
        lines = [
            # web1: 2 cores, 512 MiB, 1e6 + 0.25e6 bytes/s = 10 Mbit/s
            'libvirt_domain_info_cpu_time_seconds_total{%s} %r' % (WEB1, 100 + 2.0 * t),
            'libvirt_domain_info_memory_usage_bytes{%s} %d' % (WEB1, 512 * 1048576),
            'libvirt_domain_interface_stats_receive_bytes_total{%s,source_bridge="br0",target_device="vnet0"} %r' % (WEB1, 1e6 * t),
            'libvirt_domain_interface_stats_transmit_bytes_total{%s,source_bridge="br0",target_device="vnet0"} %r' % (WEB1, 0.25e6 * t),
            # db1, known to Prometheus under an old name: matched by UUID; 0.5 cores, 1 GiB, 1 Mbit/s
            'libvirt_domain_info_cpu_time_seconds_total{%s} %r' % (DB1, 0.5 * t),
            'libvirt_domain_info_memory_usage_bytes{%s} %d' % (DB1, 1024 * 1048576),
            'libvirt_domain_interface_stats_receive_bytes_total{%s,source_bridge="br0",target_device="vnet1"} 0' % DB1,
            'libvirt_domain_interface_stats_transmit_bytes_total{%s,source_bridge="br0",target_device="vnet1"} %r' % (DB1, 125000 * t),
            # batch1: memory NaN
            'libvirt_domain_info_cpu_time_seconds_total{%s} %r' % (BATCH1, 1.0 * t),
            'libvirt_domain_info_memory_usage_bytes{%s} NaN' % BATCH1,
            'libvirt_domain_interface_stats_receive_bytes_total{%s,source_bridge="br0",target_device="vnet2"} 0' % BATCH1,
            'libvirt_domain_interface_stats_transmit_bytes_total{%s,source_bridge="br0",target_device="vnet2"} 0' % BATCH1,
        ]
        return ('\n'.join(lines) + '\n').encode()

    def matrix(query, start, end, step):
        times = []
        t = start
        while t <= end + 1e-9:
            times.append(t); t += step
        value = '0.25' if 'cpu_time' in query else ('64' if 'memory' in query else '0')
        return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"domain": "web1"}, "values": [[x, value] for x in times]}]}}).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args): pass
        def send(self, code, body, kind='text/plain'):
            self.send_response(code)
            self.send_header('Content-Type', kind)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def do_GET(self):
            from urllib.parse import urlparse, parse_qs
            u = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            if u.path == '/metrics':
                return self.send(200, metrics())
            if u.path == '/status500/api/v1/query_range':
                return self.send(500, ('internal error; you sent Authorization: %s' % self.headers.get('Authorization')).encode())
            if u.path == '/badjson/api/v1/query_range':
                return self.send(200, b'{"status": "success", "data": ', 'application/json')
            if u.path == '/slow/api/v1/query_range':
                time.sleep(5)
                return self.send(200, b'{}')
            if u.path == '/auth/api/v1/query_range':
                if self.headers.get('Authorization') != EXPECTED_AUTH:
                    return self.send(401, b'unauthorized')
                return self.send(200, matrix(q['query'], float(q['start']), float(q['end']), float(q['step'])), 'application/json')
            self.send(404, b'not found')

    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    with open(sys.argv[1] + '.tmp', 'w') as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(sys.argv[1] + '.tmp', sys.argv[1])
    server.serve_forever()
    """#
}
