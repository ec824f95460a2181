//! `cargo-ebpf`: a thin binary over the library; errors become miette reports and exit codes.

fn main() {
    let cli = cargo_ebpf::cli::parse_args();
    match cargo_ebpf::cli::execute(cli) {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(err) => report(err),
    }
}

fn report(err: ebpf_runner::Error) -> ! {
    let code = err.exit_code();
    let details = err.details.clone();
    eprintln!("{:?}", miette::Report::new(err));
    if let Some(details) = details {
        eprintln!("{details}");
    }
    std::process::exit(code);
}
