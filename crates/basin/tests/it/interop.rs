//! Tables written by Basin, read by an independent Delta reader (the Python `deltalake` package).

use std::process::Command;

use crate::*;

fn python_reader_available() {
    let ok = Command::new("python3")
        .args(["-c", "import deltalake, pyarrow"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the Python deltalake reader is missing: install it with `python3 -m pip install deltalake pyarrow` (./scripts/test does)"
    );
}

#[test]
fn python_deltalake_reads_what_basin_wrote() {
    python_reader_available();
    let b = Basin::new();
    b.ok(&["dataset", "create", "raw", "--layer", "source"]);
    b.file(
        "in/day=2024-01-01/a.csv",
        "id,name,amount,at\n1,Ada,1.5,2024-01-01 10:00:00\n2,Grace,,2024-01-01T11:00:00Z\n",
    );
    b.ok(&[
        "ingest",
        "raw.people",
        &b.dir.path().join("in").display().to_string(),
        "--partition-by",
        "day",
    ]);
    b.ok(&["sql", "INSERT INTO raw.people VALUES (3, 'Alan', 3.25, TIMESTAMP '2024-01-02 00:00:00', DATE '2024-01-02')"]);
    b.ok(&["sql", "UPDATE raw.people SET amount = 2.0 WHERE id = 2"]);
    let location =
        b.json("SELECT location FROM system.tables WHERE name = 'people'")[0]["location"]
            .as_str()
            .unwrap()
            .to_string();
    let script = r#"
import sys, json
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1]).to_pyarrow_table().sort_by("id")
rows = [[r["id"], r["name"], r["amount"], r["at"].isoformat(), str(r["day"])] for r in t.to_pylist()]
print(json.dumps({"version": DeltaTable(sys.argv[1]).version(), "rows": rows}))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &location])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["version"], 2);
    assert_eq!(
        got["rows"],
        serde_json::json!([
            [1, "Ada", 1.5, "2024-01-01T10:00:00+00:00", "2024-01-01"],
            [2, "Grace", 2.0, "2024-01-01T11:00:00+00:00", "2024-01-01"],
            [3, "Alan", 3.25, "2024-01-02T00:00:00+00:00", "2024-01-02"]
        ])
    );
}
