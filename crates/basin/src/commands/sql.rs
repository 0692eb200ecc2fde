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

async fn repl(g: &Global, session: &Session) -> anyhow::Result<()> {
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = g.data_dir.join(".sql_history");
    let _ = editor.load_history(&history);
    println!("Basin SQL. End statements with ';'. Ctrl-D quits.");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "basin> "
        } else {
            "   ..> "
        };
        match editor.readline(prompt) {
            Ok(line) => {
                buffer.push_str(&line);
                buffer.push('\n');
                if !line.trim_end().ends_with(';') {
                    continue;
                }
                let _ = editor.add_history_entry(buffer.trim());
                match session.query(&buffer).await {
                    Ok(out) => output::print(g.output, &out.schema, &out.batches)?,
                    Err(e) => eprintln!("error: {e}"),
                }
                buffer.clear();
            }
            Err(rustyline::error::ReadlineError::Interrupted) => buffer.clear(),
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    let _ = editor.save_history(&history);
    Ok(())
}
