use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = newsletter::cli::Cli::parse();
    match newsletter::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("newsletter: {}", newsletter::cli::error_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
