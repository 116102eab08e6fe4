import ArgumentParser
import Foundation
import SandpiperEngine
import SandpiperModel

struct BenchController: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Run `sandpiper run` on a generated test-driver cluster for a few rounds; report round time, CPU per round, peak RSS.",
        discussion: """
        Generates the libvirt test-driver cluster of `bench e2e` (1,000 hosts, 20,000 VMs by default; 10 s \
        telemetry interval) in a temp directory (or --dir), then runs this sandpiper binary as an operator would: \
        `sandpiper run Clusters/bench --max-rounds N --log-format json` (automation manual: each round observes, \
        plans, saves the proposal and writes state.json). Round wall and CPU times come from the controller's \
        `round done` log events, the gap between rounds from their timestamps, total CPU and peak RSS from \
        wait4. The controller keeps up when every round is shorter than the interval and rounds follow each \
        other at the interval. Exit 1 when the controller fails.
        """)

    enum Source: String, ExpressibleByArgument, CaseIterable, Encodable { case trace, libvirt }

    @Option(help: "Number of hosts.") var hosts: Int = 1000
    @Option(help: "Number of VMs.") var vms: Int = 20000
    @Option(help: "Rounds to run.") var rounds: Int = 4
    @Option(help: "Trace replay speed (--speed of run): wall interval = 10 s / speed.") var speed: Double = 1
    @Option(help: "Telemetry: trace (replayed, hotspots to plan) or libvirt (each test-driver host sampled every interval).")
    var source: Source = .trace
    @Option(help: "Seed of the fleet generator (same seed, same cluster).") var seed: UInt64 = 1
    @Option(help: "Generate the cluster into this directory and keep it (default: a temp directory, removed).")
    var dir: String?
    @Flag(help: "Print one JSON object (formatVersion 1).") var json = false

    func validate() throws {
        guard hosts >= 1, vms >= 1, hosts <= 100_000, vms <= 1_000_000 else {
            throw ValidationError("--hosts must be 1...100000 and --vms 1...1000000")
        }
        guard rounds >= 2, rounds <= 1000 else { throw ValidationError("--rounds must be 2...1000") }
        guard speed > 0, speed.isFinite else { throw ValidationError("--speed must be positive") }
    }

    struct Round: Encodable {
        var seconds: Double
        var cpuSeconds: Double
        /// Seconds since the previous round ended (nil for the first).
        var gapSeconds: Double?
        var actions: Int?
        var hotspots: Int?
    }

    struct Report: Encodable {
        var formatVersion = 1
        var hosts: Int
        var vms: Int
        var source: Source
        var intervalSeconds: Double
        var rounds: [Round]
        var roundSecondsP50: Double
        var roundSecondsMax: Double
        var roundCPUSecondsP50: Double
        var roundCPUSecondsMax: Double
        /// Wall time from the controller's launch to the first round's end: loading the spec, opening every host, the first round.
        var startupSeconds: Double
        var totalSeconds: Double
        var totalCPUSeconds: Double
        var peakRSSBytes: Int
        var exitStatus: Int32
        /// Every round shorter than the interval, and no gap between rounds longer than the interval (+10%).
        var keepsUp: Bool
    }

    func run() throws {
        let root = dir.map { URL(fileURLWithPath: $0).standardizedFileURL }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("sandpiper-bench-run-\(getpid())")
        defer { if dir == nil { try? FileManager.default.removeItem(at: root) } }
        do { try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true) } catch {
            throw Output.failure(EngineError.apply("cannot write the generated cluster under \(root.path): \(error)"),
                                 json: json)
        }
        // Generated in a child (as bench e2e does), so the controller's peak RSS is its own. The trace covers the
        // first window (n = 5) and one more interval per round.
        let generator = ["bench", "e2e", "--generate-only", "--dir", root.path, "--hosts", String(hosts), "--vms",
                         String(vms), "--intervals", String(rounds + 5), "--simulate-intervals", "0",
                         "--seed", String(seed)]
        let generated = try ChildProcess.run(generator, in: root)
        guard generated.status == 0 else {
            Output.error("error: " + generated.stderrTail.replacingOccurrences(of: "error: ", with: ""))
            throw ExitCode.invalid
        }
        let spec = root.appendingPathComponent("Clusters/bench/cluster.yaml")
        if source == .libvirt {
            do {
                let text = try String(contentsOf: spec, encoding: .utf8)
                try text.replacingOccurrences(of: "telemetry: {source: trace, trace: traces/bench.csv, interval: 10s}",
                                              with: "telemetry: {source: libvirt, interval: 10s}")
                    .write(to: spec, atomically: true, encoding: .utf8)
            } catch { throw Output.failure(EngineError.apply("cannot edit \(spec.path): \(error)"), json: json) }
        }
        let terminal = !json && isatty(STDERR_FILENO) != 0
        if terminal { Output.errorInline("running the controller for \(rounds) rounds...") }
        let arguments = ["run", root.appendingPathComponent("Clusters/bench").path, "--max-rounds", String(rounds), "--speed", String(speed),
                         "--log-format", "json"]
        let launched = Date()
        let r = try ChildProcess.run(arguments, in: root)
        if terminal { Output.errorInline("\r\u{1B}[K") }
        let log = (try? String(contentsOf: root.appendingPathComponent(".bench-stderr"), encoding: .utf8)) ?? ""
        let interval = (source == .trace ? 10 / speed : 10)
        let report = Self.report(log: log, hosts: hosts, vms: vms, source: source, interval: interval, launched: launched,
                                 child: r)
        if json { print(try Output.json(report)) } else {
            print("controller: \(hosts) hosts, \(vms) VMs, \(source.rawValue) telemetry, "
                + "interval \(Units.trim(interval)) s, \(report.rounds.count) rounds")
            print(String(format: "  round wall  p50 %7.3f s   max %7.3f s", report.roundSecondsP50, report.roundSecondsMax))
            print(String(format: "  round CPU   p50 %7.3f s   max %7.3f s", report.roundCPUSecondsP50, report.roundCPUSecondsMax))
            let gaps = report.rounds.compactMap(\.gapSeconds)
            if let g = gaps.max() { print(String(format: "  longest gap between rounds %.3f s", g)) }
            print(String(format: "  start to first round done %.3f s; whole run %.3f s wall, %.3f s CPU; peak RSS %.1f MiB",
                         report.startupSeconds, report.totalSeconds, report.totalCPUSeconds,
                         Double(report.peakRSSBytes) / 1_048_576))
            print("  keeps up with the \(Units.trim(interval)) s interval: \(report.keepsUp ? "yes" : "NO")")
        }
        guard r.status == 0, report.rounds.count == rounds else {
            Output.error("error: `sandpiper \(arguments.joined(separator: " "))` exited \(r.status) after "
                + "\(report.rounds.count) of \(rounds) rounds" + (r.stderrTail.isEmpty ? "" : ": \(r.stderrTail)"))
            throw ExitCode.failure
        }
    }

    /// Reads the controller's JSON log: one `round done` event per round with `duration_ms`, `cpu_ms` and `time`.
    static func report(log: String, hosts: Int, vms: Int, source: Source, interval: Double, launched: Date,
                       child: ChildProcess.Result) -> Report {
        let parser = ISO8601DateFormatter()
        parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var rounds: [Round] = []
        var previousEnd: Date?
        var firstEnd: Date?
        for line in log.split(separator: "\n") {
            guard let event = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let time = (event["time"] as? String).flatMap(parser.date(from:)) else { continue }
            guard let message = event["msg"] as? String, message.hasPrefix("round done"),
                  let ms = event["duration_ms"] as? Int else { continue }
            let cpu = event["cpu_ms"] as? Int ?? 0
            rounds.append(Round(seconds: Double(ms) / 1000, cpuSeconds: Double(cpu) / 1000,
                                gapSeconds: previousEnd.map { time.timeIntervalSince($0) },
                                actions: event["actions"] as? Int, hotspots: event["hotspots"] as? Int))
            previousEnd = time
            if firstEnd == nil { firstEnd = time }
        }
        func median(_ v: [Double]) -> Double {
            guard !v.isEmpty else { return 0 }
            let s = v.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        let walls = rounds.map(\.seconds), cpus = rounds.map(\.cpuSeconds)
        let gaps = rounds.compactMap(\.gapSeconds)
        let keepsUp = !rounds.isEmpty && walls.allSatisfy { $0 < interval } && gaps.allSatisfy { $0 <= interval * 1.1 }
        return Report(hosts: hosts, vms: vms, source: source, intervalSeconds: interval, rounds: rounds,
                      roundSecondsP50: median(walls), roundSecondsMax: walls.max() ?? 0,
                      roundCPUSecondsP50: median(cpus), roundCPUSecondsMax: cpus.max() ?? 0,
                      startupSeconds: firstEnd.map { $0.timeIntervalSince(launched) } ?? 0,
                      totalSeconds: child.seconds, totalCPUSeconds: child.cpuSeconds, peakRSSBytes: child.peakRSSBytes,
                      exitStatus: child.status, keepsUp: keepsUp)
    }
}
