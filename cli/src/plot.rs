//! `swann plot`: recall against queries per second, one curve per result
//! file, as ann-benchmarks draws it (recall on x, QPS on a log y axis).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// Result files in ann-compare's schema (swann's or the anchors').
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Output SVG file.
    #[arg(long)]
    pub out: PathBuf,
    /// Plot title (default: dataset and k of the first file).
    #[arg(long)]
    pub title: Option<String>,
    /// Lowest recall shown on the x axis.
    #[arg(long, default_value_t = 0.5)]
    pub min_recall: f64,
}

#[derive(Deserialize)]
struct ResultFile {
    library: String,
    #[serde(default)]
    index: Option<String>,
    #[serde(default)]
    k: Option<usize>,
    #[serde(default)]
    dataset: Option<serde_json::Value>,
    #[serde(default)]
    params: Option<serde_json::Value>,
    runs: Vec<RunPoint>,
}

#[derive(Deserialize)]
struct RunPoint {
    recall: f64,
    qps: f64,
    #[serde(default = "one")]
    threads: usize,
}

fn one() -> usize {
    1
}

/// One curve: its legend and (recall, qps) points.
struct Curve {
    name: String,
    points: Vec<(f64, f64)>,
}

/// Reads the files, keeping single-thread runs (all runs if a file has none).
fn curves(args: &PlotArgs) -> Result<(Vec<Curve>, String)> {
    let mut out = Vec::new();
    let mut title = None;
    for path in &args.results {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        // ann-compare's --out file holds several results under "results".
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let files: Vec<ResultFile> = match value.get("results") {
            Some(list) => serde_json::from_value(list.clone()),
            None => serde_json::from_value(value).map(|r| vec![r]),
        }
        .with_context(|| format!("{} is not a result file", path.display()))?;
        for f in files {
            if title.is_none() {
                let base = f
                    .dataset
                    .as_ref()
                    .and_then(|d| d.get("base"))
                    .and_then(|b| b.as_str())
                    .map(|b| {
                        std::path::Path::new(b)
                            .file_name()
                            .map_or(b.to_string(), |n| n.to_string_lossy().into_owned())
                    })
                    .unwrap_or_default();
                title = Some(format!("{base} recall@{} vs queries/s", f.k.unwrap_or(10)));
            }
            let single: Vec<&RunPoint> = f.runs.iter().filter(|r| r.threads == 1).collect();
            let runs: Vec<&RunPoint> = if single.is_empty() {
                f.runs.iter().collect()
            } else {
                single
            };
            let mut points: Vec<(f64, f64)> = runs
                .iter()
                .filter(|r| r.qps > 0.0 && r.recall.is_finite())
                .map(|r| (r.recall, r.qps))
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let params = f
                .params
                .as_ref()
                .and_then(|p| p.as_object())
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let name = format!("{} {} {}", f.library, f.index.unwrap_or_default(), params);
            out.push(Curve {
                name: name.trim().to_string(),
                points,
            });
        }
    }
    if out.iter().all(|c| c.points.is_empty()) {
        bail!("no runs with a positive QPS in the given files");
    }
    Ok((
        out,
        args.title
            .clone()
            .unwrap_or_else(|| title.unwrap_or_default()),
    ))
}

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Renders the curves as an SVG document.
fn render(curves: &[Curve], title: &str, min_recall: f64) -> String {
    let (w, h) = (1000.0, 600.0);
    let (left, right, top, bottom) = (90.0, 340.0, 50.0, 60.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let pts = curves.iter().flat_map(|c| c.points.iter());
    let x_min = pts
        .clone()
        .map(|p| p.0)
        .fold(1.0f64, f64::min)
        .max(min_recall)
        .min(0.99);
    let x_min = (x_min * 20.0).floor() / 20.0;
    let x_max = 1.0;
    let (q_lo, q_hi) = pts
        .filter(|p| p.0 >= x_min)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let (q_lo, q_hi) = if q_lo.is_finite() {
        (q_lo, q_hi)
    } else {
        (1.0, 10.0)
    };
    let y_lo = 10f64.powf(q_lo.log10().floor());
    let y_hi = 10f64.powf(q_hi.log10().ceil()).max(y_lo * 10.0);
    let sx = |r: f64| left + (r - x_min) / (x_max - x_min) * pw;
    let sy = |q: f64| top + ph - (q.log10() - y_lo.log10()) / (y_hi.log10() - y_lo.log10()) * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="16">{}</text>"#,
        left + pw / 2.0,
        esc(title)
    );
    // Grid and ticks.
    let mut r = x_min;
    while r <= x_max + 1e-9 {
        let x = sx(r);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" text-anchor="middle">{r:.2}</text>"##,
            top + ph,
            top + ph + 18.0
        );
        r += if x_max - x_min > 0.3 { 0.1 } else { 0.05 };
    }
    let mut q = y_lo;
    while q <= y_hi * 1.0001 {
        let y = sy(q);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + pw,
            left - 8.0,
            y + 4.0,
            fmt_qps(q)
        );
        for m in 2..10 {
            let qm = q * m as f64;
            if qm < y_hi {
                let ym = sy(qm);
                let _ = writeln!(
                    s,
                    r##"<line x1="{left}" y1="{ym:.1}" x2="{}" y2="{ym:.1}" stroke="#f2f2f2"/>"##,
                    left + pw
                );
            }
        }
        q *= 10.0;
    }
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">recall</text>"#,
        left + pw / 2.0,
        h - 15.0
    );
    let _ = writeln!(
        s,
        r#"<text x="22" y="{}" text-anchor="middle" transform="rotate(-90 22 {})">queries per second (1 thread, log scale)</text>"#,
        top + ph / 2.0,
        top + ph / 2.0
    );
    // Curves and legend.
    for (i, c) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let visible: Vec<(f64, f64)> = c
            .points
            .iter()
            .copied()
            .filter(|p| p.0 >= x_min && p.1 >= y_lo && p.1 <= y_hi)
            .collect();
        if !visible.is_empty() {
            let path: Vec<String> = visible
                .iter()
                .map(|&(r, q)| format!("{:.1},{:.1}", sx(r), sy(q)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                path.join(" ")
            );
            for &(r, q) in &visible {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#,
                    sx(r),
                    sy(q)
                );
            }
        }
        let ly = top + 10.0 + 22.0 * i as f64;
        let lx = left + pw + 20.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            esc(&c.name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn fmt_qps(q: f64) -> String {
    if q >= 1e6 {
        format!("{}M", q / 1e6)
    } else if q >= 1e3 {
        format!("{}k", q / 1e3)
    } else {
        format!("{q}")
    }
}

pub fn plot(args: PlotArgs) -> Result<()> {
    let (curves, title) = curves(&args)?;
    let svg = render(&curves, &title, args.min_recall);
    std::fs::write(&args.out, svg).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {} ({} curves)", args.out.display(), curves.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_curve_with_a_legend() {
        let curves = vec![
            Curve {
                name: "swann hnsw".into(),
                points: vec![(0.9, 20000.0), (0.99, 8000.0)],
            },
            Curve {
                name: "hnswlib <hnsw>".into(),
                points: vec![(0.9, 15000.0), (0.99, 6000.0)],
            },
        ];
        let svg = render(&curves, "t", 0.5);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("hnswlib &lt;hnsw&gt;"));
        assert!(svg.contains(">10k<"));
        assert!(svg.starts_with("<svg"));
    }
}
