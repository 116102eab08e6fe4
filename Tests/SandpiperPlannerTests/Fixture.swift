import SandpiperModel
@testable import SandpiperPlanner
