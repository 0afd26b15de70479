//! The status page's timeline: one repository's last 24 hours of holders as inline SVG
//! (no scripts), a bar per job labelled with its host and PID, exclusive jobs in the lanes
//! above the shared ones, stale and unsafe marked as in the table's colours.

use std::fmt::Write;

use chrono::{DateTime, Duration, Timelike, Utc};

use crate::report::{Life, Worst};

/// The span drawn.
pub const SPAN: Duration = Duration::hours(24);
/// Lanes drawn at most; the rest are counted under the drawing.
const LANES: usize = 30;
const WIDTH: f64 = 960.0;
const LANE: f64 = 18.0;
/// Room for the hour marks above the lanes, and for each group's heading.
const TOP: f64 = 16.0;
const HEADING: f64 = 16.0;

pub const STYLE: &str =
    "svg.timeline{display:block;margin:.6em 0;font:11px ui-monospace,monospace;max-width:100%}
.timeline .hour{stroke:#ddd}.timeline .mark{fill:#888}.timeline .group{fill:#444;font-weight:600}
.timeline rect.exclusive{fill:#36c}.timeline rect.shared{fill:#9bd}
.timeline rect.stale{fill:#d90}.timeline rect.unsafe{fill:#c00}
.timeline text.label{fill:#222}";

/// `lives`' timeline up to `now` (empty when there is nothing in the span).
pub fn render(o: &mut String, lives: &[Life], now: DateTime<Utc>) {
    let start = now - SPAN;
    let shown: Vec<&Life> = lives.iter().filter(|l| l.span.last_seen >= start).collect();
    if shown.is_empty() {
        return;
    }
    let (exclusive, shared): (Vec<&Life>, Vec<&Life>) =
        shown.iter().partition(|l| l.span.key.exclusive);
    let groups = [("exclusive", exclusive), ("shared", shared)];
    let lanes: usize = groups.iter().map(|(_, g)| g.len().min(LANES)).sum();
    let headings = groups.iter().filter(|(_, g)| !g.is_empty()).count();
    let height = TOP + headings as f64 * HEADING + lanes as f64 * LANE + 4.0;
    let _ = write!(
        o,
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" \
         width=\"{WIDTH}\" height=\"{height}\" role=\"img\" aria-label=\"jobs holding locks over the last 24 hours\">"
    );
    hours(o, start, height);
    let x = |t: DateTime<Utc>| {
        ((t - start).num_seconds() as f64 / SPAN.num_seconds() as f64 * WIDTH).clamp(0.0, WIDTH)
    };
    let mut y = TOP;
    let mut left_out = 0;
    for (name, group) in groups {
        if group.is_empty() {
            continue;
        }
        let _ = write!(
            o,
            "<text class=\"group\" x=\"2\" y=\"{}\">{name}</text>",
            y + 12.0
        );
        y += HEADING;
        for l in group.iter().take(LANES) {
            bar(o, l, x(l.span.held_since), x(l.span.last_seen), y);
            y += LANE;
        }
        left_out += group.len().saturating_sub(LANES);
    }
    o.push_str("</svg>");
    if left_out > 0 {
        let _ = write!(
            o,
            "<p class=\"meta\">{left_out} more jobs in the span, not drawn (locksmith history lists them)</p>"
        );
    }
}

/// A line and a label at each third hour.
fn hours(o: &mut String, start: DateTime<Utc>, height: f64) {
    let first = start
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(start)
        + Duration::hours(1);
    let mut t = first;
    while t < start + SPAN {
        if t.hour().is_multiple_of(3) {
            let x = (t - start).num_seconds() as f64 / SPAN.num_seconds() as f64 * WIDTH;
            let _ = write!(
                o,
                "<line class=\"hour\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"12\" y2=\"{height}\"/>\
                 <text class=\"mark\" x=\"{x:.1}\" y=\"10\" text-anchor=\"middle\">{}</text>",
                t.format("%H:%M")
            );
        }
        t += Duration::hours(1);
    }
}

fn bar(o: &mut String, l: &Life, from: f64, to: f64, y: f64) {
    let width = (to - from).max(2.0);
    let kind = if l.span.key.exclusive {
        "exclusive"
    } else {
        "shared"
    };
    let marked = l.span.worst.map_or("", Worst::as_str);
    let label = format!("{} {}", l.span.key.hostname, l.span.key.pid);
    let title = format!(
        "{}@{} PID {}, {kind}, held since {}{}{}",
        l.span.key.username,
        l.span.key.hostname,
        l.span.key.pid,
        l.span.held_since.format("%Y-%m-%d %H:%M UTC"),
        l.span.ended.map_or(", still held".to_string(), |e| format!(
            ", ended {}",
            e.as_str()
        )),
        l.span
            .worst
            .map_or(String::new(), |w| format!(", {}", w.as_str())),
    );
    // The label after the bar, or inside its end where the bar reaches the right edge.
    let (lx, anchor) = if to + 4.0 + 8.0 * label.len() as f64 <= WIDTH {
        (from + width + 4.0, "start")
    } else {
        (from.max(4.0) - 4.0 + width.min(WIDTH), "end")
    };
    let _ = write!(
        o,
        "<g class=\"holder\"><title>{}</title>\
         <rect class=\"bar {kind} {marked}\" x=\"{from:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{:.1}\" rx=\"2\"/>\
         <text class=\"label\" x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text></g>",
        esc(&title),
        y + 2.0,
        LANE - 4.0,
        y + 13.0,
        esc(&label),
    );
}

/// Text from a lock (host and user names) for SVG: escaped as on the rest of the page.
fn esc(s: &str) -> String {
    html_escape::encode_text(&crate::printable::printable(s)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn life(host: &str, exclusive: bool, hours_ago: (i64, i64), worst: Option<Worst>) -> Life {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut l = Life::sample(
            host,
            exclusive,
            now - Duration::hours(hours_ago.0),
            now - Duration::hours(hours_ago.1),
        );
        l.span.worst = worst;
        l
    }

    #[test]
    fn bars_per_job_exclusive_above_shared_marked_and_labelled() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let lives = [
            life("b<x>", false, (6, 0), Some(Worst::Stale)),
            life("a", true, (12, 6), Some(Worst::Unsafe)),
            life("old", true, (30, 25), None),
        ];
        let mut o = String::new();
        render(&mut o, &lives, now);
        assert!(o.starts_with("<svg class=\"timeline\""), "{o}");
        assert!(!o.contains("old 42"), "outside the span: {o}");
        let exclusive = o
            .find("class=\"bar exclusive unsafe\" x=\"480.0\"")
            .expect(&o);
        let shared = o.find("class=\"bar shared stale\" x=\"720.0\"").expect(&o);
        assert!(exclusive < shared);
        assert!(
            o.contains(">a 42</text>") && o.contains(">b&lt;x&gt; 42</text>"),
            "{o}"
        );
        assert!(o.contains("<title>root@a PID 42, exclusive"), "{o}");
        let mut none = String::new();
        render(&mut none, &lives[2..], now);
        assert!(none.is_empty());
    }
}
