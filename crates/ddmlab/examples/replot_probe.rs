//! Redraw a run's `probe.png` from its `probe.json`: `cargo run --release --example replot_probe -- RUN`.
fn main() {
    let run = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: replot_probe RUN"));
    let text = std::fs::read_to_string(run.join("probe.json")).expect("probe.json");
    let rows: Vec<ddmlab::eval::report::ProbeRow> = serde_json::from_str(&text).expect("probe rows");
    ddmlab::eval::report::plot_probe(&run.join("probe.png"), &rows).expect("plot");
}
