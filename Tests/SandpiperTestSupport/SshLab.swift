import Foundation

/// A real OpenSSH server in front of the QEMU lab's session daemons, so tests reach them through libvirt's ssh
/// transport (`qemu+ssh://…`) exactly as they would reach a remote host.
///
/// - `sshd` listens on 127.0.0.1 only, on a spare port, with its own configuration, host key, authorized keys and
///   pid file in a temporary directory; only public-key login of the lab user (`QemuLab.user`, who owns the
///   daemons' sockets) is allowed.
/// - The client key and a `known_hosts` file holding the generated host key live in the same directory. Host keys
///   are verified for real: the URIs name an ssh wrapper (libvirt's `command=` parameter) that runs
///   `ssh -F <lab config>` with `StrictHostKeyChecking yes` and this `known_hosts`, so no test touches anybody's
///   `~/.ssh`. libvirt's own `keyfile=` parameter selects the key.
/// - The remote side runs `nc -U <socket>` (`proxy=netcat`): the session daemons' sockets are not where
///   `virt-ssh-helper` would look for them.
/// `stop()` kills only the sshd this instance started.
public final class SshLab {
    public static let sshd = "/usr/sbin/sshd"
    public static let ssh = "/usr/bin/ssh"
    public static let keygen = "/usr/bin/ssh-keygen"
    public static let netcat = "/usr/bin/nc"

    public let root: URL
    public let port: Int
    public let user: String
    /// The client's private key (owned by `user`, mode 0600: the source daemon of a peer-to-peer migration runs
    /// ssh as `user` with it).
    public let keyFile: URL
    /// The ssh wrapper named by `command=`.
    public let sshCommand: URL
    /// A wrapper whose known_hosts holds a different key for this server (host key verification must fail).
    public let sshCommandWrongHostKey: URL
    private let process: Process
    private let logURL: URL

    /// Why sshd cannot run here, or nil.
    public static func unavailableReason() -> String? {
        if getuid() != 0 { return "the ssh lab needs root (sshd, a lab user)" }
        for bin in [sshd, ssh, keygen, netcat] where !FileManager.default.isExecutableFile(atPath: bin) {
            return "\(bin) is not installed (.ci/install-deps: openssh-server openssh-client netcat-openbsd)"
        }
        return nil
    }

    public init(user: String = QemuLab.user) throws {
        self.user = user
        root = URL(fileURLWithPath: "/tmp/sandpiper-ssh-lab/run-\(getpid())-\(UUID().uuidString.prefix(8))")
        let fm = FileManager.default
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        try QemuLab.run("/bin/chmod", ["755", root.path, root.deletingLastPathComponent().path])
        // sshd refuses to start without its privilege separation directory (normally made at boot).
        if !fm.fileExists(atPath: "/run/sshd") {
            try fm.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true,
                                   attributes: [.posixPermissions: 0o755])
        }
        let hostKey = root.appendingPathComponent("ssh_host_ed25519_key")
        let otherHostKey = root.appendingPathComponent("other_host_ed25519_key")
        keyFile = root.appendingPathComponent("id_ed25519")
        for key in [hostKey, otherHostKey, keyFile] {
            try QemuLab.run(Self.keygen, ["-q", "-t", "ed25519", "-N", "", "-C", "sandpiper-ssh-lab", "-f", key.path])
        }
        try QemuLab.run("/bin/chown", ["\(user):", keyFile.path])
        try QemuLab.run("/bin/chmod", ["600", keyFile.path])
        let authorized = root.appendingPathComponent("authorized_keys")
        try fm.copyItem(at: keyFile.appendingPathExtension("pub"), to: authorized)

        port = try Self.sparePort()
        let config = root.appendingPathComponent("sshd_config")
        let pidFile = root.appendingPathComponent("sshd.pid")
        try """
            Port \(port)
            ListenAddress 127.0.0.1
            HostKey \(hostKey.path)
            PidFile \(pidFile.path)
            AuthorizedKeysFile \(authorized.path)
            AllowUsers \(user)
            PubkeyAuthentication yes
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PermitRootLogin no
            UsePAM yes
            StrictModes no
            X11Forwarding no
            AllowTcpForwarding no
            AllowAgentForwarding no
            PrintMotd no
            LogLevel VERBOSE

            """.write(to: config, atomically: true, encoding: .utf8)

        let dir = root, spare = port  // the helpers below run before self is complete
        // Client side: known_hosts with the real host key, and one with another key for the negative case.
        func knownHosts(_ pub: URL, _ name: String) throws -> URL {
            let parts = try String(contentsOf: pub, encoding: .utf8).split(separator: " ")
            let url = dir.appendingPathComponent(name)
            try "[127.0.0.1]:\(spare) \(parts[0]) \(parts[1])\n".write(to: url, atomically: true, encoding: .utf8)
            return url
        }
        func wrapper(_ name: String, knownHosts: URL) throws -> URL {
            let clientConfig = dir.appendingPathComponent("\(name).config")
            try """
                Host *
                  UserKnownHostsFile \(knownHosts.path)
                  GlobalKnownHostsFile /dev/null
                  StrictHostKeyChecking yes
                  IdentitiesOnly yes
                  BatchMode yes
                  ConnectTimeout 20
                  LogLevel ERROR

                """.write(to: clientConfig, atomically: true, encoding: .utf8)
            let script = dir.appendingPathComponent(name)
            try "#!/bin/sh\nexec \(Self.ssh) -F \(clientConfig.path) \"$@\"\n"
                .write(to: script, atomically: true, encoding: .utf8)
            try QemuLab.run("/bin/chmod", ["755", script.path])
            try QemuLab.run("/bin/chmod", ["644", clientConfig.path, knownHosts.path])
            return script
        }
        sshCommand = try wrapper("ssh", knownHosts: try knownHosts(hostKey.appendingPathExtension("pub"), "known_hosts"))
        sshCommandWrongHostKey = try wrapper("ssh-wrong-host-key",
            knownHosts: try knownHosts(otherHostKey.appendingPathExtension("pub"), "known_hosts.wrong"))

        logURL = root.appendingPathComponent("sshd.log")
        _ = fm.createFile(atPath: logURL.path, contents: nil)
        let log = try FileHandle(forWritingTo: logURL)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.sshd)
        p.arguments = ["-D", "-e", "-f", config.path]  // foreground: this PID is sshd's
        p.standardOutput = log
        p.standardError = log
        p.standardInput = FileHandle.nullDevice
        try p.run()
        process = p
        try waitUntilListening(timeout: 30)
    }

    /// `qemu+ssh://user@127.0.0.1:PORT/session?socket=…&keyfile=…&proxy=netcat&command=…` for a lab daemon's
    /// socket (from `QemuLab.uri`, `qemu+unix:///session?socket=PATH`, or the path itself).
    public func uri(socket: String, wrongHostKey: Bool = false) -> String {
        let path = socket.range(of: "socket=").map { String(socket[$0.upperBound...]) } ?? socket
        let command = wrongHostKey ? sshCommandWrongHostKey : sshCommand
        return "qemu+ssh://\(user)@127.0.0.1:\(port)/session?socket=\(path)&keyfile=\(keyFile.path)"
            + "&proxy=netcat&command=\(command.path)"
    }

    /// How many public-key logins sshd accepted so far (its log): proof that traffic went through ssh.
    public var acceptedLogins: Int {
        let text = (try? String(contentsOf: logURL, encoding: .utf8)) ?? ""
        return text.components(separatedBy: "Accepted publickey for \(user)").count - 1
    }

    public var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Stops the sshd this lab started (by its PID) and removes the directory unless SANDPIPER_KEEP_SSH_LAB is set.
    public func stop() {
        LabProcess.stop(process)
        if ProcessInfo.processInfo.environment["SANDPIPER_KEEP_SSH_LAB"] == nil {
            try? FileManager.default.removeItem(at: root)
        }
    }

    deinit { stop() }

    /// Polls until sshd answers with its banner on the port (or fails if it died, e.g. the port was taken).
    private func waitUntilListening(timeout: TimeInterval) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard process.isRunning else {
                throw NSError(domain: "SshLab", code: 1, userInfo: [NSLocalizedDescriptionKey: "sshd exited: \(log)"])
            }
            if Self.banner(port: port)?.hasPrefix("SSH-2.0") == true { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw NSError(domain: "SshLab", code: 2, userInfo: [NSLocalizedDescriptionKey: "sshd not listening: \(log)"])
    }

    /// A port on 127.0.0.1 nobody listens on right now (bound with port 0, then released).
    static func sparePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw NSError(domain: "SshLab", code: 3) }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Int32 in
                guard bind(fd, p, len) == 0 else { return -1 }
                return getsockname(fd, p, &len)
            }
        }
        guard rc == 0 else { throw NSError(domain: "SshLab", code: 4) }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// The first line the server at 127.0.0.1:`port` sends, or nil.
    static func banner(port: Int) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { return nil }
        var buf = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &buf, buf.count)
        guard n > 0 else { return nil }
        return String(decoding: buf[..<n], as: UTF8.self)
    }
}
