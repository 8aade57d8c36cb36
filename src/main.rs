//! `loa` — the one binary. Everything lives in the library; this only hands over to the CLI.

fn main() -> std::process::ExitCode {
    loa::cli::main()
}
