import ArgumentParser
import Foundation
import SandpiperEngine
import SandpiperSimulation
import SandpiperModel

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay the cluster's trace through the reconcile loop (observe -> plan -> apply) on its hosts.",
        discussion: """
        Runs the loop once per trace interval through the same engine as `plan` and `apply`, acting on the \
        cluster's libvirt hosts (test-driver hosts in the bundled clusters: migrations between them are cold). \
        Demand follows a VM when it moves. A migration takes (RAM + local disk) / bandwidth (--bandwidth, default: the slower \
        of the two hosts' capacity.network in cluster.yaml, 1 Gbit/s when undeclared) and costs \
        --migration-cpu cores on both hosts while it runs; the loop does not plan while an apply runs. \
        A VM swaps in an interval when its memory demand exceeds its allocation. The policy's automation level \
        is ignored: every plan is applied (what `full` automation would do). state.json is not written.

        Prints the hotspots (detected at, resolved at, by which actions), per-host utilization per interval \
        and a summary; --json prints one JSON object (formatVersion 1), --svg draws the utilization chart.
        """)

    @Argument(help: "Cluster directory (Clusters/<name>) or its cluster.yaml; its telemetry source must be a trace.")
    var cluster: String

    @Flag(help: "Print the result as one JSON object (formatVersion 1).")
    var json = false

    @Option(help: "Write an SVG chart (per-host utilization, thresholds, hotspots, migrations) to this file.")
    var svg: String?

    @Option(help: "Migration bandwidth in Mbit/s (default: the slower host's capacity.network, else 1000).")
    var bandwidth: Double?

    @Option(help: "CPU cores a running migration costs on each of its two hosts.")
    var migrationCpu: Double = SimulationOptions.defaultMigrationCPUCores

    @Option(help: "Override the policy's profiling mode: gray-box or black-box.")
    var profiling: String?

    @Option(help: "Replay at most this many intervals.")
    var intervals: Int?

    @Option(help: "Write a compact SVG chart of the hosts powered on per interval (consolidation) to this file.")
    var hostsSvg: String?

    @Option(help: "Override the policy's consolidation.enabled: on or off (compare both on one trace).")
    var consolidation: String?

    func validate() throws {
        if let b = bandwidth, !(b > 0) { throw ValidationError("--bandwidth must be positive (Mbit/s)") }
        if !(migrationCpu >= 0) { throw ValidationError("--migration-cpu must be zero or positive (cores)") }
        if let p = profiling, Policy.Profiling.Mode(rawValue: p) == nil {
            throw ValidationError("--profiling must be gray-box or black-box")
        }
        if let n = intervals, n < 1 { throw ValidationError("--intervals must be at least 1") }
        if let c = consolidation, c != "on", c != "off" { throw ValidationError("--consolidation must be on or off") }
        for (flag, path) in [("--svg", svg), ("--hosts-svg", hostsSvg)] {
            guard let path else { continue }
            let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
                throw ValidationError("\(flag): the directory \(dir) does not exist")
            }
        }
    }

    func run() throws {
        do {
            let loaded = try Engine.load(cluster)
            let options = SimulationOptions(bandwidthMbps: bandwidth, migrationCPUCores: migrationCpu,
                                            profiling: profiling.flatMap(Policy.Profiling.Mode.init(rawValue:)),
                                            maxIntervals: intervals,
                                            consolidation: consolidation.map { $0 == "on" }, progress: progress())
            let report = try Simulator(cluster: loaded, options: options).run()
            if let svg {
                do { try AtomicFile.write(Data(SimulationSVG.render(report).utf8), to: URL(fileURLWithPath: svg)) } catch {
                    throw EngineError.apply("cannot write the chart: \(error)")
                }
            }
            if let hostsSvg {
                do { try AtomicFile.write(Data(SimulationSVG.hostsOn(report).utf8), to: URL(fileURLWithPath: hostsSvg)) } catch {
                    throw EngineError.apply("cannot write the hosts chart: \(error)")
                }
            }
            if json { print(String(decoding: try report.encoded(), as: UTF8.self)) }
            else {
                print(SimulationRenderer(color: Output.isTerminal).render(report))
                if let svg { print("\nChart: \(svg)") }
            }
        } catch {
            throw Output.failure(error, json: json)
        }
    }

    /// A rewritten progress line on a terminal's stderr; nothing otherwise.
    private func progress() -> (@Sendable (Int, Int) -> Void)? {
        guard !json, isatty(STDERR_FILENO) != 0, ProcessInfo.processInfo.environment["CI"] == nil else { return nil }
        return { done, total in
            if done % 10 == 0 || done == total {
                Output.errorInline("\rinterval \(done)/\(total)" + (done == total ? "\r\u{1B}[K" : ""))
            }
        }
    }
}
