//! `basin`: the command-line program of the Basin data hub.

mod cli;
mod commands;
mod output;

use clap::Parser;

/// glibc's allocator spends a quarter of a busy server's CPU in its locks and free lists
/// (measured on `bench/concurrency`, docs/benchmarks.md); mimalloc keeps per-thread heaps, as
/// DataFusion's own CLI does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
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
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
