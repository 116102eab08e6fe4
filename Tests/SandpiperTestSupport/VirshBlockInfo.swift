import Foundation

/// `virsh domblkinfo` read independently of Sandpiper: the oracle for disk sizes in tests.
public enum VirshBlockInfo {
    /// Capacity, Allocation and Physical in bytes, keyed by virsh's field names.
    public static func read(uri: String = "test:///default", domain: String = "test",
                            target: String = "vda") throws -> [String: UInt64] {
        let text = try QemuLab.run("/usr/bin/virsh", ["-c", uri, "domblkinfo", domain, target])
        var fields: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let value = UInt64(parts[1].trimmingCharacters(in: .whitespaces)) else { continue }
            fields[String(parts[0])] = value
        }
        return fields
    }
}
