import ArgumentParser

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmarks (planner speed and memory).")
    func run() throws { throw ValidationError("bench: not implemented yet") }
}
