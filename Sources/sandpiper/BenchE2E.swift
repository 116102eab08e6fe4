import ArgumentParser
import Foundation
import SandpiperEngine

struct BenchE2E: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e",
        abstract: "Time validate, plan and simulate end to end on a generated test-driver cluster; report wall time and peak RSS.",
        discussion: """
        Generates a libvirt test-driver cluster (node XML per host, cluster.yaml, a policy and a trace of \
        --intervals intervals) in a temp directory (or --dir), then runs this sandpiper binary as a user would: \
        `validate`, `plan`, `plan --json`, and `simulate --intervals N` on a second copy whose trace has \
        --simulate-intervals intervals. Each command is its own process: its wall time and peak RSS (wait4) are \
        reported. Exit 1 when a command fails.
        """)

    @Option(help: "Number of hosts.") var hosts: Int = 1000
    @Option(help: "Number of VMs.") var vms: Int = 20000
    @Option(help: "Intervals in the trace that validate and plan read.") var intervals: Int = 20
    @Option(help: "Intervals simulate replays (its own copy of the cluster); 0 skips simulate.")
    var simulateIntervals: Int = 288
    @Option(help: "Seed of the fleet generator (same seed, same cluster).") var seed: UInt64 = 1
    @Option(help: "Generate the cluster into this directory and keep it (default: a temp directory, removed).")
    var dir: String?
    @Flag(help: "Print one JSON object (formatVersion 1).") var json = false
    @Flag(help: ArgumentHelp("Only write the cluster (the run does it in a child process).", visibility: .hidden))
    var generateOnly = false

    func validate() throws {
        guard hosts >= 1, vms >= 1, hosts <= 100_000, vms <= 1_000_000 else {
            throw ValidationError("--hosts must be 1...100000 and --vms 1...1000000")
        }
        guard intervals >= 1, simulateIntervals >= 0 else {
            throw ValidationError("--intervals must be >= 1 and --simulate-intervals >= 0")
        }
    }

    struct Command: Encodable {
        var name: String
        var arguments: [String]
        var seconds: Double
        /// User + system CPU time of the process (all its threads): less sensitive than wall time to other
        /// work on the machine.
        var cpuSeconds: Double
        var peakRSSBytes: Int
        var exitStatus: Int32
    }

    struct Report: Encodable {
        var formatVersion = 1
        var hosts: Int
        var vms: Int
        var intervals: Int
        var simulateIntervals: Int
        var seed: UInt64
        var generateSeconds: Double
        var traceBytes: Int
        /// Opening all of the cluster's libvirt test-driver connections once, in this process: libvirt parses
        /// every host's node XML then. The commands above no longer pay it: they observe test-driver hosts from
        /// their node files and open only the hosts they act on (simulate's migrations and balloons).
        var testDriverOpenSeconds: Double
        var commands: [Command]
    }

    func run() throws {
        let root = dir.map { URL(fileURLWithPath: $0).standardizedFileURL }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("sandpiper-e2e-\(getpid())")
        defer { if dir == nil { try? FileManager.default.removeItem(at: root) } }
        if generateOnly {
            do {
                _ = try GeneratedCluster.write(hosts: hosts, vms: vms, intervals: intervals, seed: seed, under: root)
                if simulateIntervals > 0 {
                    _ = try GeneratedCluster.write(hosts: hosts, vms: vms, intervals: simulateIntervals, seed: seed,
                                                   name: "bench-sim", under: root)
                }
            } catch {
                throw Output.failure(EngineError.apply("cannot write the generated cluster under \(root.path): \(error)"),
                                     json: json)
            }
            return
        }
        // Generated in a child: a child's peak RSS (wait4) starts from its parent's peak at spawn (Linux carries
        // it over exec), so this process stays small.
        var generator = ["bench", "e2e", "--generate-only", "--dir", root.path, "--hosts", String(hosts), "--vms",
                         String(vms), "--intervals", String(intervals), "--simulate-intervals", String(simulateIntervals),
                         "--seed", String(seed)]
        if json { generator.append("--json") }
        do { try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true) } catch {
            throw Output.failure(EngineError.apply("cannot write the generated cluster under \(root.path): \(error)"),
                                 json: json)
        }
        let generated = try ChildProcess.run(generator, in: root)
        guard generated.status == 0 else {
            if json { print(generated.stdoutText) }
            Output.error("error: " + generated.stderrTail.replacingOccurrences(of: "error: ", with: ""))
            throw ExitCode.invalid
        }
        let generateSeconds = generated.seconds
        let traceBytes = (try? FileManager.default.attributesOfItem(
            atPath: root.appendingPathComponent("Clusters/bench/traces/bench.csv").path)[.size] as? Int) ?? 0

        var runs: [(String, [String])] = [
            ("validate", ["validate", "Clusters/bench"]),
            ("plan", ["plan", "Clusters/bench"]),
            ("plan --json", ["plan", "Clusters/bench", "--json"]),
        ]
        if simulateIntervals > 0 {
            runs.append(("simulate", ["simulate", "Clusters/bench-sim", "--intervals", String(simulateIntervals)]))
        }
        // The commands run where a user would run them: at the root of the repository (relative paths).
        let cwd = FileManager.default.currentDirectoryPath
        guard FileManager.default.changeCurrentDirectoryPath(root.path) else {
            throw Output.failure(EngineError.apply("cannot change to \(root.path)"), json: json)
        }
        defer { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }
        var commands: [Command] = []
        for (name, arguments) in runs {
            let terminal = !json && isatty(STDERR_FILENO) != 0
            if terminal { Output.errorInline("running \(name)...") }
            let r = try ChildProcess.run(arguments, in: root)
            if terminal { Output.errorInline("\r\u{1B}[K") }
            commands.append(Command(name: name, arguments: arguments, seconds: r.seconds, cpuSeconds: r.cpuSeconds,
                                    peakRSSBytes: r.peakRSSBytes, exitStatus: r.status))
            if r.status != 0 { Output.error("error: `sandpiper \(arguments.joined(separator: " "))` exited \(r.status)"
                + (r.stderrTail.isEmpty ? "" : ": \(r.stderrTail)")) }
        }
        let report = Report(hosts: hosts, vms: vms, intervals: intervals, simulateIntervals: simulateIntervals,
                            seed: seed, generateSeconds: generateSeconds, traceBytes: traceBytes,
                            testDriverOpenSeconds: try testDriverOpenSeconds(), commands: commands)
        if json { print(try Output.json(report)) } else {
            print("e2e: \(hosts) hosts, \(vms) VMs, trace of \(intervals) intervals "
                + "(\(String(format: "%.1f", Double(traceBytes) / 1_048_576)) MiB); generated in "
                + String(format: "%.1f s", generateSeconds) + (dir.map { " under \($0)" } ?? ""))
            for c in commands {
                let label = c.name == "simulate" ? "simulate (\(simulateIntervals) intervals)" : c.name
                let padded = label + String(repeating: " ", count: max(0, 28 - label.count))
                print("  " + padded + String(format: "%8.3f s  (CPU %7.3f s)   peak RSS %7.1f MiB", c.seconds,
                                             c.cpuSeconds, Double(c.peakRSSBytes) / 1_048_576)
                    + (c.exitStatus == 0 ? "" : "   FAILED (exit \(c.exitStatus))"))
            }
            print(String(format: "  for comparison, libvirt opening all %d test-driver hosts (it parses their node XML): %.3f s "
                         + "(measured once in this process; plan reads the node files itself, simulate opens only the "
                         + "hosts it acts on)", hosts, report.testDriverOpenSeconds))
        }
        if commands.contains(where: { $0.exitStatus != 0 }) { throw ExitCode.failure }
    }
}

extension BenchE2E {
    /// Wall time of opening every host of the generated cluster through libvirt once (read-only).
    func testDriverOpenSeconds() throws -> Double {
        let loaded: LoadedCluster
        do { loaded = try Engine.load("Clusters/bench") } catch { throw Output.failure(error, json: json) }
        let start = DispatchTime.now().uptimeNanoseconds
        let connections = FleetConnections(cluster: loaded, readOnly: true, readsTestNodeFiles: false)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        connections.closeAll()
        return seconds
    }
}

/// Runs this executable as a child (stdout and stderr to files, as a user's redirect would) and reports its
/// wall time and its own peak RSS from wait4(2).
enum ChildProcess {
    struct Result {
        var status: Int32
        var seconds: Double
        var cpuSeconds: Double
        var peakRSSBytes: Int
        var stderrTail: String
        var stdoutText: String
    }

    static func run(_ arguments: [String], in directory: URL) throws -> Result {
        let executable = Bundle.main.executablePath ?? CommandLine.arguments[0]
        let out = directory.appendingPathComponent(".bench-stdout").path
        let err = directory.appendingPathComponent(".bench-stderr").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var environment = ProcessInfo.processInfo.environment
        environment["CI"] = "true"
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in envp { free(p) } }
        var pid: pid_t = 0
        let start = DispatchTime.now().uptimeNanoseconds
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard rc == 0 else {
            throw EngineError.apply("cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        // Exit status, or 128 + signal as a shell reports it.
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        let tail = (try? String(contentsOfFile: err, encoding: .utf8))?
            .split(separator: "\n").last.map(String.init) ?? ""
        func secondsOf(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return Result(status: exit, seconds: seconds, cpuSeconds: secondsOf(usage.ru_utime) + secondsOf(usage.ru_stime),
                      peakRSSBytes: Int(usage.ru_maxrss) * 1024, stderrTail: tail,
                      stdoutText: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "")
    }
}
