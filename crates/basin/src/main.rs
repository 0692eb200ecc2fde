//! `basin`: the command-line program of the Basin data hub.

mod cli;
mod commands;
mod output;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    if let Err(e) = basin_sql::Engine::settings_from_env() {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    // Two TLS providers are linked in (delta-rs and sqlx); pick one for the whole process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // Plans of deep queries and the state of large writes live on the stack; 2 MiB (tokio's
    // default) is tight in debug builds.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(8 << 20)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // The OpenLineage events of the models this command ran, still being posted.
    basin_service::openlineage::flush(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
