internal import CLibvirt
import Foundation

/// The whole host's CPU time and memory as the kernel counts them (`virNodeGetCPUStats`,
/// `virNodeGetMemoryStats`): with the domains' own statistics, the load on a host that is not its VMs'.
/// Fields are nil when the driver does not report them (the test driver reports none).
public struct NodeStats: Sendable, Equatable {
    /// Cumulative kernel + user CPU time of all CPUs, ns.
    public var busyNs: UInt64?
    public var memoryTotalKiB: UInt64?
    public var memoryFreeKiB: UInt64?
    public var memoryBuffersKiB: UInt64?
    public var memoryCachedKiB: UInt64?
    /// Monotonic clock at the reading, ns.
    public var timestampNs: UInt64

    public init(busyNs: UInt64? = nil, memoryTotalKiB: UInt64? = nil, memoryFreeKiB: UInt64? = nil,
                memoryBuffersKiB: UInt64? = nil, memoryCachedKiB: UInt64? = nil, timestampNs: UInt64) {
        self.busyNs = busyNs; self.memoryTotalKiB = memoryTotalKiB; self.memoryFreeKiB = memoryFreeKiB
        self.memoryBuffersKiB = memoryBuffersKiB; self.memoryCachedKiB = memoryCachedKiB
        self.timestampNs = timestampNs
    }

    /// Memory in use by everything (page cache and buffers excluded), MiB.
    public var memoryUsedMiB: Double? {
        guard let t = memoryTotalKiB, let f = memoryFreeKiB else { return nil }
        let used = Double(t) - Double(f) - Double(memoryBuffersKiB ?? 0) - Double(memoryCachedKiB ?? 0)
        return max(0, used) / 1024
    }

    /// Load outside the VMs between two readings: busy cores minus the VMs' cores, used memory minus the VMs'
    /// current allocations (MiB). Nil when either reading lacks what it needs.
    public static func overhead(previous: NodeStats?, current: NodeStats, vmCores: Double,
                                vmMemoryMiB: Double) -> (cpu: Double, memMiB: Double)? {
        guard let previous, let b0 = previous.busyNs, let b1 = current.busyNs, b1 >= b0,
              current.timestampNs > previous.timestampNs, let used = current.memoryUsedMiB else { return nil }
        let cores = Double(b1 - b0) / Double(current.timestampNs - previous.timestampNs)
        return (max(0, cores - vmCores), max(0, used - vmMemoryMiB))
    }
}

extension LibvirtConnection {
    /// Reads the host's CPU and memory counters; fields the driver does not support stay nil.
    public func nodeStats() throws(LibvirtError) -> NodeStats {
        try withHandle { (conn) throws(LibvirtError) -> NodeStats in
            var out = NodeStats(timestampNs: monotonicNowNs())
            let cpu = try readNodeParameters(conn, what: "virNodeGetCPUStats") { params, n in
                virNodeGetCPUStats(conn, VIR_NODE_CPU_STATS_ALL_CPUS.rawValue, params, n, 0)
            } as [virNodeCPUStats]
            let cpuValues = Dictionary(cpu.map { (Self.field($0.field), $0.value) }, uniquingKeysWith: { a, _ in a })
            if let k = cpuValues[VIR_NODE_CPU_STATS_KERNEL], let u = cpuValues[VIR_NODE_CPU_STATS_USER] {
                out.busyNs = k + u
            }
            let mem = try readNodeParameters(conn, what: "virNodeGetMemoryStats") { params, n in
                virNodeGetMemoryStats(conn, VIR_NODE_MEMORY_STATS_ALL_CELLS.rawValue, params, n, 0)
            } as [virNodeMemoryStats]
            let memValues = Dictionary(mem.map { (Self.field($0.field), $0.value) }, uniquingKeysWith: { a, _ in a })
            out.memoryTotalKiB = memValues[VIR_NODE_MEMORY_STATS_TOTAL]
            out.memoryFreeKiB = memValues[VIR_NODE_MEMORY_STATS_FREE]
            out.memoryBuffersKiB = memValues[VIR_NODE_MEMORY_STATS_BUFFERS]
            out.memoryCachedKiB = memValues[VIR_NODE_MEMORY_STATS_CACHED]
            return out
        }
    }

    /// The two-call protocol of virNodeGet*Stats: count first, then fill. Unsupported: an empty list.
    private func readNodeParameters<T>(_ conn: OpaquePointer, what: String,
                                       _ call: (UnsafeMutablePointer<T>?, UnsafeMutablePointer<Int32>) -> Int32)
        throws(LibvirtError) -> [T] {
        var n: Int32 = 0
        do throws(LibvirtError) {
            try libvirtCall("\(what) on \(redactedURI)", scrub: scrub) { call(nil, &n) }
        } catch where error.isUnsupported || error.kind == .invalidArgument || error.kind == .operationInvalid {
            return []
        }
        guard n > 0 else { return [] }
        let buffer = UnsafeMutablePointer<T>.allocate(capacity: Int(n))
        defer { buffer.deallocate() }
        try libvirtCall("\(what) on \(redactedURI)", scrub: scrub) { call(buffer, &n) }
        return Array(UnsafeBufferPointer(start: buffer, count: Int(n)))
    }

    private static func field<F>(_ tuple: F) -> String {
        withUnsafeBytes(of: tuple) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
