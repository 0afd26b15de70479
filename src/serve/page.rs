//! `/`: the status page. One self-contained document (no scripts, no external assets) that
//! reloads itself, for a person reading it at a glance: failures first in plain words,
//! then each repository's locks as in the table, in the table's colours.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use crate::history::History;
use crate::report::Status;
use crate::report::{HOLDER_HEADER, Report, TABLE_HEADER, Tone};

const STYLE: &str =
    "body{font:15px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.1em;margin:0}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em 1em;margin:1em 0}
section.failing{border-color:#c00}
.meta{color:#666;font-size:.9em}
.error{color:#fff;background:#c00;padding:.4em .6em;border-radius:4px;margin:.5em 0}
.ok{color:#060}.warn{color:#a60}.bad{color:#c00;font-weight:bold}
table{border-collapse:collapse;margin-top:.5em;font:13px ui-monospace,monospace}
caption{text-align:left;font:600 13px system-ui,sans-serif;color:#444}
th,td{text-align:left;padding:.2em .8em .2em 0;white-space:nowrap;vertical-align:top}
td:last-child{white-space:normal;min-width:24em}
tr.unsafe td{color:#c00;font-weight:bold}tr.removable td{color:#a60}tr.alive td{color:#060}
.unreadable{color:#777}.restored{color:#a60;font-weight:600}";

/// Text from a repository or a server, for the page: what a terminal would act on, and
/// invisible characters, escaped as in the table; then HTML-escaped.
fn t(s: &str) -> String {
    html_escape::encode_text(&crate::printable::printable(s)).into_owned()
}

/// Seconds since `then`, in the table's words.
fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    crate::verdict::human_age(now.signed_duration_since(then).num_seconds().max(0))
}

fn tone_class(tone: Tone) -> &'static str {
    match tone {
        Tone::Unsafe => "unsafe",
        Tone::Removable => "removable",
        Tone::Alive => "alive",
        Tone::Plain => "",
    }
}

/// The whole page, reloading every `reload` seconds; with a history, each repository's
/// last 24 hours as a timeline.
pub fn render(
    statuses: &[Status],
    now: DateTime<Utc>,
    reload: u64,
    history: Option<&History>,
) -> String {
    let mut o = String::new();
    let failing = statuses.iter().filter(|s| s.error.is_some()).count();
    let unsafe_ = statuses
        .iter()
        .filter_map(|s| s.report.as_ref())
        .map(|r| r.counts.unsafe_)
        .sum::<usize>();
    let stale = statuses
        .iter()
        .filter_map(|s| s.report.as_ref())
        .map(|r| r.counts.stale + r.counts.unreadable)
        .sum::<usize>();
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{reload}\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>locksmith: {}</title><style>{STYLE}\n{}</style></head><body>",
        if failing + unsafe_ + stale == 0 {
            "all clear".to_string()
        } else {
            format!("{failing} failing, {unsafe_} unsafe, {stale} stale or unreadable")
        },
        super::timeline::STYLE,
    );
    let _ = write!(
        o,
        "<h1>restic locks</h1><p class=\"meta\" id=\"summary\">{} repositor{} · \
         <span class=\"{}\">{failing} failing</span> · \
         <span class=\"{}\">{unsafe_} unsafe</span> · \
         <span class=\"{}\">{stale} stale or unreadable</span> · page of {} UTC</p>",
        statuses.len(),
        if statuses.len() == 1 { "y" } else { "ies" },
        if failing > 0 { "bad" } else { "ok" },
        if unsafe_ > 0 { "bad" } else { "ok" },
        if stale > 0 { "warn" } else { "ok" },
        now.format("%Y-%m-%d %H:%M:%S")
    );
    o.push_str(
        "<p class=\"meta\"><a href=\"/metrics\">metrics</a> · <a href=\"/locks\">locks (JSON)</a> · \
         <a href=\"/-/healthy\">healthy</a> · <a href=\"/-/ready\">ready</a></p>",
    );
    // Failing repositories first: they are what the reader came for.
    let mut order: Vec<&Status> = statuses.iter().collect();
    order.sort_by_key(|s| s.error.is_none());
    for s in order {
        let lives = history
            .and_then(|h| h.repositories.iter().find(|r| r.name == s.name))
            .map(|r| r.holders.as_slice());
        section(&mut o, s, now, lives.unwrap_or_default());
    }
    o.push_str("</body></html>\n");
    o
}

fn section(o: &mut String, s: &Status, now: DateTime<Utc>, lives: &[crate::report::Life]) {
    section_head(o, s, now);
    if let Some(e) = &s.error {
        let retry = s.retry_at.map_or(String::new(), |at| {
            format!(
                "; next attempt at {} UTC (waiting longer after each wrong password)",
                at.format("%H:%M:%S")
            )
        });
        let _ = write!(
            o,
            "<div class=\"error\">Cannot refresh: {}{retry}{}</div>",
            t(&e.to_string()),
            if s.report.is_some() {
                " — showing the last good reading below."
            } else {
                ""
            }
        );
    }
    super::timeline::render(o, lives, now);
    let Some(r) = &s.report else {
        o.push_str("</section>");
        return;
    };
    let c = &r.counts;
    if c.total == 0 {
        o.push_str("<p class=\"ok\">No locks.</p>");
    } else {
        let _ = write!(
            o,
            "<p>{}, <span class=\"{}\">{} unsafe</span></p>",
            c.headline(),
            if c.unsafe_ > 0 { "bad" } else { "ok" },
            c.unsafe_
        );
        if !r.peers.is_empty() {
            let _ = write!(
                o,
                "<p class=\"peers\">Asked: {}</p>",
                t(&crate::peer::ask::summary(&r.peers))
            );
        }
        holders_table(o, r);
        o.push_str("<table class=\"locks\"><tr>");
        for h in TABLE_HEADER {
            let _ = write!(o, "<th>{h}</th>");
        }
        o.push_str("<th>WHY</th></tr>");
        for l in &r.locks {
            let cells = l.table_cells(&r.checked_on);
            row(o, Tone::of(&l.verdict), &cells, &l.verdict.reason);
        }
        o.push_str("</table>");
    }
    if !r.unreadable.is_empty() {
        let _ = write!(
            o,
            "<p class=\"bad\">{} unreadable lock file{}: {}</p><ul class=\"unreadable\">",
            r.unreadable.len(),
            if r.unreadable.len() == 1 { "" } else { "s" },
            t(crate::locks::UNREADABLE_EFFECT)
        );
        for u in &r.unreadable {
            let _ = write!(
                o,
                "<li>{} — {}</li>",
                t(crate::restic::short_id(&u.id)),
                t(&u.error)
            );
        }
        o.push_str("</ul>");
    }
    o.push_str("</section>");
}

/// The repository's name, location and when it was read (marked when the reading is
/// from before a restart).
fn section_head(o: &mut String, s: &Status, now: DateTime<Utc>) {
    let _ = write!(
        o,
        "<section class=\"{}\" data-repository=\"{}\"><h2>{}</h2><div class=\"meta\">{}",
        if s.error.is_some() { "failing" } else { "" },
        html_escape::encode_double_quoted_attribute(&s.name),
        t(&s.name),
        t(s.location.as_deref().unwrap_or("")),
    );
    match s.refreshed_at {
        Some(at) if s.restored => {
            let _ = write!(
                o,
                " · <span class=\"restored\">last read {} ago, at {} UTC, before serve restarted \
                 (from its history; not read since)</span>",
                ago(at, now),
                at.format("%Y-%m-%d %H:%M:%S")
            );
        }
        Some(at) => {
            let _ = write!(o, " · read {} ago", ago(at, now));
        }
        None => o.push_str(" · not read yet"),
    }
    o.push_str("</div>");
}

/// The jobs behind the locks, one row each, however many lock files each went through.
fn holders_table(o: &mut String, r: &Report) {
    let _ = write!(
        o,
        "<table class=\"holders\"><caption>held by {} job{}</caption><tr>",
        r.holders.len(),
        if r.holders.len() == 1 { "" } else { "s" }
    );
    for h in HOLDER_HEADER {
        let _ = write!(o, "<th>{h}</th>");
    }
    o.push_str("<th>WHY</th></tr>");
    for h in &r.holders {
        row(
            o,
            Tone::of_holder(h),
            &h.table_cells(&r.checked_on),
            &h.reason,
        );
    }
    o.push_str("</table>");
}

fn row(o: &mut String, tone: Tone, cells: &[String], why: &str) {
    let _ = write!(o, "<tr class=\"{}\">", tone_class(tone));
    for cell in cells {
        let _ = write!(o, "<td>{}</td>", t(cell));
    }
    let _ = write!(o, "<td>{}</td></tr>", t(why));
}
