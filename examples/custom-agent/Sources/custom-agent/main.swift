import Gym
import PruneGymCommands

// The prunegym command line with one more agent: `custom-agent train --agent reinforce …`.
var agents = AgentRegistry.standard
try agents.register(ReinforceAgentFactory())
PruneGymCommandLine.main(agents: agents)
