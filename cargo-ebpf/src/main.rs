//! `cargo-ebpf`: a thin binary over the library; errors become miette reports and exit codes.

fn main() {
    let cli = cargo_ebpf::cli::parse_args();
    ebpf_runner::cli::exit(cargo_ebpf::cli::execute(cli))
}
