//! Line plots and bar charts to PNG with `plotters` (loss curves, probe accuracy over training,
//! the ladder's tables).
//!
//! Text is drawn with the Ubuntu Light font embedded by `epaint_default_fonts`, so plotting
//! needs no system font library.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};

/// One named series of `(x, y)` points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font always parses; if it ever did not, plots would lack text only.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT);
    });
}

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Draw `series` into a 900x540 PNG at `path`; `log_y` uses a logarithmic y axis when the
/// values span at least a decade (over less, a log axis has no labelled tick and reads worse
/// than a linear one).
pub fn line_plot(path: &Path, title: &str, x_label: &str, y_label: &str, series: &[Series], log_y: bool) -> Result<()> {
    register_font();
    let pts = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0));
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return Err(Error::Other(format!("nothing to plot in {}", path.display())));
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    let log_y = log_y && y1 >= 10.0 * y0;
    let pad = if log_y { 0.0 } else { (y1 - y0).max(1e-6) * 0.05 };
    let (y0, y1) = if log_y { (y0 * 0.9, y1 * 1.1) } else { (y0 - pad, y1 + pad) };
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut builder = ChartBuilder::on(&root);
        builder.caption(title, ("sans-serif", 24)).margin(15).x_label_area_size(45).y_label_area_size(70);
        let style = |s: &Series, i: usize| (s.name.clone(), COLORS[i % COLORS.len()]);
        macro_rules! body {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_label)
                    .y_desc(y_label)
                    .x_label_formatter(&|v| tick_label(*v))
                    .y_label_formatter(&|v| tick_label(*v))
                    .label_style(("sans-serif", 15))
                    .draw()?;
                for (i, s) in series.iter().enumerate() {
                    let (name, color) = style(s, i);
                    let pts: Vec<(f64, f64)> = s
                        .points
                        .iter()
                        .copied()
                        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_y || *y > 0.0))
                        .collect();
                    chart
                        .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                        .label(name)
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                    if pts.len() <= 40 {
                        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
                    }
                }
                if series.len() > 1 {
                    chart
                        .configure_series_labels()
                        .background_style(WHITE.mix(0.8))
                        .border_style(BLACK)
                        .label_font(("sans-serif", 15))
                        .draw()?;
                }
            }};
        }
        if log_y {
            body!(builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?);
        } else {
            body!(builder.build_cartesian_2d(x0..x1, y0..y1)?);
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| Error::Other(format!("{}: cannot draw plot ({e})", path.display())))
}

/// One horizontal bar: a label, its value (a mean) and the individual values behind it (seeds,
/// drawn as dots).
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub points: Vec<f64>,
}

/// Horizontal bars, first on top, into a 1000-pixel-wide PNG at `path` (the x axis spans the
/// values with a margin, not from zero: differences of a point are what the ladder reads).
pub fn bar_plot(path: &Path, title: &str, x_label: &str, bars: &[Bar]) -> Result<()> {
    register_font();
    let values: Vec<f64> =
        bars.iter().flat_map(|b| b.points.iter().copied().chain([b.value])).filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return Err(Error::Other(format!("nothing to plot in {}", path.display())));
    }
    let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.15).max(0.5);
    let (x0, x1) = (lo - pad, hi + pad);
    let n = bars.len();
    let height = (120 + 34 * n).max(300) as u32;
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (1000, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(330)
            .build_cartesian_2d(x0..x1, -0.5..(n as f64 - 0.5))?;
        let name = |v: &f64| -> String {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                bars[n - 1 - i as usize].label.clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_labels(n.max(1))
            .y_label_formatter(&name)
            .x_label_formatter(&|v| tick_label(*v))
            .label_style(("sans-serif", 14))
            .disable_y_mesh()
            .draw()?;
        for (k, bar) in bars.iter().enumerate() {
            let y = (n - 1 - k) as f64;
            let color = COLORS[0];
            if bar.value.is_finite() {
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0, y - 0.35), (bar.value, y + 0.35)],
                    color.mix(0.55).filled(),
                )))?;
            }
            chart.draw_series(
                bar.points.iter().filter(|v| v.is_finite()).map(|&v| Circle::new((v, y), 4, BLACK.filled())),
            )?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| Error::Other(format!("{}: cannot draw plot ({e})", path.display())))
}

/// An axis value with at most three significant digits and no trailing zeros (`2000`, `0.07`,
/// `85.5`): plotters' default prints float noise such as `0.7000000000001`.
pub fn tick_label(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_keep_three_significant_digits_without_float_noise() {
        let cases = [
            (2000.0, "2000"),
            (200.0, "200"),
            (0.7000000000001, "0.7"),
            (0.07, "0.07"),
            (85.54, "85.5"),
            (1.0, "1"),
            (-0.25, "-0.25"),
            (0.0, "0"),
        ];
        for (v, want) in cases {
            assert_eq!(tick_label(v), want, "{v}");
        }
    }

    #[test]
    fn line_plot_draws_its_title_labels_and_the_curve_where_it_lies() {
        let dir = tempfile::tempdir().unwrap();
        let draw = |title: &str| {
            let path = dir.path().join(format!("p{}.png", title.len()));
            let s = Series { name: "loss".into(), points: (1..50).map(|i| (i as f64, 1.0 / i as f64)).collect() };
            line_plot(&path, title, "step", "loss", &[s], false).unwrap();
            image::open(&path).unwrap().to_rgb8()
        };
        let img = draw("Loss");
        assert_eq!(img.dimensions(), (900, 540));
        let dark = |x0: u32, x1: u32, y0: u32, y1: u32, img: &image::RgbImage| {
            (x0..x1)
                .flat_map(|x| (y0..y1).map(move |y| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&c| c < 110))
                .count()
        };
        // The caption band holds the title's glyphs, and holds nothing without a title.
        assert!(dark(0, 900, 0, 40, &img) > 30, "no title drawn");
        assert_eq!(dark(0, 900, 0, 40, &draw("")), 0, "a caption without a title");
        // Tick labels left of the plot area and under it.
        assert!(dark(0, 80, 60, 480, &img) > 50, "no y tick labels");
        assert!(dark(80, 900, 500, 540, &img) > 50, "no x tick labels");
        // The curve (the first series colour) falls from the top left to the bottom right.
        let blue: Vec<(u32, u32)> =
            img.enumerate_pixels().filter(|(_, _, p)| p.0 == [31, 119, 180]).map(|(x, y, _)| (x, y)).collect();
        assert!(blue.len() > 300, "{} pixels of the curve", blue.len());
        let (xs, xe) = (blue.iter().map(|p| p.0).min().unwrap(), blue.iter().map(|p| p.0).max().unwrap());
        let mean_row = |lo: u32, hi: u32| {
            let rows: Vec<f64> = blue.iter().filter(|p| p.0 >= lo && p.0 < hi).map(|p| p.1 as f64).collect();
            rows.iter().sum::<f64>() / rows.len() as f64
        };
        let span = xe - xs;
        assert!(span > 600, "the curve spans {span} columns");
        assert!(mean_row(xs, xs + 5) < 120.0, "1/x starts at the top: row {}", mean_row(xs, xs + 5));
        assert!(
            mean_row(xe - span / 4, xe + 1) > 380.0,
            "and ends at the bottom: row {}",
            mean_row(xe - span / 4, xe + 1)
        );
    }
}
