//! `report.html`: the report as one self-contained page (no network: the style and the
//! filters are inline): the verdict, the table with filters by outcome and family, and each
//! failure's evidence folded under its row.

use std::fmt::Write as _;

use super::Report;

/// What of a file of evidence the page shows: more would make the page slow to open, and the
/// file itself is beside it.
const MAX_SHOWN: usize = 64 * 1024;

/// The page of `report`; `evidence` gives each failed row's evidence files, by ID, as
/// (file name, text), in the order to show them.
pub fn html(report: &Report, evidence: &dyn Fn(&str) -> Vec<(String, String)>) -> String {
    let mut page = String::from(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<title>burstcert report</title>\n<style>\n",
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left}",
        ".passed{background:#e6ffe6}.failed{background:#ffe6e6}.verdict{font-size:1.3em}",
        "pre{white-space:pre-wrap;max-width:100em;background:#f6f6f6;padding:.5em}",
        "\n</style>\n</head>\n<body>\n"
    ));
    let _ = writeln!(
        page,
        "<h1>burstcert report</h1>\n<p>Release <b>{}</b> on a <b>{}</b> cluster (Kubernetes {}).</p>\n<p class=\"verdict\"><b>{}</b></p>",
        escape(&report.release),
        escape(&report.cluster),
        escape(&report.kubernetes),
        escape(&report.summary())
    );
    let mut outcomes: Vec<String> = report
        .rows
        .iter()
        .map(|r| r.outcome.label().to_owned())
        .collect();
    outcomes.sort();
    outcomes.dedup();
    let mut families: Vec<&str> = report.rows.iter().map(|r| family(&r.id)).collect();
    families.dedup();
    page.push_str(
        "<p>Outcome: <select id=\"outcome\" onchange=\"filter()\"><option value=\"\">all</option>",
    );
    for o in &outcomes {
        let _ = write!(page, "<option>{}</option>", escape(o));
    }
    page.push_str("</select> Family: <select id=\"family\" onchange=\"filter()\"><option value=\"\">all</option>");
    for f in &families {
        let _ = write!(page, "<option>{}</option>", escape(f));
    }
    page.push_str("</select></p>\n<table>\n<thead><tr><th>ID</th><th>title</th><th>outcome</th><th>time</th><th>reason</th></tr></thead>\n<tbody>\n");
    for r in &report.rows {
        let label = r.outcome.label();
        let class = match label {
            "passed" => "passed",
            "failed" => "failed",
            _ => "other",
        };
        let _ = write!(
            page,
            "<tr class=\"{class}\" data-outcome=\"{}\" data-family=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{:.1}s</td><td><pre>{}</pre>",
            escape(label),
            escape(family(&r.id)),
            escape(&r.id),
            escape(&r.title),
            escape(&r.label()),
            r.seconds,
            escape(r.outcome.reason())
        );
        if let Some(dir) = &r.evidence {
            let _ = write!(
                page,
                "<details><summary>evidence (<a href=\"{0}/\">{0}/</a>)</summary>",
                escape(dir)
            );
            for (name, text) in evidence(&r.id) {
                let shown = if text.len() > MAX_SHOWN {
                    let cut = (0..=MAX_SHOWN)
                        .rev()
                        .find(|i| text.is_char_boundary(*i))
                        .unwrap_or(0);
                    format!(
                        "{}\n… ({} bytes more in the file)",
                        &text[..cut],
                        text.len() - cut
                    )
                } else {
                    text
                };
                let _ = write!(
                    page,
                    "<details><summary>{}</summary><pre>{}</pre></details>",
                    escape(&name),
                    escape(&shown)
                );
            }
            page.push_str("</details>");
        }
        page.push_str("</td></tr>\n");
    }
    page.push_str("</tbody>\n</table>\n");
    if let Some(p) = &report.provenance {
        let _ = writeln!(
            page,
            "<p>burstcert {} ({}), catalogue {}, mock {}; from {} to {}.</p>",
            escape(&p.harness.version),
            escape(&p.harness.commit),
            escape(&p.catalogue_sha256),
            escape(&p.mock.mode),
            escape(&p.started),
            escape(&p.ended)
        );
    }
    page.push_str(concat!(
        "<script>\nfunction filter(){\n",
        "  var o=document.getElementById('outcome').value, f=document.getElementById('family').value;\n",
        "  document.querySelectorAll('tbody tr').forEach(function(tr){\n",
        "    var show=(!o||tr.dataset.outcome===o)&&(!f||tr.dataset.family===f);\n",
        "    tr.style.display=show?'':'none';\n  });\n}\n</script>\n</body>\n</html>\n"
    ));
    page
}

/// `WL` of `WL-02`.
fn family(id: &str) -> &str {
    id.split_once('-').map_or(id, |(f, _)| f)
}

/// Text for HTML: XML's escaping serves (HTML5 knows `&apos;` too).
fn escape(text: &str) -> String {
    super::xml_escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Outcome;
    use crate::report::Row;

    /// Checks that every element opened is closed in order (HTML's void elements excepted),
    /// outside `<script>` and `<style>`, whose text is not markup: a page that passes parses
    /// into the tree it was written as.
    fn balanced(page: &str) -> Result<(), String> {
        const VOID: [&str; 4] = ["meta", "br", "input", "!DOCTYPE"];
        let mut open: Vec<String> = Vec::new();
        let mut rest = page;
        while let Some(at) = rest.find('<') {
            rest = &rest[at + 1..];
            let end = rest.find('>').ok_or("a tag is never closed")?;
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            if VOID.contains(&name.as_str()) {
                continue;
            }
            if tag.starts_with('/') {
                match open.pop() {
                    Some(top) if top == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else {
                if name == "script" || name == "style" {
                    let close = format!("</{name}>");
                    let at = rest.find(&close).ok_or(format!("{name} never closed"))?;
                    rest = &rest[at + close.len()..];
                    continue;
                }
                open.push(name);
            }
        }
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!("never closed: {open:?}"))
        }
    }

    #[test]
    fn the_page_is_well_formed_escapes_text_and_folds_evidence_under_a_failed_row() {
        let mut failed = Row::new(
            "WL-01",
            "a <pod> & more".into(),
            Outcome::Failed("timed out </td></tr><script>x</script>".into()),
            2.0,
        );
        failed.evidence = Some("evidence/WL-01".into());
        let report = Report {
            release: "1.5.18".into(),
            cluster: "local".into(),
            kubernetes: "v1.36.3".into(),
            rows: vec![
                failed,
                Row::new("VOL-01", "a volume".into(), Outcome::Passed, 1.0),
            ],
            provenance: None,
        };
        let page = html(&report, &|id| {
            vec![(
                "events.yaml".into(),
                format!("{id}: <Warning> & a very long {}", "x".repeat(MAX_SHOWN)),
            )]
        });
        balanced(&page).unwrap();
        assert!(page.contains("a &lt;pod&gt; &amp; more"), "{page}");
        assert!(page.contains("timed out &lt;/td&gt;&lt;/tr&gt;&lt;script&gt;"));
        assert!(
            page.contains(
                "<details><summary>events.yaml</summary><pre>WL-01: &lt;Warning&gt; &amp;"
            )
        );
        assert!(page.contains("bytes more in the file)"));
        assert!(page.contains(r#"data-outcome="failed" data-family="WL""#));
        assert!(page.contains("<option>VOL</option>"));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no network"
        );
        assert!(
            balanced("<table><tr></table>").is_err(),
            "the check can fail"
        );
    }
}
