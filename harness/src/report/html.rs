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
        // A row without a reason (a pass) gets no `<pre>`: an empty one is dropped by HTML
        // checkers as meaningless markup.
        let reason = match r.outcome.reason() {
            "" => String::new(),
            reason => format!("<pre>{}</pre>", escape(reason)),
        };
        let _ = write!(
            page,
            "<tr class=\"{class}\" data-outcome=\"{}\" data-family=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{:.1}s</td><td>{reason}",
            escape(label),
            escape(family(&r.id)),
            escape(&r.id),
            escape(&r.title),
            escape(&r.label()),
            r.seconds,
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

    /// A report with each kind of row: a failure with its evidence (text HTML would take for
    /// markup in every place), a pass, a gated row; and its provenance.
    fn sample() -> Report {
        let mut failed = Row::new(
            "WL-01",
            "a <pod> & more".into(),
            Outcome::Failed("timed out </td></tr><script>x</script>".into()),
            2.0,
        );
        failed.evidence = Some("evidence/WL-01".into());
        Report {
            release: "1.5.18".into(),
            cluster: "local".into(),
            kubernetes: "v1.36.3".into(),
            rows: vec![
                failed,
                Row::new("VOL-01", "a volume".into(), Outcome::Passed, 1.0),
                Row::new(
                    "VOL-04",
                    "DownwardAPI".into(),
                    Outcome::NotApplicable("gate >= 1.3.25".into()),
                    0.0,
                ),
            ],
            provenance: Some(crate::report::provenance::Provenance {
                catalogue_sha256: "ab".repeat(32),
                ..Default::default()
            }),
        }
    }

    /// What HTML Tidy (Debian's `tidy`, which `ci/setup.sh` installs) says of `page`: its exit
    /// code (0: clean, 1: warnings, 2: errors) and its messages; `None` when it is not installed.
    fn tidy(page: &str) -> Option<(i32, String)> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("report.html");
        std::fs::write(&file, page).unwrap();
        let out = match std::process::Command::new("tidy")
            .args(["-quiet", "-errors", "-utf8"])
            .arg(&file)
            .output()
        {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("run tidy: {e}"),
        };
        Some((
            out.status.code().expect("tidy ends with a code"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// The page as an HTML checker reads it, beyond the tag balance above: HTML Tidy finds no
    /// error and no warning in it (an empty element, an attribute HTML does not have, a
    /// misnested tag, text a browser would repair). Skips, saying why, where tidy is absent.
    #[test]
    fn html_tidy_finds_nothing_to_say_about_the_page() {
        let page = html(&sample(), &|id| {
            vec![
                ("failure.txt".into(), format!("{id} <failed> & why")),
                ("events.yaml".into(), "- reason: Failed\n".into()),
            ]
        });
        let Some((code, said)) = tidy(&page) else {
            eprintln!(
                "skipped: HTML Tidy is not installed (`apt-get install tidy`; ci/setup.sh installs it)"
            );
            return;
        };
        assert_eq!((code, said.as_str()), (0, ""), "tidy on the page:\n{said}");
        let (code, said) = tidy("<!DOCTYPE html>\n<html><head><title>t</title></head><body><table><tr><td></p></table></body></html>\n")
            .expect("tidy ran once already");
        assert_ne!(code, 0, "tidy finds a broken page broken: {said}");
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
