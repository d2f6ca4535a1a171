/// SHA-256 of each turnkeeper.yaml the .deb has shipped as its conffile (docs/turnkeeper.example.yaml): init
/// replaces that file while it is unedited, and nothing else. A test fails when the example changes without
/// its digest added here; old digests stay, for hosts that installed an older package.
public enum ShippedExample {
    public static let sha256: Set<String> = [
        "d42519353aa573d6ac993fcfe5b356e5302baf69610fb5c875772d401c78b0c8",
        "b31b493340dd16901a40b4db1d07de08ac22072d1e0ebd5b48740618df896d83",
        "52fba86a472a8d125310a6deeed6fe463bae17aef49bafd4a9ccc1275d9c0f7d",
    ]
}
