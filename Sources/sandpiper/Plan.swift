import ArgumentParser

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compute the plan that converges the fleet to the spec.")
    @Argument(help: "Cluster directory (Clusters/<name>).") var cluster: String
    func run() throws { throw ValidationError("plan: not implemented yet") }
}
