/// Where a VM's disks live, as far as a move is concerned: `shared` storage is reachable from every host (NFS,
/// Ceph, iSCSI...), so a move copies memory only; `local` disks must be copied along (libvirt copy-storage).
public enum StorageMode: String, Sendable, Codable, CaseIterable {
    case shared, local
}

/// One disk of a VM as libvirt shows it (domain XML + `virDomainGetBlockInfo`), with the storage mode resolved
/// from the spec and the disk's kind (`StorageDefaults`).
public struct VMDisk: Sendable, Equatable, Codable {
    /// `<disk type=...>`: file, block, volume or network.
    public enum Kind: String, Sendable, Codable { case file, block, volume, network, other }
    /// Target device (`vda`), the name libvirt's VIR_MIGRATE_PARAM_MIGRATE_DISKS takes.
    public var target: String
    public var kind: Kind
    /// File or device path, `pool/volume`, or `protocol:name` for a network disk.
    public var source: String
    /// Driver format (qcow2, raw), when declared.
    public var format: String?
    /// The image has a backing file (an overlay): an incremental copy moves only the top image.
    public var backing: Bool?
    /// Virtual size, bytes allocated, and host-side size (bytes) from `virDomainGetBlockInfo`; nil when unknown.
    public var capacityBytes: Double?
    public var allocationBytes: Double?
    public var physicalBytes: Double?
    /// Resolved storage mode: a shared disk is not copied by a move.
    public var storage: StorageMode

    public init(target: String, kind: Kind, source: String, format: String? = nil, backing: Bool? = nil,
                capacityBytes: Double? = nil, allocationBytes: Double? = nil, physicalBytes: Double? = nil,
                storage: StorageMode) {
        self.target = target; self.kind = kind; self.source = source; self.format = format; self.backing = backing
        self.capacityBytes = capacityBytes; self.allocationBytes = allocationBytes; self.physicalBytes = physicalBytes
        self.storage = storage
    }

    /// Bytes a copy-storage move transfers for this disk: the allocated bytes (QEMU's mirror skips unallocated
    /// clusters), else the virtual size; 0 for a shared disk.
    public var copyBytes: Double {
        guard storage == .local else { return 0 }
        return allocationBytes ?? capacityBytes ?? 0
    }
}

/// How a disk's storage mode is decided when nobody says: the VM's `storage:` wins, then its host's; otherwise
/// network disks and volumes of a pool the host lists in `sharedPools` are shared, test-driver hosts (no real
/// disks) are shared, and every other file, block or volume disk is local.
public enum StorageDefaults {
    public static func mode(kind: VMDisk.Kind, source: String, vm: StorageMode?, host: StorageMode?,
                            sharedPools: [String], testDriver: Bool) -> StorageMode {
        if let vm { return vm }
        if let host { return host }
        if testDriver { return .shared }
        switch kind {
        case .network: return .shared
        case .volume:
            let pool = source.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
            return sharedPools.contains(pool) ? .shared : .local
        case .file, .block, .other: return .local
        }
    }

    /// The bytes a move of a VM with `disks` must copy; nil when nothing is local (shared or no disks), so the
    /// planner keeps the paper's RAM-only cost.
    public static func copyBytes(_ disks: [VMDisk]) -> Double? {
        let local = disks.filter { $0.storage == .local }
        guard !local.isEmpty else { return nil }
        return local.reduce(0) { $0 + $1.copyBytes }
    }
}
