//! Writes event files with `EventWriter` and reads them back with TensorBoard's own reader.
//!
//! Needs the venv of `scripts/tb-venv.sh` (or `$ASSAY_TB_PYTHON`); fails, never skips, without it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assay::report::tensorboard::{
    experiment_value, session_end_value, session_start_value, EventWriter, HParamSpec, HParamValue,
    SessionStatus,
};
use serde_json::Value;

const LOSS: [(i64, f64); 3] = [(1, 0.9), (2, 0.1), (3, 0.012_345_678_9)];
const ACCURACY: [(i64, f64); 3] = [(1, 0.5), (2, 0.7), (3, 0.812_5)];
const NOTES: &str = "# Notes\n\n**bold** text, ü, `code`";

/// Asserts that `json` (a list of `[step, value]`) equals `expected` with values compared as f32.
fn assert_scalars(json: &Value, expected: &[(i64, f64)], what: &str) {
    let got: Vec<(i64, f32)> = json
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no scalars in {json}"))
        .iter()
        .map(|pair| {
            (
                pair[0]
                    .as_i64()
                    .unwrap_or_else(|| panic!("{what}: step in {pair}")),
                pair[1]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{what}: value in {pair}")) as f32,
            )
        })
        .collect();
    let want: Vec<(i64, f32)> = expected.iter().map(|&(s, v)| (s, v as f32)).collect();
    assert_eq!(got, want, "{what}");
}

/// The `<secs>` field of an event file name.
fn name_secs(path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name.trim_start_matches("events.out.tfevents.")
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Opens two writers in `dir` within the same second (retrying in a fresh dir if a second boundary
/// fell between them) and writes into both; returns the directory used.
fn write_two_writers_same_second(logdir: &Path) -> PathBuf {
    for attempt in 0..5 {
        let dir = logdir.join(if attempt == 0 {
            "run_b".to_string()
        } else {
            format!("run_b_retry{attempt}")
        });
        let mut first = EventWriter::create(&dir).unwrap();
        let mut second = EventWriter::create(&dir).unwrap();
        if name_secs(first.path()) != name_secs(second.path()) {
            drop((first, second));
            std::fs::remove_dir_all(&dir).unwrap();
            continue;
        }
        assert_ne!(first.path(), second.path());
        assert_eq!(first.path().parent(), second.path().parent());
        first.add_scalar("x", 1.5, 1).unwrap();
        second.add_scalar("y", -2.5, 1).unwrap();
        first.add_scalar("x", 3.0, 2).unwrap();
        second.add_scalar("y", -4.0, 2).unwrap();
        first.add_scalar("shared", 10.0, 1).unwrap();
        second.add_scalar("shared", 20.0, 2).unwrap();
        first.flush().unwrap();
        second.flush().unwrap();
        return dir;
    }
    panic!("could not open two writers within one second");
}

#[test]
fn tensorboard_reads_back_everything_written() {
    let tmp = tempfile::tempdir().unwrap();
    let logdir = tmp.path();

    // Experiment at the log dir root.
    let mut root = EventWriter::create(logdir).unwrap();
    root.add_values(
        vec![experiment_value(
            &[
                HParamSpec::discrete("lr", [0.01, 0.1]),
                HParamSpec::discrete("model", ["mlp", "resnet"]),
                HParamSpec::discrete("augment", [false, true]),
                HParamSpec::interval("weight_decay", 0.00001, 0.001),
            ],
            &[("val", "accuracy"), ("train", "loss")],
        )],
        0,
    )
    .unwrap();
    root.flush().unwrap();

    // Session run_a: hparams start/end in run_a, metrics in run_a/train and run_a/val.
    let mut hp = BTreeMap::new();
    hp.insert("lr".to_string(), HParamValue::from(0.01));
    hp.insert("model".to_string(), HParamValue::from("resnet"));
    hp.insert("augment".to_string(), HParamValue::from(true));
    hp.insert("weight_decay".to_string(), HParamValue::from(0.0005));
    let mut session = EventWriter::create(&logdir.join("run_a")).unwrap();
    session
        .add_values(
            vec![session_start_value(&hp, "trial-7", 1_700_000_000.5)],
            0,
        )
        .unwrap();

    let mut train = EventWriter::create(&logdir.join("run_a/train")).unwrap();
    let mut val = EventWriter::create(&logdir.join("run_a/val")).unwrap();
    for (&(step, loss), &(vstep, acc)) in LOSS.iter().zip(ACCURACY.iter()) {
        train.add_scalar("loss", loss, step).unwrap();
        val.add_scalar("accuracy", acc, vstep).unwrap();
    }
    train.add_text("notes", NOTES, 1).unwrap();
    // 2 rows x 3 columns: width 3, height 2.
    let rgb: Vec<u8> = (0..2 * 3 * 3).map(|i| (i * 14) as u8).collect();
    train.add_image_rgb8("samples/grid", 3, 2, &rgb, 2).unwrap();
    train.flush().unwrap();
    val.flush().unwrap();

    session
        .add_values(
            vec![session_end_value(SessionStatus::Success, 1_700_000_100.25)],
            0,
        )
        .unwrap();
    session.flush().unwrap();

    let run_b = write_two_writers_same_second(logdir);
    let run_b_name = run_b.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(std::fs::read_dir(&run_b).unwrap().count(), 2);

    let out = common::tensorboard::read_logdir(logdir);
    let runs = &out["runs"];

    // Scalars.
    assert_scalars(
        &runs["run_a/train"]["scalars"]["loss"],
        &LOSS,
        "run_a/train loss",
    );
    assert_scalars(
        &runs["run_a/val"]["scalars"]["accuracy"],
        &ACCURACY,
        "run_a/val accuracy",
    );

    // Text (a string tensor of the text plugin).
    assert_eq!(
        runs["run_a/train"]["text"]["notes"],
        serde_json::json!([NOTES]),
        "{out}"
    );
    assert_eq!(
        out["plugins"]["text"]["run_a/train"],
        serde_json::json!(["notes"]),
        "{out}"
    );

    // Image: width and height not swapped.
    assert_eq!(
        runs["run_a/train"]["images"]["samples/grid"],
        serde_json::json!([{"step": 2, "width": 3, "height": 2}]),
        "{out}"
    );

    // Two writers in one directory in the same second: both files are read.
    let b = &runs[run_b_name.as_str()]["scalars"];
    assert_scalars(&b["x"], &[(1, 1.5), (2, 3.0)], "x (first writer)");
    assert_scalars(&b["y"], &[(1, -2.5), (2, -4.0)], "y (second writer)");
    assert_scalars(
        &b["shared"],
        &[(1, 10.0), (2, 20.0)],
        "shared (both writers)",
    );

    // HParams: plugin data under the right runs and tags, decoded by TensorBoard's protos.
    let hparams_tags = &out["plugins"]["hparams"];
    assert_eq!(
        hparams_tags["."],
        serde_json::json!(["_hparams_/experiment"]),
        "{out}"
    );
    assert_eq!(
        hparams_tags["run_a"],
        serde_json::json!(["_hparams_/session_end_info", "_hparams_/session_start_info"]),
        "{out}"
    );
    assert_eq!(hparams_tags.as_object().map(|o| o.len()), Some(2), "{out}");
    assert_eq!(
        runs["."]["tensors_tags"],
        serde_json::json!(["_hparams_/experiment"]),
        "{out}"
    );

    let data = &out["hparams_data"];
    let exp = &data["."]["_hparams_/experiment"]["experiment"];
    let infos = exp["hparam_infos"]
        .as_array()
        .unwrap_or_else(|| panic!("{out}"));
    let summary: Vec<(String, String)> = infos
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or("").to_string(),
                i["type"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("lr".to_string(), "DATA_TYPE_FLOAT64".to_string()),
            ("model".to_string(), "DATA_TYPE_STRING".to_string()),
            ("augment".to_string(), "DATA_TYPE_BOOL".to_string()),
            ("weight_decay".to_string(), "DATA_TYPE_FLOAT64".to_string()),
        ],
        "{out}"
    );
    assert_eq!(
        infos[0]["domain_discrete"],
        serde_json::json!([0.01, 0.1]),
        "{out}"
    );
    assert_eq!(
        infos[1]["domain_discrete"],
        serde_json::json!(["mlp", "resnet"]),
        "{out}"
    );
    assert_eq!(
        infos[2]["domain_discrete"],
        serde_json::json!([false, true]),
        "{out}"
    );
    assert_eq!(
        infos[3]["domain_interval"],
        serde_json::json!({"min_value": 0.00001, "max_value": 0.001}),
        "{out}"
    );
    assert_eq!(
        exp["metric_infos"],
        serde_json::json!([
            {"name": {"group": "val", "tag": "accuracy"}},
            {"name": {"group": "train", "tag": "loss"}}
        ]),
        "{out}"
    );

    let start = &data["run_a"]["_hparams_/session_start_info"]["session_start_info"];
    assert_eq!(
        start["hparams"],
        serde_json::json!({"lr": 0.01, "model": "resnet", "augment": true, "weight_decay": 0.0005}),
        "{out}"
    );
    assert_eq!(start["group_name"], "trial-7", "{out}");
    assert_eq!(start["start_time_secs"], 1_700_000_000.5, "{out}");
    let end = &data["run_a"]["_hparams_/session_end_info"]["session_end_info"];
    assert_eq!(end["status"], "STATUS_SUCCESS", "{out}");
    assert_eq!(end["end_time_secs"], 1_700_000_100.25, "{out}");
}
