/// The PruneGym release, recorded in every run's `config.json`.
public enum PruneGymVersion {
    /// The version string, `major.minor.patch`.
    public static let current = "0.7.20"
}
