//! `leadflow audit funnel` through the binary on the demo data set (issue 11): each format's
//! output is a golden file (a reviewed snapshot), the same with `--from-log` as from the
//! `transitions` model byte for byte, the SVG well-formed and naming every step, and bad input
//! refused with a clear message.

mod common;

use std::process::Command;

use common::{leadflow, BIN};

const COHORT: [&str; 6] = [
    "audit",
    "funnel",
    "--from",
    "2026-01-01",
    "--as-of",
    "2026-12-01T00:00:00Z",
];

fn audit(data: &std::path::Path, extra: &[&str]) -> String {
    let args: Vec<&str> = COHORT
        .iter()
        .chain(&["--to", "2027-01-01"])
        .chain(extra)
        .copied()
        .collect();
    leadflow(data, &args)
}

#[test]
fn each_format_on_the_demo_data_is_its_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    leadflow(data, &["demo", "--leads", "120"]);
    leadflow(data, &["projections", "run"]);

    let json = audit(data, &["--format", "json", "--group-by", "source"]);
    insta::assert_snapshot!("funnel_by_source.json", json);
    let from_log = audit(
        data,
        &["--format", "json", "--group-by", "source", "--from-log"],
    );
    assert_eq!(from_log, json, "the log and the model give the same answer");
    insta::assert_snapshot!(
        "funnel_by_source.csv",
        audit(data, &["--format", "csv", "--group-by", "source"])
    );
    insta::assert_snapshot!(
        "funnel_strict_without_jumps.txt",
        audit(
            data,
            &[
                "--mode",
                "strict",
                "--exclude",
                "ever-jumped",
                "--window",
                "handoff=30"
            ]
        )
    );

    let out = data.join("funnel.svg");
    audit(
        data,
        &[
            "--format",
            "svg",
            "--group-by",
            "month",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let svg = std::fs::read_to_string(&out).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for step in [
        "Qualification: done",
        "Distribution",
        "Transfer to sale",
        "Awaiting sale",
        "Won",
    ] {
        assert!(texts.contains(&step), "{step} is drawn: {texts:?}");
    }
    assert!(texts.iter().any(|t| t.starts_with("log position ")));
    insta::assert_snapshot!("funnel_by_month.svg", svg);
}

#[test]
fn bad_audit_arguments_are_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    leadflow(data, &["demo", "--leads", "5"]);
    for (args, says) in [
        (vec!["--to", "2025-01-01"], "the period is empty"),
        (
            vec!["--to", "2027-01-01", "--window", "handoff=-1"],
            "days must be a whole number",
        ),
        (
            vec!["--to", "2027-01-01", "--window", "sale=3"],
            "unknown step",
        ),
        (vec!["--to", "2027-01-01", "--manager", "nobody"], "no user"),
        (
            vec!["--to", "2027-01-01", "--group-by", "planet"],
            "invalid value",
        ),
        (vec!["--to", "March"], "neither a date"),
    ] {
        let out = Command::new(BIN)
            .args(COHORT)
            .args(&args)
            .arg("--data-dir")
            .arg(data)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
