//! `basin sql`: one query, a file, statements on stdin, or an interactive prompt.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use basin_service::Session;

use crate::cli::Global;
use crate::output;

pub async fn run(
    g: &Global,
    session: &Session,
    query: Option<String>,
    file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let text = match (query, file) {
        (Some(q), _) => q,
        (None, Some(f)) => {
            std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?
        }
        (None, None) if std::io::stdin().is_terminal() => return repl(g, session).await,
        (None, None) => {
            std::io::read_to_string(std::io::stdin()).context("cannot read SQL from stdin")?
        }
    };
    let out = session.query(&text).await?;
    output::print(g.output, &out.schema, &out.batches)
}

/// What a line typed at the start of a statement in the prompt asks for.
#[derive(Debug, PartialEq)]
enum Command {
    /// Run this SQL.
    Sql(String),
    Help,
    Quit,
    /// A backslash command the prompt does not know.
    Unknown,
}

const HELP: &str = "\
Type SQL and end each statement with ';'. Shortcuts (at the start of a line, no ';'):
  \\l              list hubs               (SHOW HUBS)
  \\dn [hub]       list datasets           (SHOW DATASETS [IN hub])
  \\d              list tables             (SHOW TABLES)
  \\d table        describe a table        (DESCRIBE table)
  \\? or help      this help
  \\q, quit, exit  leave (or Ctrl-D)
Tables are named dataset.table (hub main) or hub.dataset.table; the catalog is in system.*
and information_schema.*. More: docs/sql.md.";

/// The prompt's own commands (`help`, `quit`, `\d`-style shortcuts), each a SQL statement where
/// it lists or describes something; `None` for a line of SQL.
fn command(line: &str) -> Option<Command> {
    let line = line.trim().trim_end_matches(';').trim();
    let (word, arg) = match line.split_once(char::is_whitespace) {
        Some((w, a)) => (w, Some(a.trim())),
        None => (line, None),
    };
    Some(match (word.to_ascii_lowercase().as_str(), arg) {
        ("help" | "\\?" | "\\h", None) => Command::Help,
        ("quit" | "exit" | "\\q", None) => Command::Quit,
        ("\\l", None) => Command::Sql("SHOW HUBS".into()),
        ("\\dn", None) => Command::Sql("SHOW DATASETS".into()),
        ("\\dn", Some(hub)) => Command::Sql(format!("SHOW DATASETS IN {hub}")),
        ("\\d" | "\\dt", None) => Command::Sql("SHOW TABLES".into()),
        ("\\d" | "\\dt", Some(table)) => Command::Sql(format!("DESCRIBE {table}")),
        (w, _) if w.starts_with('\\') => Command::Unknown,
        _ => return None,
    })
}

async fn repl(g: &Global, session: &Session) -> anyhow::Result<()> {
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = g.data_dir.join(".sql_history");
    let _ = editor.load_history(&history);
    println!("Basin SQL. End statements with ';'. Type help for shortcuts; \\q or Ctrl-D quits.");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "basin> "
        } else {
            "   ..> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                let sql = match buffer.is_empty().then(|| command(&line)).flatten() {
                    Some(Command::Quit) => break,
                    Some(Command::Help) => {
                        println!("{HELP}");
                        continue;
                    }
                    Some(Command::Unknown) => {
                        eprintln!("error: unknown command '{}'; type help", line.trim());
                        continue;
                    }
                    Some(Command::Sql(sql)) => sql,
                    None if line.trim().is_empty() => continue,
                    None => {
                        buffer.push_str(&line);
                        buffer.push('\n');
                        if !line.trim_end().ends_with(';') {
                            continue;
                        }
                        std::mem::take(&mut buffer)
                    }
                };
                let _ = editor.add_history_entry(sql.trim());
                match session.query(&sql).await {
                    Ok(out) => output::print(g.output, &out.schema, &out.batches)?,
                    Err(e) => eprintln!("error: {e}"),
                }
            }
            Err(rustyline::error::ReadlineError::Interrupted) => buffer.clear(),
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let _ = editor.save_history(&history);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_are_sql_statements() {
        let sql = |s: &str| Some(Command::Sql(s.to_string()));
        for (line, expected) in [
            ("\\l", sql("SHOW HUBS")),
            ("\\dn", sql("SHOW DATASETS")),
            ("\\dn de", sql("SHOW DATASETS IN de")),
            ("\\d", sql("SHOW TABLES")),
            ("  \\d sales.orders ", sql("DESCRIBE sales.orders")),
            ("\\dt main.sales.orders;", sql("DESCRIBE main.sales.orders")),
            ("help", Some(Command::Help)),
            ("\\?", Some(Command::Help)),
            ("quit", Some(Command::Quit)),
            ("EXIT;", Some(Command::Quit)),
            ("\\q", Some(Command::Quit)),
            ("\\x", Some(Command::Unknown)),
            ("SELECT 1;", None),
            ("help_me", None),
            ("quit_orders.id = 1", None),
        ] {
            assert_eq!(command(line), expected, "{line}");
        }
    }
}
