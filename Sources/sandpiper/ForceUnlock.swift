import ArgumentParser
import SandpiperEngine

struct ForceUnlock: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "force-unlock",
        abstract: "Release a cluster lock left by a run that died.",
        discussion: """
        A run that was killed leaves Clusters/<name>/.sandpiper.lock behind; the next run refuses to start and \
        prints the holder and the lock ID. Check that the holder is really gone, then pass that ID here.
        """)

    @Argument(help: "The lock ID printed by the refused run.") var id: String
    @Argument(help: "Cluster directory (Clusters/<name>).") var cluster: String

    func run() throws {
        do {
            let loaded = try Engine.load(cluster)
            try ClusterLock.forceUnlock(directory: loaded.directory, id: id)
            print("Released the lock \(id) of \(loaded.spec.name).")
        } catch {
            Output.error("error: \(error)")
            throw ExitCode.invalid
        }
    }
}
