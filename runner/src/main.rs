//! `ebpf-runner`: the pull/run side of cargo-ebpf on its own, for servers without Rust or
//! build tools. A thin binary over [`ebpf_runner::cli`], as `cargo-ebpf` is.

use clap::Parser;
use ebpf_runner::cli::{self, Host, RunnerCli};

fn main() {
    let args = RunnerCli::parse();
    cli::exit(cli::execute(args.command, &Host::STANDALONE))
}
