import ArgumentParser
import Foundation
import SandpiperEngine
import SandpiperPlanner

struct BenchQuality: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quality",
        abstract: "Migrations planned vs the exact minimum on small fleets whose optimum was computed offline.",
        discussion: """
        Reads fleets with their optima (default Tests/Data/quality/fleets.json; the optima come from \
        tools/quality/optimum.py, OR-Tools CP-SAT, run offline), plans each twice (no per-run budget, then the \
        default budget) and judges each plan by summing its migrations onto the fleet: resolved = every host under \
        its CPU and memory thresholds. --write-fleets writes freshly generated fleets (no optima) for the solver.
        """)

    @Option(help: "Fleets with optima (JSON).") var fleets = "Tests/Data/quality/fleets.json"
    @Option(help: "Write this many generated fleets (seeds 1...N) to --write-fleets instead of benchmarking.")
    var count = 20
    @Option(help: "Write generated fleets (without optima) to this file and exit.") var writeFleets: String?
    @Flag(help: "Print one JSON object (formatVersion 1).") var json = false

    func validate() throws {
        guard (1...1000).contains(count) else { throw ValidationError("--count must be 1...1000") }
    }

    struct Report: Encodable {
        struct Run: Encodable { var resolved: Bool; var valid: Bool; var migrations: Int; var greedyResolved: Bool; var greedyMigrations: Int }
        struct Row: Encodable {
            var fleet: String; var hosts: Int; var vms: Int; var optimum: Int?; var feasible: Bool
            var unlimited: Run; var budgeted: Run
        }
        var formatVersion = 1
        var fleets: [Row]
        var feasible: Int
        var resolved: Int
        var migrations: Int
        var optimum: Int
        var ratio: Double
        var budget: Int
        var fitBudget: Int
        var resolvedWithinBudget: Int
        var invalid: Int
        var greedyResolved: Int
        var greedyMigrations: Int
        var greedyOptimum: Int
        var greedyRatio: Double
        var greedyResolvedWithinBudget: Int
    }

    func run() throws {
        if let out = writeFleets {
            let file = QualityFleetFile(fleets: QualityBenchmark.generate(count: count))
            try Data((try Output.json(file) + "\n").utf8).write(to: URL(fileURLWithPath: out))
            print("wrote \(count) fleets to \(out)")
            return
        }
        // Foundation's own error text (NSCocoaErrorDomain, NSUnderlyingError, ...) tells an operator nothing.
        guard let data = FileManager.default.contents(atPath: fleets) else {
            throw Output.failure(QualityFileError(path: fleets, underlying: "no such file, or it cannot be read"), json: json)
        }
        let file: QualityFleetFile
        do {
            file = try JSONDecoder().decode(QualityFleetFile.self, from: data)
        } catch {
            throw Output.failure(QualityFileError(path: fleets, underlying: "not a fleets file (\(PlanStore.describe(error)))"),
                                 json: json)
        }
        let rows = file.fleets.map(QualityBenchmark.run)
        let budget = QualityBenchmark.defaultBudget
        let feasible = rows.filter(\.feasible)
        // Ratios over the fleets each planner resolved (an unresolved plan's few moves would flatter it).
        let solved = feasible.filter(\.unlimited.resolved)
        let opt = solved.compactMap(\.optimum).reduce(0, +)
        let planned = solved.map(\.unlimited.migrations).reduce(0, +)
        let greedySolved = feasible.filter(\.unlimited.greedyResolved)
        let greedyOpt = greedySolved.compactMap(\.optimum).reduce(0, +)
        let greedyPlanned = greedySolved.map(\.unlimited.greedyMigrations).reduce(0, +)
        let fit = feasible.filter { ($0.optimum ?? .max) <= budget }
        let report = Report(
            fleets: rows.map { r in
                Report.Row(fleet: r.fleet, hosts: r.hosts, vms: r.vms, optimum: r.optimum, feasible: r.feasible,
                           unlimited: .init(resolved: r.unlimited.resolved, valid: r.unlimited.valid,
                                            migrations: r.unlimited.migrations,
                                            greedyResolved: r.unlimited.greedyResolved,
                                            greedyMigrations: r.unlimited.greedyMigrations),
                           budgeted: .init(resolved: r.budgeted.resolved, valid: r.budgeted.valid,
                                           migrations: r.budgeted.migrations,
                                           greedyResolved: r.budgeted.greedyResolved,
                                           greedyMigrations: r.budgeted.greedyMigrations))
            },
            feasible: feasible.count, resolved: feasible.filter(\.unlimited.resolved).count, migrations: planned,
            optimum: opt, ratio: opt > 0 ? Double(planned) / Double(opt) : 1, budget: budget, fitBudget: fit.count,
            resolvedWithinBudget: fit.filter(\.budgeted.resolved).count,
            invalid: rows.filter { !$0.unlimited.valid || !$0.budgeted.valid }.count,
            greedyResolved: feasible.filter(\.unlimited.greedyResolved).count,
            greedyMigrations: greedyPlanned, greedyOptimum: greedyOpt,
            greedyRatio: greedyOpt > 0 ? Double(greedyPlanned) / Double(greedyOpt) : 1,
            greedyResolvedWithinBudget: fit.filter(\.budgeted.greedyResolved).count)
        if json { print(try Output.json(report)); return }
        print("quality: \(rows.count) fleets from \(fleets)")
        func pad(_ s: String, _ w: Int) -> String { String(repeating: " ", count: max(0, w - s.count)) + s }
        print("  fleet  hosts  VMs  minimum | no budget: resolved  moves  ratio  greedy | budget \(budget): resolved  moves  greedy")
        for r in rows {
            let o = r.optimum.map(String.init) ?? "-"
            let ratio = r.optimum.map { $0 > 0 ? String(format: "%.2f", Double(r.unlimited.migrations) / Double($0)) : "-" } ?? "-"
            func yn(_ run: QualityBenchmark.Run) -> String { (run.resolved ? "yes" : "no") + (run.valid ? "" : " INVALID") }
            func greedy(_ run: QualityBenchmark.Run) -> String { "\(run.greedyMigrations)" + (run.greedyResolved ? "" : "*") }
            print("  " + pad(r.fleet, 5) + pad(String(r.hosts), 7) + pad(String(r.vms), 5) + pad(o, 9) + " |"
                  + pad(yn(r.unlimited), 20) + pad(String(r.unlimited.migrations), 7) + pad(ratio, 7)
                  + pad(greedy(r.unlimited), 8) + " |" + pad(yn(r.budgeted), 19) + pad(String(r.budgeted.migrations), 7)
                  + pad(greedy(r.budgeted), 8))
        }
        print("  no budget: resolved \(report.resolved) of \(report.feasible) feasible fleets; on those, \(planned) migrations vs minimum \(opt)"
              + String(format: " (x%.2f)", report.ratio))
        print("  budget \(budget): resolved \(report.resolvedWithinBudget) of the \(report.fitBudget) fleets whose minimum fits the budget")
        print("  greedy alone (step 5b off; * = not resolved): resolved \(report.greedyResolved) of \(report.feasible), on those \(report.greedyMigrations) vs \(report.greedyOptimum)"
              + String(format: " (x%.2f)", report.greedyRatio) + "; budget \(budget): \(report.greedyResolvedWithinBudget) of \(report.fitBudget)")
        if report.invalid > 0 { print("  INVALID plans: \(report.invalid)") }
    }
}

struct QualityFileError: Error, CustomStringConvertible {
    var path: String
    var underlying: String
    var description: String { "\(path): cannot read quality fleets: \(underlying)" }
}
