//! Means with their 95% intervals as an SVG forest plot, drawn on the server so the chart is
//! there without JavaScript. One row per point: its label, the interval as a bar, the mean as
//! a dot, all on one axis that spans `[0, 1]` and every value shown.

use maud::{Markup, html};

/// One row of the plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// What the row is (a metric's name; a model and version).
    pub label: String,
    /// The released mean, if any.
    pub mean: Option<f64>,
    /// The released 95% interval, if any.
    pub ci95: Option<[f64; 2]>,
    /// Where the row's label links to.
    pub href: Option<String>,
}

const WIDTH: f64 = 640.0;
const LABEL_WIDTH: f64 = 200.0;
const RIGHT: f64 = 24.0;
const ROW: f64 = 28.0;
const TOP: f64 = 8.0;
const AXIS: f64 = 28.0;

/// The axis: `[0, 1]` widened to every finite value among the points.
fn span(points: &[Point]) -> (f64, f64) {
    points
        .iter()
        .flat_map(|p| p.mean.into_iter().chain(p.ci95.into_iter().flatten()))
        .filter(|v| v.is_finite())
        .fold((0.0_f64, 1.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// The plot, titled `title` for assistive technology; nothing when there are no points.
pub fn forest(title: &str, points: &[Point]) -> Markup {
    if points.is_empty() {
        return html! {};
    }
    let (lo, hi) = span(points);
    let plot = WIDTH - LABEL_WIDTH - RIGHT;
    let x = |v: f64| LABEL_WIDTH + (v.clamp(lo, hi) - lo) / (hi - lo) * plot;
    let height = TOP + ROW * points.len() as f64 + AXIS;
    let axis_y = TOP + ROW * points.len() as f64;
    let ticks: Vec<f64> = (0..=4)
        .map(|i| lo + (hi - lo) * f64::from(i) / 4.0)
        .collect();
    // A chart with links is a group of them (an image may not hold interactive parts).
    let role = if points.iter().any(|p| p.href.is_some()) {
        "group"
    } else {
        "img"
    };
    html! {
        svg.chart role=(role) viewBox={ "0 0 " (WIDTH) " " (height) } width=(WIDTH) height=(height)
            aria-label=(title) xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for tick in &ticks {
                line x1=(x(*tick)) x2=(x(*tick)) y1=(TOP) y2=(axis_y) stroke="#d0d4da" stroke-width="1" {}
                text x=(x(*tick)) y=(axis_y + 18.0) text-anchor="middle" font-size="12" fill="#3b4450" {
                    (format!("{:.2}", tick))
                }
            }
            @for (i, point) in points.iter().enumerate() {
                @let y = TOP + ROW * i as f64 + ROW / 2.0;
                @let label = html! {
                    text x=(LABEL_WIDTH - 8.0) y=(y + 4.0) text-anchor="end" font-size="13" fill="#1d232b" {
                        (truncate(&point.label, 28))
                    }
                };
                @if let Some(href) = &point.href {
                    a href=(href) { (label) }
                } @else {
                    (label)
                }
                @if let Some([low, high]) = point.ci95.filter(|c| c.iter().all(|v| v.is_finite())) {
                    line x1=(x(low)) x2=(x(high)) y1=(y) y2=(y) stroke="#1f5fa8" stroke-width="3" {}
                    line x1=(x(low)) x2=(x(low)) y1=(y - 6.0) y2=(y + 6.0) stroke="#1f5fa8" stroke-width="2" {}
                    line x1=(x(high)) x2=(x(high)) y1=(y - 6.0) y2=(y + 6.0) stroke="#1f5fa8" stroke-width="2" {}
                }
                @if let Some(mean) = point.mean.filter(|m| m.is_finite()) {
                    circle cx=(x(mean)) cy=(y) r="5" fill="#0b2e59" {
                        title { (point.label) ": " (mean) }
                    }
                }
            }
            line x1=(LABEL_WIDTH) x2=(WIDTH - RIGHT) y1=(axis_y) y2=(axis_y) stroke="#3b4450" stroke-width="1" {}
        }
    }
}

/// At most `max` characters, with an ellipsis when cut.
fn truncate(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_owned()
    } else {
        let mut cut: String = label.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::{Point, forest, span, truncate};

    fn point(mean: f64, ci95: [f64; 2]) -> Point {
        Point {
            label: "acc".into(),
            mean: Some(mean),
            ci95: Some(ci95),
            href: None,
        }
    }

    #[test]
    fn the_axis_spans_zero_to_one_and_every_value() {
        assert_eq!(span(&[point(0.5, [0.4, 0.6])]), (0.0, 1.0));
        assert_eq!(span(&[point(2.0, [-1.0, 5.0])]), (-1.0, 5.0));
        assert_eq!(span(&[point(f64::NAN, [f64::INFINITY, 0.5])]), (0.0, 1.0));
    }

    #[test]
    fn a_row_per_point_and_labels_escaped() {
        let mut p = point(0.5, [0.4, 0.6]);
        p.label = "<script>".into();
        let svg = forest("accuracy", &[p.clone(), p]).into_string();
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert_eq!(forest("none", &[]).into_string(), "");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }
}
