//! Redraw a run's plots from its result files (after a change to the plotting code):
//! `loss.png` from `metrics.jsonl`, `probe.png` from `probe.json`, and from `fid.json` its
//! `fid.md` table (re-sorted) and FID curves, whichever the run has.
//!
//! ```sh
//! cargo run --release --example replot -- RUN
//! ```
use std::path::PathBuf;

fn main() -> ddmlab::Result<()> {
    let Some(run) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: replot RUN");
        std::process::exit(2);
    };
    if run.join("metrics.jsonl").exists() {
        ddmlab::runs::pretrain::plot_loss(&run)?;
        println!("{}", run.join("loss.png").display());
    }
    let probe = run.join("probe.json");
    if probe.exists() {
        let rows = ddmlab::eval::report::read_rows(&probe)?;
        ddmlab::eval::report::plot_probe(&run.join("probe.png"), &rows)?;
        println!("{}", run.join("probe.png").display());
    }
    let fid = run.join("fid.json");
    if fid.exists() {
        use ddmlab::eval::gen_eval::{merge_rows, read_rows, write_results};
        write_results(&run, &merge_rows(read_rows(&fid)?, Vec::new()))?;
        println!("{} (and fid.md, fid.json)", run.join("fid.png").display());
    }
    Ok(())
}
