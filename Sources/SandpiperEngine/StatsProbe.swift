import SandpiperLibvirt
import SandpiperPlanner

/// One held connection that takes statistics rounds: what `bench sampling` times against `virsh domstats`.
public final class StatsProbe {
    private let connection: LibvirtConnection

    public init(uri: String) throws {
        connection = try LibvirtConnection(uri: uri, readOnly: true)
    }

    deinit { connection.close() }

    /// One virConnectGetAllDomainStats round trip; returns the number of domains it covered.
    public func round() throws -> Int { try connection.allDomainStats().domains.count }
}

/// The planner benchmark, reached through the engine so that the CLI depends on the engine only.
public typealias PlannerBenchmark = SandpiperPlanner.PlannerBenchmark
