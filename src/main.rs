//! The `adainf` binary: see `adainf::cli`.

fn main() -> std::process::ExitCode {
    adainf::cli::main()
}
