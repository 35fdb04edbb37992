use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = ibsight::cli::Cli::parse();
    ibsight::cli::init_logging();
    match ibsight::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
