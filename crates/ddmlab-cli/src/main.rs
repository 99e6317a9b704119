//! The `ddmlab` command line: a thin layer over the `ddmlab` library. Flags are parsed and
//! validated here (see `args.rs`); nothing below this crate parses arguments or prints.

mod args;
mod bench;
mod data;
mod deconstruct;
mod denoise;
mod fid;
mod finetune;
mod flags;
mod gen_eval;
mod interop;
mod pca;
mod pretrain;
mod probe;
mod progress;
mod sample;
mod setup;
mod tokenizer;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    setup::allocator();
    setup::flush_denormals();
    setup::default_device();
    let cli = Cli::parse();
    let result = setup::threads(cli.threads).and_then(|()| match cli.command {
        Command::Data(a) => data::run(a),
        Command::Presets => {
            for p in ddmlab::recipes::preset_names() {
                let preset = ddmlab::recipes::preset(p).expect("listed");
                println!("{:<14} {}", p, preset.about);
            }
            println!("\nconv tokenizers (`ddmlab tokenizer train --preset ...`):");
            for p in ddmlab::recipes::tokenizer_preset_names() {
                let preset = ddmlab::recipes::tokenizer_preset(p).expect("listed");
                println!("{:<14} {}", p, preset.about);
            }
            Ok(())
        }
        Command::Pretrain(a) => pretrain::run(a),
        Command::Finetune(a) => finetune::run(a),
        Command::Probe(a) => probe::run(a),
        Command::Denoise(a) => denoise::run(a),
        Command::Pca(a) => pca::run(a),
        Command::Sample(a) => sample::run(a),
        Command::Fid(a) => fid::run(a),
        Command::GenEval(a) => gen_eval::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Deconstruct(a) => deconstruct::run(a),
        Command::Tokenizer(c) => tokenizer::run(c),
        Command::Export(a) => interop::export(a),
        Command::Import(a) => interop::import(a),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", flags::with_flags(&one_line(&e)));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause that the message already quotes
/// (the library's I/O errors print their `io::Error` themselves).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line
}
