//! The layering of the workspace (DESIGN.md, "Crates"): dependencies point downward only. Reads
//! `cargo metadata` and fails on any workspace dependency the table below does not allow.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

/// Each workspace crate, the workspace crates it may depend on (normal and build dependencies),
/// and why. Adding a crate means adding one line here.
const RULES: &[(&str, &[&str], &str)] = &[
    ("basin-core", &[], "the bottom: names, ids, error kinds"),
    (
        "basin-catalog",
        &["basin-core"],
        "metadata and decisions know no storage",
    ),
    (
        "basin-keys",
        &["basin-core"],
        "the keystore knows no policy",
    ),
    (
        "basin-lake",
        &["basin-core"],
        "Delta operations know no users or policies",
    ),
    (
        "basin-tables",
        &["basin-core", "basin-catalog", "basin-keys", "basin-lake"],
        "the one write path sits on catalog, keys and lake",
    ),
    (
        "basin-sql",
        &[
            "basin-core",
            "basin-catalog",
            "basin-keys",
            "basin-lake",
            "basin-tables",
        ],
        "SQL reads through the governed scan and writes through basin-tables",
    ),
    (
        "basin-ingest",
        &["basin-core", "basin-catalog", "basin-lake", "basin-tables"],
        "loads write through basin-tables",
    ),
    (
        "basin-pipelines",
        &["basin-core", "basin-catalog", "basin-tables", "basin-sql"],
        "models read through the governed engine and write through basin-tables",
    ),
    (
        "basin-service",
        &[
            "basin-core",
            "basin-catalog",
            "basin-keys",
            "basin-lake",
            "basin-tables",
            "basin-sql",
            "basin-ingest",
            "basin-pipelines",
        ],
        "the one API of the surfaces sits on every library below it",
    ),
    (
        "basin-server",
        &[
            "basin-core",
            "basin-catalog",
            "basin-keys",
            "basin-tables",
            "basin-sql",
            "basin-ingest",
            "basin-service",
        ],
        "a surface must not reach the Delta layer (no basin-lake); only the CLI may depend on basin-server",
    ),
    (
        "basin",
        &[
            "basin-core",
            "basin-catalog",
            "basin-keys",
            "basin-tables",
            "basin-sql",
            "basin-ingest",
            "basin-service",
            "basin-server",
        ],
        "a surface must not reach the Delta layer (no basin-lake); nothing depends on the binary",
    ),
    (
        "basin-testkit",
        &[
            "basin-core",
            "basin-catalog",
            "basin-keys",
            "basin-lake",
            "basin-tables",
            "basin-sql",
            "basin-ingest",
            "basin-service",
        ],
        "dev-only fixtures over the libraries; they launch surfaces as processes",
    ),
];

/// The crate that only `[dev-dependencies]` may name.
const DEV_ONLY: &str = "basin-testkit";

/// Where the rules live, for the messages.
const TABLE: &str = "RULES in crates/basin-testkit/tests/it/layering.rs";

/// Every layering violation in `metadata` (the output of `cargo metadata --no-deps`), one
/// message each.
fn violations(metadata: &Value) -> Vec<String> {
    let packages = metadata["packages"]
        .as_array()
        .expect("cargo metadata lists packages");
    let members: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    let mut found = Vec::new();
    for package in packages {
        let name = package["name"].as_str().expect("a package has a name");
        let Some((_, allowed, why)) = RULES.iter().find(|(crate_, ..)| *crate_ == name) else {
            found.push(format!(
                "workspace crate {name} has no layering rule: add a line for it to {TABLE} \
                 (the workspace crates it may depend on, and why)"
            ));
            continue;
        };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if !members.contains(dep_name) {
                continue;
            }
            let kind = dep["kind"].as_str().unwrap_or("normal");
            let ok = if dep_name == DEV_ONLY {
                kind == "dev"
            } else {
                allowed.contains(&dep_name)
            };
            if ok {
                continue;
            }
            let rule = if dep_name == DEV_ONLY {
                format!("{DEV_ONLY} is dev-only: name it under [dev-dependencies] only")
            } else {
                format!(
                    "{name} may depend only on {} — {why}",
                    if allowed.is_empty() {
                        "no workspace crate".to_string()
                    } else {
                        allowed.join(", ")
                    }
                )
            };
            found.push(format!(
                "{name} depends on {dep_name} ({kind} dependency), which the layering forbids: {rule}"
            ));
        }
    }
    found
}

#[test]
fn dependencies_point_downward_only() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
        ])
        .arg(&root)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON");
    let found = violations(&metadata);
    assert!(
        found.is_empty(),
        "the workspace breaks its layering (DESIGN.md, \"Crates\"):\n  {}",
        found.join("\n  ")
    );
}

/// A workspace of `packages`: (name, [(dependency, kind)]), as `cargo metadata` shows it.
fn workspace(packages: &[(&str, &[(&str, Option<&str>)])]) -> Value {
    let packages: Vec<Value> = packages
        .iter()
        .map(|(name, deps)| {
            let deps: Vec<Value> = deps
                .iter()
                .map(|(dep, kind)| serde_json::json!({"name": dep, "kind": kind, "path": "/x"}))
                .chain([serde_json::json!({"name": "serde", "kind": null})])
                .collect();
            serde_json::json!({"name": name, "dependencies": deps})
        })
        .collect();
    serde_json::json!({ "packages": packages })
}

#[test]
fn the_checker_names_crate_dependency_and_rule() {
    let ok = workspace(&[
        ("basin-core", &[]),
        (
            "basin-lake",
            &[("basin-core", None), ("basin-testkit", Some("dev"))],
        ),
        ("basin-testkit", &[("basin-lake", None)]),
    ]);
    assert_eq!(violations(&ok), Vec::<String>::new());

    let upward = workspace(&[
        ("basin-core", &[]),
        ("basin-lake", &[]),
        (
            "basin-catalog",
            &[("basin-core", None), ("basin-lake", Some("build"))],
        ),
    ]);
    assert_eq!(
        violations(&upward),
        [
            "basin-catalog depends on basin-lake (build dependency), which the layering forbids: \
          basin-catalog may depend only on basin-core — metadata and decisions know no storage"
        ]
    );

    let not_dev = workspace(&[
        ("basin-core", &[("basin-testkit", None)]),
        ("basin-testkit", &[]),
    ]);
    assert_eq!(
        violations(&not_dev),
        [
            "basin-core depends on basin-testkit (normal dependency), which the layering forbids: \
          basin-testkit is dev-only: name it under [dev-dependencies] only"
        ]
    );

    let unknown = workspace(&[("basin-portal", &[])]);
    let found = violations(&unknown);
    assert!(
        found.len() == 1 && found[0].contains("basin-portal has no layering rule"),
        "{found:?}"
    );
}
