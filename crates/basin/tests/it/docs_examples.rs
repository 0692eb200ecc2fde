//! The docs' examples run: every fenced block of `docs/*.md` whose info string is `sql example`
//! runs with `basin sql -f` against a fresh `basin demo` data dir, one per document, in the
//! order the document shows them (a later example may use what an earlier one created).

use std::path::Path;

use crate::{Basin, repo_root};

/// A `sql example` block: where it starts and its text.
struct Example {
    line: usize,
    sql: String,
}

/// The `sql example` blocks of a Markdown text.
fn examples(markdown: &str) -> Vec<Example> {
    enum State {
        Text,
        Example(Example),
        OtherBlock,
    }
    let mut found = Vec::new();
    let mut state = State::Text;
    for (i, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        state = match (state, fence) {
            (State::Text, Some(info)) if info.split_whitespace().eq(["sql", "example"]) => {
                State::Example(Example {
                    line: i + 1,
                    sql: String::new(),
                })
            }
            (State::Text, Some(_)) => State::OtherBlock,
            (State::Example(example), Some(_)) => {
                found.push(example);
                State::Text
            }
            (State::OtherBlock, Some(_)) => State::Text,
            (State::Example(mut example), None) => {
                example.sql.push_str(line);
                example.sql.push('\n');
                State::Example(example)
            }
            (state, None) => state,
        };
    }
    found
}

#[test]
fn finds_sql_example_blocks_and_skips_other_blocks() {
    let md =
        "text\n```sh\nbasin demo\n```\n```sql example\nSELECT 1;\n```\n```sql\nSELECT 2;\n```\n";
    let found = examples(md);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].line, 5);
    assert_eq!(found[0].sql, "SELECT 1;\n");
}

#[test]
fn every_sql_example_in_the_docs_runs_against_the_demo_data() {
    let docs = repo_root().join("docs");
    let mut files: Vec<_> = std::fs::read_dir(&docs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    let mut ran = 0;
    let mut failures = Vec::new();
    for file in files {
        let blocks = examples(&std::fs::read_to_string(&file).unwrap());
        if blocks.is_empty() {
            continue;
        }
        let basin = Basin::new();
        basin.ok(&["demo"]);
        for block in blocks {
            ran += 1;
            if let Err(error) = run(&basin, &block) {
                failures.push(format!("{}:{}: {error}", name(&file), block.line));
            }
        }
    }
    assert!(ran >= 6, "only {ran} `sql example` blocks found in docs/");
    assert!(
        failures.is_empty(),
        "{} of {ran} doc examples failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn run(basin: &Basin, example: &Example) -> Result<(), String> {
    let script = basin.file("example.sql", &example.sql);
    let out = basin.run(&["sql", "-f", &script]);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn name(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}
