/// The PruneGym release, recorded in every run's `config.json`.
public enum PruneGymVersion {
    public static let current = "0.4.0"
}
