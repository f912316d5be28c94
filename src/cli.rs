//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "assay", version, about = "A declarative experiment runner for image classification", long_about = None, disable_help_subcommand = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command that reads a spec.
#[derive(Args, Debug)]
pub struct SpecArgs {
    /// The experiment spec (TOML)
    pub spec: PathBuf,
    /// Override a spec value, e.g. --set optimizer.lr=0.01 or --set model.layers[0].filters=32 (repeatable)
    #[arg(long = "set", value_name = "KEY.PATH=VALUE")]
    pub overrides: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a spec and print it resolved (defaults filled in); exit 2 if it is invalid
    Validate {
        #[command(flatten)]
        spec: SpecArgs,
        /// Also load the data as `assay run` would and report its errors
        #[arg(long)]
        data: bool,
    },
    /// Print the jobs a spec expands to, without running anything
    Plan {
        #[command(flatten)]
        spec: SpecArgs,
        /// Also load the data as `assay run` would and report its errors
        #[arg(long)]
        data: bool,
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
        /// Folder holding <experiment name>/ from an earlier run: each job is marked as
        /// finished, continued for more epochs, or new
        #[arg(long, default_value = "runs", value_name = "DIR")]
        runs_dir: PathBuf,
    },
    /// Run an experiment: every job of the plan, resuming where an earlier run stopped
    Run {
        #[command(flatten)]
        spec: SpecArgs,
        /// Folder that receives <experiment name>/ (also the TensorBoard log dir)
        #[arg(long, default_value = "runs", value_name = "DIR")]
        runs_dir: PathBuf,
        /// Jobs run side by side, each in its own worker process (default: one single-threaded
        /// job per thread, fewer when fewer jobs are left)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        jobs: Option<u16>,
        /// CPU threads shared by the running jobs (default: all cores)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// Threads per job preparing (and augmenting) training batches ahead of the trainer;
        /// results do not depend on it
        #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        loader_threads: u16,
        /// Where jobs run: `cpu`, GPUs `cuda:0,cuda:1`, or `cuda:all` (default: the spec's
        /// `run.devices`, else `cpu`); GPUs need a build with `--features cuda`
        #[arg(long, value_name = "LIST")]
        devices: Option<String>,
        /// Jobs sharing one GPU at once (default: the spec's `run.per_device`, else 1)
        #[arg(long, value_name = "K", value_parser = clap::value_parser!(u16).range(1..=64))]
        per_device: Option<u16>,
        /// Extra attempts for a job whose worker crashed (divergence is not retried)
        #[arg(long, default_value_t = 1, value_name = "N")]
        retries: u32,
        /// Continue although the spec changed since the experiment started
        #[arg(long, conflicts_with = "fresh")]
        force: bool,
        /// Start the experiment afresh; the old folder is moved aside, not deleted
        #[arg(long)]
        fresh: bool,
        /// Run every failed job again, whatever failed it (crashes and I/O errors are retried
        /// anyway; this adds divergence and other failures of the job itself)
        #[arg(long)]
        retry_failed: bool,
        #[command(flatten)]
        slurm: SlurmArgs,
    },
    /// Show an experiment's jobs and their states (pending, running, done, failed, pruned)
    Status {
        /// The experiment folder, e.g. runs/quickstart-sweep
        run_dir: PathBuf,
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Write report.{json,md,csv,html} into an experiment folder: ranked trials, paired tests, plots
    Report {
        /// The experiment folder, e.g. runs/quickstart-sweep
        run_dir: PathBuf,
    },
    /// Rank the trials of several experiments together (same best metric and data); prints Markdown
    Compare {
        /// Experiment folders, e.g. runs/a runs/b
        #[arg(required = true, num_args = 1..)]
        run_dirs: Vec<PathBuf>,
        /// Also write compare.{md,json,csv,html} into this folder
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Cancel an experiment's queued and running Slurm jobs; finished jobs are kept, the rest
    /// continue from their checkpoints on the next `assay run`
    Cancel {
        /// The experiment folder, e.g. runs/quickstart-sweep
        run_dir: PathBuf,
    },
    /// Print the help of assay, or of one command (`assay help run`)
    Help {
        /// The command whose help to print
        command: Option<String>,
    },
    /// Run one job of a planned experiment (started by `assay run`)
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        experiment_dir: PathBuf,
        #[arg(long)]
        job: String,
        #[arg(long, default_value_t = 1)]
        threads: u16,
        #[arg(long, default_value_t = 2)]
        loader_threads: u16,
        /// Rung epochs at which to ask the orchestrator whether to go on
        #[arg(long, value_delimiter = ',')]
        rungs: Vec<usize>,
        #[arg(long)]
        spec_revision: Option<String>,
        /// `cpu`, or the GPU `cuda:N` (the only one `CUDA_VISIBLE_DEVICES` lets it see)
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Run as a Slurm task: report to the job folder's files, decide at rungs alone
        #[arg(long)]
        detached: bool,
        /// Successive halving's reduction factor, for a detached worker's rung decisions
        #[arg(long, default_value_t = 3)]
        reduction_factor: usize,
    },
    /// Render a PNG grid of training samples: the original (after the eval list), then augmented versions
    Preview {
        #[command(flatten)]
        spec: SpecArgs,
        /// The PNG to write
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Rows: the first N training images
        #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        samples: u32,
        /// Augmented versions per sample (epochs 1..=K)
        #[arg(long, default_value_t = 5, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=100))]
        variants: u32,
        /// Seed of the random draws (default: the spec's seed)
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Measure training and data-loading throughput (images/s) of the spec's model and batch size
    Bench {
        #[command(flatten)]
        spec: SpecArgs,
        /// Timed training steps (after 3 warm-up steps)
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
        steps: u32,
        /// CPU threads for tensor math (default: all cores)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// Threads preparing batches in the loader measurements
        #[arg(long, default_value_t = 2, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        loader_threads: u16,
        /// Where the training steps run: `cpu` or one GPU `cuda:N` (a build with `--features cuda`)
        #[arg(long, default_value = "cpu", value_name = "DEVICE")]
        device: String,
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Predict the classes of image files with a trained model
    Predict {
        /// A job folder, an experiment folder (its refit job, else the best trial's best job), or a
        /// spec whose [model] pretrained weights keep their own head (used untrained)
        model: PathBuf,
        /// Image files, folders (searched at any depth) or quoted glob patterns
        #[arg(required = true, value_name = "IMAGES")]
        images: Vec<PathBuf>,
        /// Classes shown per image (multiclass)
        #[arg(long, default_value_t = 3, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
        top_k: u32,
        /// Print JSON: one object per image
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print CSV: the columns of the job's predictions.csv without split and true
        #[arg(long)]
        csv: bool,
        /// Images per forward pass (default: the job's train.eval_batch_size)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=65536))]
        batch_size: Option<u32>,
        /// CPU threads for decoding and tensor math (default: all cores)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
    },
    /// Every metric of a trained model's task on another data set
    Evaluate {
        /// A job folder, or an experiment folder (its refit job, else the best trial's best job)
        model: PathBuf,
        /// The data: an image folder, a CSV manifest, or an IDX images file (with --labels)
        #[arg(long, value_name = "PATH")]
        data: PathBuf,
        /// The IDX labels file
        #[arg(long, value_name = "FILE")]
        labels: Option<PathBuf>,
        /// The data's format (default: the one the model was trained on)
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Print the metrics as JSON (the shape of `final.test` in metrics.json) instead of a table
        #[arg(long)]
        json: bool,
        /// Also write the JSON to FILE
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// CPU threads for decoding and tensor math (default: all cores)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
    },
}

/// `assay run`'s Slurm options; each overrides the spec's `[run]` or `[slurm]` key of the same name.
#[derive(Args, Debug, Default)]
#[command(next_help_heading = "Slurm")]
pub struct SlurmArgs {
    /// Where the jobs run: `local` (worker processes here) or `slurm` (one job array per
    /// submission) [default: the spec's run.backend, else local]
    #[arg(long, value_parser = ["local", "slurm"])]
    pub backend: Option<String>,
    /// Print the batch scripts and the sbatch commands, submit nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Stay after submitting and show the jobs' progress until the array ends
    #[arg(long)]
    pub wait: bool,
    /// sbatch --partition
    #[arg(long, value_name = "NAME")]
    pub partition: Option<String>,
    /// sbatch --time (e.g. 04:00:00 or 2-00:00:00)
    #[arg(long, value_name = "LIMIT")]
    pub time: Option<String>,
    /// sbatch --cpus-per-task: also each job's compute threads
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub cpus_per_task: Option<u16>,
    /// sbatch --mem, per job (e.g. 8G)
    #[arg(long, value_name = "AMOUNT")]
    pub mem: Option<String>,
    /// GPUs per job: sbatch --gres=gpu:N
    #[arg(long, value_name = "N")]
    pub gpus_per_job: Option<u16>,
    /// sbatch --account
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// sbatch --qos
    #[arg(long, value_name = "NAME")]
    pub qos: Option<String>,
    /// At most N of the array's jobs at once (--array=…%N)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_running: Option<u32>,
    /// One more sbatch argument, passed as written, e.g. --sbatch-arg=--constraint=a100 (repeatable)
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// The orchestrator's turn taken by a submission's follow-up job
    #[arg(long, hide = true)]
    pub slurm_follow_up: bool,
}

/// The data formats `assay evaluate` reads, as `[data] format` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    #[value(name = "image-folder")]
    ImageFolder,
    Idx,
    Csv,
}

/// The backend and the Slurm request: the spec's `[run]` and `[slurm]`, each flag given
/// overriding its key; a flag's bad value is named.
pub fn launch_options(
    spec: &assay::spec::LaunchSpec,
    a: &SlurmArgs,
) -> Result<(assay::spec::Backend, assay::spec::SlurmSpec), String> {
    use assay::spec::launch::{check_time, check_word, memory_bytes};
    use assay::spec::Backend;
    let backend = match a.backend.as_deref() {
        Some("slurm") => Backend::Slurm,
        Some(_) => Backend::Local,
        None => spec.backend,
    };
    let mut s = spec.slurm.clone();
    let word = |flag: &str, v: &Option<String>| -> Result<Option<String>, String> {
        v.as_ref()
            .map(|v| {
                check_word(v)
                    .map(|_| v.clone())
                    .map_err(|e| format!("--{flag}: {e}"))
            })
            .transpose()
    };
    if let Some(v) = word("partition", &a.partition)? {
        s.partition = Some(v);
    }
    if let Some(v) = word("account", &a.account)? {
        s.account = Some(v);
    }
    if let Some(v) = word("qos", &a.qos)? {
        s.qos = Some(v);
    }
    if let Some(t) = word("time", &a.time)? {
        check_time(&t).map_err(|e| format!("--time: {e} (e.g. 30, 04:00:00 or 2-00:00:00)"))?;
        s.time = Some(t);
    }
    if let Some(m) = word("mem", &a.mem)? {
        memory_bytes(&m)
            .ok_or_else(|| format!("--mem: \"{m}\" is not an amount of memory (e.g. 8G, 512M)"))?;
        s.mem = Some(m);
    }
    if let Some(c) = a.cpus_per_task {
        s.cpus_per_task = c.into();
    }
    if let Some(g) = a.gpus_per_job {
        s.gpus_per_job = g.into();
    }
    if let Some(k) = a.max_running {
        s.max_running = Some(k as usize);
    }
    for arg in &a.sbatch_args {
        check_word(arg).map_err(|e| format!("--sbatch-arg: {e}"))?;
        if !arg.starts_with('-') {
            return Err(format!(
                "--sbatch-arg: \"{arg}\" is not an sbatch option; write it with its value as one word, e.g. --sbatch-arg=--constraint=a100"
            ));
        }
        s.sbatch_args.push(arg.clone());
    }
    Ok((backend, s))
}

/// The arguments (after the executable) of a Slurm submission's follow-up job: this `assay
/// run` again, on absolute paths, with its overrides and Slurm flags, as a follow-up.
pub fn follow_up_command(
    spec: &SpecArgs,
    runs_dir: &std::path::Path,
    retries: u32,
    loader_threads: u16,
    a: &SlurmArgs,
) -> anyhow::Result<Vec<String>> {
    let absolute = |p: &std::path::Path| -> anyhow::Result<String> {
        Ok(std::path::absolute(p)
            .map_err(|e| anyhow::anyhow!("cannot make {} absolute: {e}", p.display()))?
            .display()
            .to_string())
    };
    let mut args = vec![
        "run".to_string(),
        absolute(&spec.spec)?,
        "--runs-dir".into(),
        absolute(runs_dir)?,
        "--backend".into(),
        "slurm".into(),
        "--retries".into(),
        retries.to_string(),
        "--loader-threads".into(),
        loader_threads.to_string(),
    ];
    for o in &spec.overrides {
        args.push(format!("--set={o}"));
    }
    let mut flag = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            args.push(format!("--{name}={v}"));
        }
    };
    flag("partition", a.partition.clone());
    flag("time", a.time.clone());
    flag("cpus-per-task", a.cpus_per_task.map(|v| v.to_string()));
    flag("mem", a.mem.clone());
    flag("gpus-per-job", a.gpus_per_job.map(|v| v.to_string()));
    flag("account", a.account.clone());
    flag("qos", a.qos.clone());
    flag("max-running", a.max_running.map(|v| v.to_string()));
    for s in &a.sbatch_args {
        args.push(format!("--sbatch-arg={s}"));
    }
    args.push("--slurm-follow-up".into());
    Ok(args)
}
