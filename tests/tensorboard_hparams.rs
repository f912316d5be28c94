//! A sweep seen through a real TensorBoard server: the HParams dashboard lists exactly one
//! session group per trial, with its hyperparameters and its validation accuracy averaged over
//! folds, and no extra runs.

mod common;

use common::cli::{ledger, run_spec, small_mnist, write_spec};

#[test]
fn the_hparams_dashboard_shows_one_row_per_trial() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 300, 40);
    let text = format!(
        "name = \"hp\"\nseed = 1\n{data}\n[split]\nfolds = 2\n\n[model]\narchitecture = \"mlp\"\nlayers = [{{ type = \"dense\", units = 16 }}, {{ type = \"relu\" }}]\n\n[train]\nepochs = 2\n\n[sweep]\n[sweep.parameters]\n\"optimizer.lr\" = [0.001, 0.01]\n\"optimizer.kind\" = [\"adam\", \"sgd\"]\n"
    );
    let spec = write_spec(dir.path(), &text);
    let r = run_spec(dir.path(), &spec, &["--jobs", "2"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let exp = dir.path().join("runs/hp");
    let tb = common::tensorboard::serve_logdir(&exp, 4);

    // Runs: the experiment root (HParams summary) and, per job, its folder and train/val/test.
    let runs: Vec<String> = tb["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let l = ledger(&exp);
    let jobs: Vec<&String> = l["jobs"].as_object().unwrap().keys().collect();
    assert_eq!(jobs.len(), 8);
    let mut expected: Vec<String> = vec![".".into()];
    for id in &jobs {
        for suffix in ["", "/train", "/val", "/test"] {
            expected.push(format!("{id}{suffix}"));
        }
    }
    let (mut got, mut want) = (runs.clone(), expected);
    got.sort();
    want.sort();
    assert_eq!(got, want, "no extra runs");
    assert!(
        tb["scalar_tags"][format!("{}/val", jobs[0])]["accuracy"].is_object(),
        "{}",
        tb["scalar_tags"]
    );
    assert!(
        tb["text_tags"][jobs[0].as_str()]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "spec"),
        "{}",
        tb["text_tags"]
    );

    let images = &tb["image_tags"];
    assert!(images[jobs[0].as_str()]["samples"].is_object(), "{images}");
    assert!(
        images[format!("{}/val", jobs[0])]["confusion_matrix"].is_object(),
        "{images}"
    );

    // The experiment lists both swept parameters with their full domains.
    let infos = tb["experiment"]["hparamInfos"].as_array().unwrap();
    let names: Vec<&str> = infos.iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{infos:?}");
    assert!(names.contains(&"optimizer.lr") && names.contains(&"optimizer.kind"));

    // One session group per trial, each averaging its two folds' final validation accuracy.
    let groups = tb["session_groups"]["sessionGroups"].as_array().unwrap();
    assert_eq!(groups.len(), 4, "{groups:?}");
    let mut seen = std::collections::BTreeSet::new();
    for g in groups {
        let lr = g["hparams"]["optimizer.lr"].as_f64().unwrap();
        let kind = g["hparams"]["optimizer.kind"].as_str().unwrap().to_string();
        assert!(
            seen.insert((format!("{lr}"), kind.clone())),
            "each trial appears once"
        );
        assert_eq!(
            g["sessions"].as_array().unwrap().len(),
            2,
            "two folds per trial"
        );
        for s in g["sessions"].as_array().unwrap() {
            assert_eq!(s["status"], "STATUS_SUCCESS");
        }
        let acc = g["metricValues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"]["group"] == "val" && m["name"]["tag"] == "accuracy")
            .expect("val accuracy")
            .clone();
        // The mean over the group's jobs of the last logged val accuracy, as in metrics.json.
        let mut values = Vec::new();
        for s in g["sessions"].as_array().unwrap() {
            let id = s["name"].as_str().unwrap();
            let m = common::cli::metrics(&exp.join(id));
            let last = m["history"].as_array().unwrap().last().unwrap()["val"]["accuracy"]
                .as_f64()
                .unwrap();
            values.push(last as f32 as f64);
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!(
            (acc["value"].as_f64().unwrap() - mean).abs() < 1e-6,
            "{acc} vs {mean}"
        );
    }
}
