//! The resolved spec is a spec: the text `assay validate` prints and each job folder keeps
//! (`spec.toml`) reads back, from any folder, into the same resolved spec and the same job ids —
//! for every example spec, every sweep point, and variants that cover every section's shapes.

mod common;

use std::path::{Path, PathBuf};

use assay::plan::{self, Plan};
use assay::spec::{self, Experiment};
use common::cli::{assay, metrics, repo, run_spec, small_mnist, write_spec};

/// Creates (empty) every data file `text`'s `[data]` names, relative to `dir`, so the spec
/// validates without the data (the round trip does not read it).
fn touch_data_files(text: &str, dir: &Path) {
    let doc: toml::Table = text.parse().expect("example specs are TOML");
    let Some(data) = doc.get("data").and_then(|d| d.as_table()) else {
        return;
    };
    let mut paths = Vec::new();
    for split in ["train", "test"] {
        match data.get(split) {
            Some(toml::Value::String(s)) => paths.push(s.clone()),
            Some(toml::Value::Table(t)) => {
                paths.extend(t.values().filter_map(|v| v.as_str().map(String::from)))
            }
            _ => {}
        }
    }
    for p in paths {
        let p = dir.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"").unwrap();
    }
}

/// Writes the weights file `text`'s `model.pretrained` names (relative to `dir`), when it
/// names one: the spec's own model, freshly initialised, under assay's names (which the
/// `efficientnet-lite` layout shares), so that the spec validates without the fetched weights.
fn write_pretrained_weights(text: &str, dir: &Path) {
    let doc: toml::Table = text.parse().expect("example specs are TOML");
    let Some(file) = doc
        .get("model")
        .and_then(|m| m.get("pretrained"))
        .and_then(|p| p.as_str())
    else {
        return;
    };
    let without: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("pretrained"))
        .collect::<Vec<_>>()
        .join("\n");
    let e = load_in(dir, &without, &[]);
    let mut rng = assay::train::rng::stream(0, "init", 0);
    let net = assay::model::build(
        &e.base.model,
        e.base.input_shape(),
        2,
        &mut rng,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let state: std::collections::HashMap<String, candle_core::Tensor> =
        net.state().unwrap().into_iter().collect();
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    candle_core::safetensors::save(&state, &path).unwrap();
}

/// Loads `text` as `dir/spec.toml` with `overrides`.
fn load_in(dir: &Path, text: &str, overrides: &[&str]) -> Experiment {
    let path = write_spec(dir, text);
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    spec::load(&path, &overrides).unwrap_or_else(|e| panic!("{e}\n--- spec ---\n{text}"))
}

fn ids(plan: &Plan) -> Vec<&str> {
    plan.jobs.iter().map(|j| j.id.as_str()).collect()
}

/// The round trip of one experiment: `assay validate`'s text, and every job's `spec.toml`, read
/// back in another folder.
fn assert_round_trips(e: &Experiment, what: &str) {
    let original = plan::expand(e);
    let elsewhere = tempfile::tempdir().unwrap();

    let text = spec::experiment_text(e);
    let again = load_in(elsewhere.path(), &text, &[]);
    assert_eq!(again.base, e.base, "{what}: the base spec\n{text}");
    assert_eq!(again.sweep, e.sweep, "{what}: the sweep\n{text}");
    let replanned = plan::expand(&again);
    assert_eq!(ids(&replanned), ids(&original), "{what}: job ids\n{text}");
    for (a, b) in replanned.jobs.iter().zip(&original.jobs) {
        assert_eq!(a.spec, b.spec, "{what}: job {}", b.id);
        assert_eq!(a.params, b.params, "{what}: job {}", b.id);
    }

    for job in &original.jobs {
        let text = plan::job_spec_text(&original, job);
        let dir = tempfile::tempdir().unwrap();
        let again = load_in(dir.path(), &text, &[]);
        let replanned = plan::expand(&again);
        let same = replanned
            .job(&job.id)
            .unwrap_or_else(|| panic!("{what}: job {} is not planned again from\n{text}", job.id));
        assert_eq!(same.spec, job.spec, "{what}: job {}", job.id);
        assert_eq!(same.seed, job.seed);
        assert_eq!(same.fold, job.fold);
        // exactly the trial's jobs: its folds × repeats
        let trial_jobs = original
            .jobs
            .iter()
            .filter(|j| j.trial == job.trial)
            .count();
        assert_eq!(replanned.jobs.len(), trial_jobs, "{what}: job {}", job.id);
    }
}

#[test]
fn every_example_spec_and_sweep_point_round_trips() {
    let mut seen = 0;
    for entry in std::fs::read_dir(repo().join("experiments")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let dir = tempfile::tempdir().unwrap();
        touch_data_files(&text, dir.path());
        write_pretrained_weights(&text, dir.path());
        let e = load_in(dir.path(), &text, &[]);
        assert_round_trips(&e, &path.display().to_string());
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} example specs");
}

/// A spec with every data path present, for the variants below.
const BASE: &str = r#"
name = "variants"
seed = 5
[data]
format = "idx"
train = { images = "d/train-images.gz", labels = "d/train-labels.gz" }
test = { images = "d/test-images.gz", labels = "d/test-labels.gz" }
image_size = [28, 28]
[model]
architecture = "cnn"
layers = [
  { type = "conv", filters = 4, kernel = 3, padding = 1 },
  { type = "batch_norm" },
  { type = "relu" },
  { type = "max_pool", size = 3, stride = 2 },
  { type = "avg_pool", size = 2 },
  { type = "global_avg_pool" },
  { type = "dropout", rate = 0.25 },
  { type = "dense", units = 8, bias = false },
  { type = "gelu" },
]
"#;

#[test]
fn every_section_shape_round_trips() {
    let variants: &[&[&str]] = &[
        &[],
        &["optimizer.kind=sgd", "optimizer.momentum=0.9", "optimizer.nesterov=true", "optimizer.weight_decay=5e-4"],
        &["optimizer.kind=adamw", "optimizer.betas=[0.8, 0.95]", "optimizer.eps=1e-6"],
        &["schedule.type=step", "schedule.every_epochs=2", "schedule.gamma=0.5"],
        &["schedule.type=cosine", "schedule.min_lr=1e-5", "schedule.warmup_epochs=1.5"],
        &["schedule.type=one_cycle", "schedule.max_lr=0.01", "schedule.pct_start=0.25", "schedule.anneal=linear", "schedule.warmup_epochs=1"],
        &["schedule.type=one_cycle", "schedule.div_factor=10", "schedule.final_div_factor=100"],
        &["schedule.type=multistep", "schedule.milestones=[3, 6, 8]", "schedule.gamma=0.5"],
        &["schedule.type=exponential", "schedule.gamma=0.9"],
        &["schedule.type=cosine_restarts", "schedule.t0=2", "schedule.t_mult=2", "schedule.min_lr=1e-5"],
        &["schedule.type=reduce_on_plateau", "schedule.patience=2", "schedule.factor=0.5", "schedule.threshold=0.01", "schedule.cooldown=1", "schedule.min_lr=1e-6"],
        &["train.clip_grad_norm=1.0", "train.ema_decay=0.999"],
        &["preprocess.normalize={ mean = [0.1307], std = [0.3081] }", "preprocess.resize=nearest"],
        &["preprocess.normalize=none"],
        &["split.folds=4", "split.fold_method=kfold", "split.refit=true"],
        &["split.folds=3", "split.validation_fraction=0"],
        &["split.validation_fraction=0.2", "split.stratify=false"],
        &["split.validation_fraction=0"],
        &["train.class_weights=[1, 2, 1, 1, 1, 1, 1, 1, 1, 3]", "train.sampler=balanced", "train.label_smoothing=0.1"],
        &["train.class_weights=balanced", "train.patience=2", "train.best_metric=f1_macro"],
        &["data.on_corrupt=skip", "data.channels=3"],
        &["augment.train=[{ type = \"random_crop\", size = 28, padding = 2 }, { type = \"horizontal_flip\" }]", "augment.mixup={ alpha = 0.2 }"],
    ];
    for overrides in variants {
        let dir = tempfile::tempdir().unwrap();
        touch_data_files(BASE, dir.path());
        let e = load_in(dir.path(), BASE, overrides);
        assert_round_trips(&e, &format!("{overrides:?}"));
    }
}

#[test]
fn sweeps_of_every_kind_round_trip() {
    let sweeps = [
        "[sweep]\nrepeats = 3\n",
        "[sweep]\nrepeats = 2\n[sweep.parameters]\n\"optimizer.lr\" = [0.001, 0.01]\n\"model.layers[6].rate\" = [0.0, 0.5]\n\"optimizer.kind\" = [\"adam\", \"sgd\"]\n",
        "[sweep]\nmethod = \"random\"\ntrials = 5\nrepeats = 2\npruning = \"asha\"\nmin_epochs = 1\nreduction_factor = 2\n[sweep.parameters]\n\"optimizer.lr\" = { loguniform = [1e-4, 1e-2] }\n\"model.layers[6].rate\" = { uniform = [0.0, 0.5] }\n\"model.layers[0].filters\" = { int = [2, 8, 2] }\n\"train.batch_size\" = [16, 32]\n\"model.layers[2].type\" = { choice = [\"relu\", \"gelu\"] }\n",
        "[sweep]\n[sweep.parameters]\n\"schedule.type\" = [\"constant\", \"one_cycle\", \"reduce_on_plateau\"]\n\"schedule.warmup_epochs\" = [0, 1]\n\"train.ema_decay\" = [0.9, 0.99]\n",
        "[schedule]\ntype = \"exponential\"\ngamma = 0.9\n[sweep]\n[sweep.parameters]\n\"schedule.gamma\" = [0.5, 0.8]\n\"train.clip_grad_norm\" = [0.5, 5.0]\n",
    ];
    for sweep in sweeps {
        let text = format!("{BASE}\n[train]\nepochs = 4\n[split]\nfolds = 2\n{sweep}");
        let dir = tempfile::tempdir().unwrap();
        touch_data_files(&text, dir.path());
        let e = load_in(dir.path(), &text, &[]);
        assert_round_trips(&e, sweep);
    }
}

#[test]
fn a_sweep_over_the_schedule_type_and_its_keys_gives_each_trial_its_schedule() {
    use assay::spec::ScheduleKind;
    let load = |schedule: &str, parameters: &str| {
        let text = format!(
            "{BASE}\n[train]\nepochs = 4\n{schedule}[sweep]\n[sweep.parameters]\n{parameters}"
        );
        let dir = tempfile::tempdir().unwrap();
        touch_data_files(&text, dir.path());
        let e = load_in(dir.path(), &text, &[]);
        assert_round_trips(&e, parameters);
        e
    };
    let e = load(
        "",
        "\"schedule.type\" = [\"constant\", \"one_cycle\", \"reduce_on_plateau\"]\n",
    );
    let kinds: Vec<&str> = e
        .trials
        .iter()
        .map(|t| match t.spec.schedule.kind {
            ScheduleKind::Constant => "constant",
            // max_lr defaults to the optimizer's lr
            ScheduleKind::OneCycle { max_lr, .. } if max_lr == t.spec.optimizer.lr() => "one_cycle",
            ScheduleKind::ReduceOnPlateau { patience: 10, .. } => "reduce_on_plateau",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["constant", "one_cycle", "reduce_on_plateau"]);
    let e = load(
        "[schedule]\ntype = \"exponential\"\ngamma = 0.9\n",
        "\"schedule.gamma\" = [0.5, 0.25]\n",
    );
    let kinds: Vec<&ScheduleKind> = e.trials.iter().map(|t| &t.spec.schedule.kind).collect();
    assert_eq!(
        kinds,
        [
            &ScheduleKind::Exponential { gamma: 0.5 },
            &ScheduleKind::Exponential { gamma: 0.25 }
        ]
    );
}

#[test]
fn data_paths_follow_data_root() {
    let dir = tempfile::tempdir().unwrap();
    touch_data_files(BASE, &dir.path().join("elsewhere"));
    let spec_dir = dir.path().join("specs");
    std::fs::create_dir_all(&spec_dir).unwrap();
    let text = BASE.replace("[data]\n", "[data]\nroot = \"../elsewhere\"\n");
    let e = load_in(&spec_dir, &text, &[]);
    let plain = {
        let d = tempfile::tempdir().unwrap();
        touch_data_files(BASE, d.path());
        plan::expand(&load_in(d.path(), BASE, &[]))
    };
    // the same relative paths under another root: the same job ids
    assert_eq!(ids(&plan::expand(&e)), ids(&plain));
    let PathBufPair(images, _) = idx_paths(&e);
    assert_eq!(
        std::fs::canonicalize(images).unwrap(),
        std::fs::canonicalize(dir.path().join("elsewhere/d/train-images.gz")).unwrap()
    );

    let missing = BASE.replace("[data]\n", "[data]\nroot = \"nowhere\"\n");
    let path = write_spec(&spec_dir, &missing);
    let err = spec::load(&path, &[]).unwrap_err().to_string();
    assert!(err.contains("no such folder"), "{err}");
    assert!(err.contains("= key: data.root"), "{err}");
}

struct PathBufPair(PathBuf, #[allow(dead_code)] PathBuf);

fn idx_paths(e: &Experiment) -> PathBufPair {
    match &e.base.data.train {
        spec::SourceSpec::Idx { images, labels } => PathBufPair(
            std::path::absolute(images).unwrap(),
            std::path::absolute(labels).unwrap(),
        ),
        other => panic!("not IDX: {other:?}"),
    }
}

#[test]
fn a_jobs_spec_toml_validates_and_trains_the_same_job_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_mnist(dir.path(), 600, 200);
    let text = format!(
        "name = \"again\"\nseed = 3\n{data}\n[split]\nfolds = 2\n[model]\narchitecture = \"cnn\"\nlayers = [{{ type = \"conv\", filters = 4, kernel = 3, padding = 1 }}, {{ type = \"relu\" }}, {{ type = \"max_pool\", size = 2 }}]\n[train]\nepochs = 1\nbatch_size = 32\n[sweep]\nrepeats = 2\n"
    );
    let spec_path = write_spec(dir.path(), &text);
    let r = run_spec(dir.path(), &spec_path, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let experiment = dir.path().join("runs/again");
    let ledger = common::cli::ledger(&experiment);
    let jobs: Vec<String> = ledger["jobs"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(jobs.len(), 4, "2 folds × 2 repeats");

    let job = experiment.join(&jobs[1]);
    let job_spec = job.join("spec.toml");
    let v = assay(dir.path(), &["validate", job_spec.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert!(
        v.stderr
            .contains("1 trial(s) × 2 fold(s) × 2 repeat(s) = 4 job(s)"),
        "{}",
        v.stderr
    );

    let other = tempfile::tempdir().unwrap();
    let r = assay(
        other.path(),
        &["run", job_spec.to_str().unwrap(), "--runs-dir", "elsewhere"],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    for id in &jobs {
        let a = metrics(&experiment.join(id));
        let b = metrics(&other.path().join("elsewhere/again").join(id));
        assert_eq!(a["final"], b["final"], "job {id}");
        let epochs = |m: &serde_json::Value| {
            let mut h = m["history"].clone();
            for epoch in h.as_array_mut().unwrap() {
                epoch.as_object_mut().unwrap().remove("seconds");
            }
            h
        };
        assert_eq!(epochs(&a), epochs(&b), "job {id}");
    }
}

#[test]
fn every_architecture_and_list_layer_round_trips() {
    let models = [
        "[model]\narchitecture = \"resnet\"\ndepth = 20\n",
        "[model]\narchitecture = \"resnet\"\ndepth = 18\nwidth = 0.25\nstem = \"small\"\nzero_init_residual = true\ndropout = 0.1\ndrop_path = 0.05\n",
        "[model]\narchitecture = \"efficientnet_lite\"\nvariant = 2\n",
        "[model]\narchitecture = \"mobilenet_v2\"\nwidth = 0.5\ndropout = 0.1\n",
        "[model]\narchitecture = \"vit\"\npatch = 7\ndepth = 2\nwidth = 24\nheads = 3\nmlp_ratio = 2.0\ndrop_path = 0.1\n",
        "[model]\narchitecture = \"cnn\"\nlayers = [\n  { type = \"conv\", filters = 4, kernel = 3, padding = 1, groups = 1 },\n  { type = \"residual\", layers = [{ type = \"conv\", filters = 4, kernel = 3, padding = 1, groups = 4 }, { type = \"layer_norm\" }, { type = \"hard_swish\" }] },\n  { type = \"relu6\" },\n  { type = \"silu\" },\n]\n",
    ];
    let base = &BASE[..BASE.find("[model]").unwrap()];
    for model in models {
        let text = format!("{base}{model}");
        let dir = tempfile::tempdir().unwrap();
        touch_data_files(&text, dir.path());
        let e = load_in(
            dir.path(),
            &text,
            &["data.channels=3", "data.image_size=[56, 56]"],
        );
        assert_round_trips(&e, model);
    }
    let sweep =
        "[sweep]\n[sweep.parameters]\n\"model.depth\" = [20, 32]\n\"model.width\" = [0.5, 1.0]\n";
    let text = format!("{base}{}{sweep}", models[0]);
    let dir = tempfile::tempdir().unwrap();
    touch_data_files(&text, dir.path());
    let e = load_in(dir.path(), &text, &[]);
    assert_eq!(plan::expand(&e).jobs.len(), 4);
    assert_round_trips(&e, "a resnet sweep");
}
