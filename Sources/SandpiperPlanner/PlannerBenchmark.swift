import SandpiperModel

/// Planner speed on a generated fleet (`sandpiper bench planner`). Benchmark code, so it reads a clock; the
/// planner itself never does. Peak RSS is read by the CLI.
public enum PlannerBenchmark {
    public struct Result: Sendable, Equatable {
        public var hosts: Int
        public var vms: Int
        public var seed: UInt64
        /// Wall time of `Planner.plan` alone (fleet generation excluded).
        public var seconds: Double
        public var generateSeconds: Double
        public var actions: Int
        public var migrations: Int
        public var swaps: Int
        public var hotHosts: Int
        public var hotspotsResolved: Int
        public var unresolved: Int
    }

    public static func run(hosts: Int, vms: Int, seed: UInt64 = 1, hotFraction: Double = 0.05) -> Result {
        let clock = ContinuousClock()
        let g0 = clock.now
        let (spec, observation, policy) = FleetGenerator.generate(hosts: hosts, vms: vms, hotFraction: hotFraction,
                                                                  seed: seed)
        let g1 = clock.now
        let plan = Planner.plan(spec: spec, observation: observation, policy: policy)
        let t1 = clock.now
        let hotHosts = plan.hostsBefore.filter { !$0.hot.isEmpty }.count
        let unresolvedHosts = Set(plan.unresolved.compactMap { $0.vm == nil ? $0.host : nil })
        return Result(hosts: hosts, vms: vms, seed: seed, seconds: seconds(t1 - g1), generateSeconds: seconds(g1 - g0),
                      actions: plan.actions.count, migrations: plan.migrations.count,
                      swaps: Set(plan.actions.compactMap(\.swapGroup)).count, hotHosts: hotHosts,
                      hotspotsResolved: hotHosts - unresolvedHosts.count, unresolved: plan.unresolved.count)
    }

    static func seconds(_ d: Duration) -> Double { d / .seconds(1) }
}
