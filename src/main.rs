//! The `bosun` binary: a thin frontend over the library. Errors become messages and exit codes
//! here (anyhow lives only at this edge).

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    bosun::init_crypto();
    let args = cli::Cli::parse();
    let telemetry = cli::init_tracing(args.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bosun: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match rt.block_on(cli::dispatch(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bosun: {e:#}");
            ExitCode::from(2)
        }
    };
    drop(rt);
    if let Some(t) = telemetry {
        t.shutdown();
    }
    code
}
