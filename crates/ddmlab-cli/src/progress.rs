//! The terminal progress bar: an `Observer` over indicatif.

use std::path::Path;

use ddmlab::train::{Observer, StepReport};
use indicatif::{ProgressBar, ProgressStyle};

/// `bar` in ddmlab's style: `[====>   ] pos/len UNIT [elapsed<eta] message`.
pub fn styled(bar: ProgressBar, unit: &str) -> ProgressBar {
    let template = format!("{{bar:30.cyan/blue}} {{pos}}/{{len}}{unit} [{{elapsed_precise}}<{{eta_precise}}] {{msg}}");
    bar.with_style(ProgressStyle::with_template(&template).expect("valid template").progress_chars("=> "))
}

pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    pub fn new() -> Self {
        Bar { bar: None }
    }
}

impl Observer for Bar {
    fn start(&mut self, step: usize, total: usize) {
        let bar = styled(ProgressBar::new(total as u64), "");
        bar.set_position(step as u64);
        bar.reset_eta();
        self.bar = Some(bar);
    }

    fn step(&mut self, r: &StepReport) {
        if let Some(bar) = &self.bar {
            let msg = format!("loss {:.4}  lr {:.2e}  {:.0} img/s", r.loss, r.lr, r.img_per_s);
            bar.set_position(r.step as u64);
            if bar.is_hidden() && (r.step.is_multiple_of(10) || r.step == r.total) {
                // Not a terminal (a log file): a plain line now and then instead of a bar.
                eprintln!("step {}/{}  {msg}", r.step, r.total);
            }
            bar.set_message(msg);
        }
    }

    fn checkpoint(&mut self, path: &Path) {
        self.message(&format!("checkpoint {}", path.display()));
    }

    fn message(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}
