import PruneGymCommands

// `prunegym`: the command line, with the standard agents. A package that adds its own agent
// calls `PruneGymCommandLine.main(agents:)` with a registry that includes it (examples/custom-agent).
PruneGymCommandLine.main()
