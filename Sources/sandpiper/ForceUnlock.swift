import ArgumentParser
import Foundation
import SandpiperEngine
import SandpiperGitOps

struct ForceUnlock: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "force-unlock",
        abstract: "Release a cluster lock left by a run that died.",
        discussion: """
        A run that was killed leaves Clusters/<name>/.sandpiper.lock behind; the next run refuses to start and \
        prints the holder and the lock ID. Check that the holder is really gone, then pass that ID here.

        With --git: the git ref lock of `reconcile --commit/--ci` and `apply --from-ref` \
        (refs/sandpiper/locks/<name>) in the local repository, or on --remote.
        """)

    @Argument(help: "The lock ID printed by the refused run.") var id: String
    @Argument(help: "Cluster directory (Clusters/<name>).") var cluster: String
    @Flag(help: "Release the git ref lock (refs/sandpiper/locks/<name>) instead of the lock file.") var git = false
    @Option(help: "With --git: release the lock on this remote (and the local copy).") var remote: String?

    func run() throws {
        do {
            if git || remote != nil {
                let location = try GitClusterLocation.locate(cluster)
                try GitRefLock.forceUnlock(location.repository, cluster: location.clusterName, id: id, remote: remote)
                print("Released the git lock \(id) of \(location.clusterName).")
                return
            }
            // The lock file is found from the path alone: a run may have died over a broken spec or node file,
            // and its lock must still be releasable.
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: cluster, isDirectory: &isDirectory) else {
                throw ValidationError("\(cluster): no such directory")
            }
            let url = URL(fileURLWithPath: cluster).standardizedFileURL
            let directory = isDirectory.boolValue ? url : url.deletingLastPathComponent()
            try ClusterLock.forceUnlock(directory: directory, id: id)
            print("Released the lock \(id) of \(directory.lastPathComponent).")
        } catch {
            Output.error("error: \(error)")
            throw ExitCode.invalid
        }
    }
}
