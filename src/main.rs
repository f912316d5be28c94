//! The `assay` binary: parses arguments, dispatches, and maps errors to messages and exit codes
//! (0 success, 1 some jobs failed, 2 invalid spec, data or usage, 3 internal error).

mod cli;

use std::process::ExitCode;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use assay::exec::orchestrator::{self, RunRefused};
use assay::exec::progress::{say, shell_word, Progress};
use assay::exec::worker::{exit_code, run_worker, WorkerOptions};
use assay::exec::{bench, prepare::PrepareError, status};
use assay::report::ReportError;
use assay::spec::{self, SpecError};
use assay::store::ExperimentDir;
use clap::Parser;
use cli::{Cli, Command, SpecArgs};

const EXIT_JOBS_FAILED: u8 = 1;
const EXIT_INVALID: u8 = 2;
const EXIT_INTERNAL: u8 = 3;

/// The error and its causes, `: `-separated, leaving out a cause whose text the message
/// before it already holds (errors that print their source themselves).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

/// The devices local jobs run on, from `--devices` or the spec's `run.devices`, checked against
/// this build and this machine before anything runs. Slurm jobs get theirs from the cluster.
fn run_devices(
    launch: &spec::LaunchSpec,
    flag: Option<&str>,
    backend: spec::Backend,
    slurm: &spec::SlurmSpec,
    spec_path: &std::path::Path,
) -> anyhow::Result<Vec<assay::devices::JobDevice>> {
    use assay::devices::{cuda_device_count, DeviceRequest, JobDevice};
    let (request, source) = match flag {
        Some(text) => (
            DeviceRequest::parse(text).map_err(|e| RunRefused::Usage(format!("--devices: {e}")))?,
            "--devices".to_string(),
        ),
        None => (
            launch.devices.clone(),
            format!("run.devices in {}", spec_path.display()),
        ),
    };
    if backend == spec::Backend::Slurm {
        // Tasks with GPUs train on them: with this assay, it must have been built for CUDA.
        let gpus = slurm.gpus_per_job > 0;
        if gpus && slurm.executable.is_none() && assay::devices::fake_gpus().is_none() {
            if let Err(e) = cuda_device_count(&DeviceRequest::Cuda(vec![0])) {
                if matches!(e, assay::devices::DevicesError::NotBuilt(_)) {
                    return Err(RunRefused::Usage(format!(
                        "slurm.gpus_per_job = {} gives each task a GPU, but this assay was built without CUDA: rebuild it with `cargo build --release --features cuda`, or name one that was in slurm.executable",
                        slurm.gpus_per_job
                    ))
                    .into());
                }
            }
        }
        return Ok(vec![JobDevice::Cpu]);
    }
    request
        .resolve(cuda_device_count(&request))
        .map_err(|e| RunRefused::Usage(format!("{source}: {e}")).into())
}

/// `bench --device`: `cpu` or one GPU that this build and machine have.
fn bench_device(text: &str) -> anyhow::Result<assay::devices::JobDevice> {
    use assay::devices::{cuda_device_count, DeviceRequest, JobDevice};
    let device = JobDevice::parse(text).map_err(|e| RunRefused::Usage(format!("--device: {e}")))?;
    let request = match device {
        JobDevice::Cpu => DeviceRequest::Cpu,
        JobDevice::Cuda(i) => DeviceRequest::Cuda(vec![i]),
    };
    request
        .resolve(cuda_device_count(&request))
        .map_err(|e| RunRefused::Usage(format!("--device: {e}")))?;
    Ok(device)
}

/// Training steps reuse the memory of the step before (see `assay::memory`).
#[global_allocator]
static ALLOCATOR: assay::memory::StepAllocator = assay::memory::StepAllocator;

fn main() -> ExitCode {
    assay::memory::keep_freed_memory();
    // Like other command-line tools, end quietly when the reader of our output goes away
    // (`assay plan … | head`) instead of panicking in `println!`. A run killed this way leaves
    // its last checkpoints, and the same command resumes it.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if let Err(e) = assay::model::ops::Kernels::from_env() {
        eprintln!("error: {e}");
        return ExitCode::from(EXIT_INVALID);
    }
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(spec_error) = e.downcast_ref::<SpecError>() {
                eprint!("{spec_error}");
                return ExitCode::from(EXIT_INVALID);
            }
            eprintln!("error: {}", error_text(&e));
            if e.downcast_ref::<PrepareError>().is_some()
                || e.downcast_ref::<RunRefused>().is_some()
                || is_bad_model_input(&e)
                || e.downcast_ref::<ReportError>()
                    .is_some_and(ReportError::is_invalid_input)
            {
                ExitCode::from(EXIT_INVALID)
            } else {
                ExitCode::from(EXIT_INTERNAL)
            }
        }
    }
}

/// Whether `e` is the user's input to `predict` or `evaluate` (a folder that holds no model,
/// missing or undecodable images, data that does not fit the model) rather than our failure.
fn is_bad_model_input(e: &anyhow::Error) -> bool {
    use assay::infer::{evaluate::EvaluateError, predict::PredictError};
    e.downcast_ref::<assay::infer::trained::TrainedError>()
        .is_some()
        || e.downcast_ref::<assay::infer::images::ImagesError>()
            .is_some()
        || matches!(
            e.downcast_ref::<PredictError>(),
            Some(PredictError::Data(_))
        )
        || matches!(
            e.downcast_ref::<EvaluateError>(),
            Some(EvaluateError::Data(_) | EvaluateError::Usage(_))
        )
}

/// Sets the thread count for candle and rayon; must run before any tensor work.
fn set_threads(threads: Option<u16>) -> usize {
    let n = threads
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    // assay's own convolution, pooling and dense ops split their work on rayon's pool; candle's
    // remaining element-wise ops are too small to gain from threads and, given a pool of their
    // own, compete with rayon's: LeNet on 2 threads trains at 7,800–8,900 images/s with this
    // at 1 and 6,200–7,500 with it at 2 (`assay bench --threads 2`).
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    // Only fails if the pool already exists, in which case it was built from the same variable.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    n
}

fn load(args: &SpecArgs) -> Result<spec::Experiment, SpecError> {
    spec::load(&args.spec, &args.overrides)
}

/// Loads the experiment's data as `assay run` would (with every data error it would report).
fn check_data(e: &spec::Experiment) -> Result<assay::exec::prepare::DataCheck, PrepareError> {
    set_threads(None);
    assay::exec::prepare::check(&e.base)
}

fn print_data_check(c: &assay::exec::prepare::DataCheck) {
    for (path, reason) in &c.skipped {
        eprintln!(
            "warning: skipped corrupt image {}: {reason}",
            path.display()
        );
    }
    for w in &c.warnings {
        eprintln!("warning: {w}");
    }
    let [channels, height, width] = c.shape;
    eprintln!(
        "data: {} images to train and validate on ({} train + {} validation in the first job), {} test; {} classes [{}]; {channels}×{height}×{width}; data hash {}",
        c.pool,
        c.train,
        c.val,
        c.test,
        c.classes.len(),
        c.classes.join(", "),
        &c.data_hash[..c.data_hash.len().min(12)]
    );
}

fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Validate { spec, data } => {
            let e = load(&spec)?;
            let checked = data.then(|| check_data(&e)).transpose()?;
            print!("{}", spec::experiment_text(&e));
            let plan = assay::plan::expand(&e);
            eprintln!(
                "{} is valid: {} trial(s) × {} fold(s) × {} repeat(s) = {} job(s)",
                spec.spec.display(),
                plan.trials,
                plan.folds,
                plan.repeats,
                plan.jobs.len()
            );
            if let Some(cost) = assay::model::cost::for_model(
                &e.base.model,
                e.base.input_shape(),
                e.base.task,
                checked.as_ref().map(|c| c.classes.len()).or(e
                    .base
                    .data
                    .classes
                    .as_ref()
                    .map(Vec::len)),
            ) {
                let head = if checked.is_none() && e.base.data.classes.is_none() {
                    " (a 2-class head until --data reads the classes)"
                } else {
                    ""
                };
                eprintln!(
                    "model: {} parameters{head}, {:.1} MFLOPs forward per image; training at batch {} needs about {}",
                    cost.parameters,
                    cost.forward_flops_per_image as f64 / 1e6,
                    e.base.train.batch_size,
                    assay::model::cost::human_bytes(cost.training_bytes(e.base.train.batch_size))
                );
            }
            if let Some(c) = checked {
                print_data_check(&c);
            }
            Ok(0)
        }
        Command::Plan {
            spec,
            json,
            data,
            runs_dir,
        } => {
            let e = load(&spec)?;
            if data {
                print_data_check(&check_data(&e)?);
            }
            let plan = assay::plan::expand(&e);
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                let dir = assay::store::ExperimentDir::new(&runs_dir, &plan.experiment);
                let earlier = assay::exec::orchestrator::earlier_plan(&dir);
                let growth = earlier.as_ref().map(|(last, ledger)| {
                    assay::exec::orchestrator::growth_of(last, ledger, &plan)
                });
                print!("{}", assay::plan::render(&plan, growth.as_ref()));
                if let Some(g) = growth.filter(|g| !g.unchanged()) {
                    let verdict = if g.only_grows() {
                        "`assay run` runs only what is new"
                    } else {
                        "`assay run` refuses it without --force"
                    };
                    println!(
                        "compared with {}: {}; {verdict}",
                        dir.root.display(),
                        g.summary()
                    );
                }
            }
            Ok(0)
        }
        Command::Run {
            spec,
            runs_dir,
            jobs,
            threads,
            loader_threads,
            devices,
            per_device,
            retries,
            force,
            fresh,
            retry_failed,
            slurm,
        } => {
            let e = load(&spec)?;
            let (backend, slurm_spec) =
                cli::launch_options(&e.base.launch, &slurm).map_err(RunRefused::Usage)?;
            if (slurm.dry_run || slurm.wait) && backend != spec::Backend::Slurm {
                return Err(RunRefused::Usage(
                    "--dry-run and --wait are for Slurm: add --backend slurm, or set run.backend = \"slurm\" in the spec".into(),
                )
                .into());
            }
            let devices = run_devices(
                &e.base.launch,
                devices.as_deref(),
                backend,
                &slurm_spec,
                &spec.spec,
            )?;
            let per_device = per_device.map_or(e.base.launch.per_device, usize::from);
            let precision = e.base.train.precision;
            if !precision.is_f32()
                && devices.iter().all(|d| *d == assay::devices::JobDevice::Cpu)
                && backend == spec::Backend::Local
            {
                return Err(RunRefused::Usage(format!(
                    "train.precision = \"{}\" in {} is mixed precision for GPUs: run on one with --devices cuda:0 (or run.devices), or use \"f32\" on the CPU",
                    precision.name(),
                    spec.spec.display()
                ))
                .into());
            }
            assay::store::fault::arm_death_from_env();
            let threads = set_threads(threads);
            let follow_up_command =
                cli::follow_up_command(&spec, &runs_dir, retries, loader_threads, &slurm)?;
            let opts = orchestrator::RunOptions {
                runs_dir,
                jobs: jobs.map(usize::from),
                loader_threads: loader_threads.into(),
                threads,
                retries,
                force,
                fresh,
                retry_failed,
                backend,
                devices,
                per_device,
                slurm: slurm_spec,
                dry_run: slurm.dry_run,
                wait: slurm.wait,
                follow_up: slurm.slurm_follow_up,
                follow_up_command,
            };
            // A closed stdout must not end the run: its prints carry on without a reader.
            // SAFETY: changing the disposition of SIGPIPE; no handler runs our code.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            }
            let mut progress = Progress::new();
            let summary = orchestrator::run(&e, &spec.spec, &opts, &mut progress)?;
            if let Some(text) = &summary.dry_run {
                print!("{text}");
                return Ok(0);
            }
            if summary.left_to_another {
                return Ok(0);
            }
            for (job, reason) in &summary.failed {
                say(&format!("  failed: {job}: {reason}"));
            }
            let dir = shell_word(&summary.experiment_dir);
            if summary.in_slurm > 0 {
                say(&format!(
                    "{} job(s) in Slurm; follow them with `assay status {dir}` (or `squeue --me`), stop them with `assay cancel {dir}`; the report is written when they have ended",
                    summary.in_slurm
                ));
                say(&format!(
                    "results in {}; TensorBoard: tensorboard --logdir {dir}",
                    summary.experiment_dir.display()
                ));
                return Ok(if summary.interrupted { 130 } else { 0 });
            }
            say(&format!(
                "results in {}; TensorBoard: tensorboard --logdir {dir}",
                summary.experiment_dir.display(),
            ));
            if !summary.interrupted {
                match assay::report::write_report(&summary.experiment_dir) {
                    Ok(report) => {
                        for line in assay::report::run_end::lines(&report) {
                            say(&line);
                        }
                        say(&format!(
                            "report: {}",
                            summary.experiment_dir.join("report.html").display()
                        ))
                    }
                    Err(e) => eprintln!("warning: no report: {e}"),
                }
            }
            if summary.interrupted {
                say("interrupted: run the same command again to resume");
                return Ok(130);
            }
            Ok(if summary.failed.is_empty() {
                0
            } else {
                EXIT_JOBS_FAILED
            })
        }
        Command::Cancel { run_dir } => {
            let c = assay::exec::cancel::cancel(&run_dir)?;
            print!("{}", assay::exec::cancel::render(&c));
            Ok(0)
        }
        Command::Help { command } => {
            use clap::CommandFactory;
            let mut args = vec!["assay".to_string()];
            args.extend(command);
            args.push("--help".into());
            match Cli::command().try_get_matches_from(args) {
                Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
                    print!("{}", e.render());
                    Ok(0)
                }
                Err(e) => {
                    eprint!("{}", e.render());
                    Ok(EXIT_INVALID)
                }
                Ok(_) => Ok(0),
            }
        }
        Command::Status { run_dir, json } => {
            let s = status::status(&run_dir)?;
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", status::render(&s));
            }
            Ok(0)
        }
        Command::Report { run_dir } => {
            let r = assay::report::write_report(&run_dir)?;
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", assay::report::markdown::render(&r));
            println!(
                "\nwritten: {}/report.{{json,md,csv,html}}",
                run_dir.display()
            );
            Ok(0)
        }
        Command::Compare { run_dirs, out } => {
            let r = assay::report::compare(&run_dirs, out.as_deref())?;
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            print!("{}", assay::report::markdown::render(&r));
            if let Some(out) = out {
                eprintln!("written: {}/compare.{{json,md,csv,html}}", out.display());
            }
            Ok(0)
        }
        Command::Worker {
            experiment_dir,
            job,
            threads,
            loader_threads,
            rungs,
            spec_revision,
            device,
            detached,
            reduction_factor,
        } => {
            let device = assay::devices::JobDevice::parse(&device)
                .map_err(|e| RunRefused::Usage(format!("--device: {e}")))?;
            let threads = set_threads(Some(threads));
            let stop = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(signal, stop.clone())?;
            }
            let experiment = ExperimentDir {
                root: experiment_dir,
            };
            let opts = WorkerOptions {
                experiment: &experiment,
                job_id: &job,
                threads,
                loader_threads: loader_threads.into(),
                rungs,
                spec_git_revision: spec_revision,
                device,
                stop,
                detached: detached.then_some(assay::exec::worker::Detached { reduction_factor }),
            };
            let end = run_worker(&opts)?;
            Ok(exit_code(&end) as u8)
        }
        Command::Preview {
            spec,
            out,
            samples,
            variants,
            seed,
        } => {
            let e = load(&spec)?;
            let seed = seed.unwrap_or(e.base.seed);
            let p = assay::exec::preview::write(
                &e.base,
                &out,
                samples as usize,
                variants as usize,
                seed,
            )?;
            println!(
                "{}: {} sample(s) × (original + {} augmented), {}×{} px",
                out.display(),
                p.samples,
                p.variants,
                p.width,
                p.height
            );
            Ok(0)
        }
        Command::Predict {
            model,
            images,
            top_k,
            json,
            csv,
            batch_size,
            threads,
        } => {
            use assay::infer::{images as image_files, predict, trained};
            set_threads(threads);
            let files = image_files::collect(&images)?;
            let (m, choice) = trained::open(&model, &candle_core::Device::Cpu)?;
            eprintln!("{}", trained::describe_choice(&m, &choice));
            let started = std::time::Instant::now();
            let p = predict::predict(&m, &files, batch_size.map(|b| b as usize))?;
            let format = if json {
                predict::Format::Json
            } else if csv {
                predict::Format::Csv
            } else {
                predict::Format::Text
            };
            print!("{}", predict::render(&m, &p, format, top_k as usize));
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "{} image(s) in {seconds:.2} s: {:.0} images/s (decoding {:.2} s, model {:.2} s)",
                files.len(),
                files.len() as f64 / seconds.max(1e-9),
                p.decode_seconds,
                p.model_seconds
            );
            Ok(0)
        }
        Command::Evaluate {
            model,
            data,
            labels,
            format,
            json,
            out,
            threads,
        } => {
            use assay::infer::{evaluate, trained};
            set_threads(threads);
            let (m, choice) = trained::open(&model, &candle_core::Device::Cpu)?;
            eprintln!("{}", trained::describe_choice(&m, &choice));
            let format = format.map(|f| match f {
                cli::FormatArg::ImageFolder => spec::DataFormat::ImageFolder,
                cli::FormatArg::Idx => spec::DataFormat::Idx,
                cli::FormatArg::Csv => spec::DataFormat::Csv,
            });
            let e = evaluate::evaluate(
                &m,
                &evaluate::EvalData {
                    path: data,
                    labels,
                    format,
                },
            )?;
            let metrics = e.split_metrics();
            let text = serde_json::to_string_pretty(&metrics)? + "\n";
            if let Some(out) = &out {
                assay::store::atomic::write_atomic(out, text.as_bytes())
                    .map_err(|err| anyhow::anyhow!("cannot write {}: {err}", out.display()))?;
            }
            if json {
                print!("{text}");
            } else {
                print!("{}", evaluate::render_table(&metrics));
            }
            eprintln!(
                "{} image(s): loaded in {:.2} s, evaluated in {:.2} s ({:.0} images/s)",
                e.images,
                e.load_seconds,
                e.model_seconds,
                e.images as f64 / e.model_seconds.max(1e-9)
            );
            if let Some(out) = &out {
                eprintln!("written: {}", out.display());
            }
            Ok(0)
        }
        Command::Bench {
            spec,
            steps,
            threads,
            loader_threads,
            device,
            json,
        } => {
            let e = load(&spec)?;
            let device = bench_device(&device)?;
            if !e.base.train.precision.is_f32() && device == assay::devices::JobDevice::Cpu {
                return Err(RunRefused::Usage(format!(
                    "train.precision = \"{}\" is mixed precision for GPUs: bench it with --device cuda:0",
                    e.base.train.precision.name()
                ))
                .into());
            }
            assay::store::fault::arm_death_from_env();
            let threads = set_threads(threads);
            let r = bench::bench(
                &e.base,
                steps as usize,
                threads,
                loader_threads.into(),
                device,
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{}: {} parameters, batch {}, on {} ({} kernels), {} thread(s), {} steps",
                    r.experiment,
                    r.parameters,
                    r.batch_size,
                    r.device,
                    r.kernels,
                    r.threads,
                    r.steps
                );
                println!(
                    "training: {:>10.0} images/s (forward + backward + optimizer step, batches ready)",
                    r.train_images_per_sec
                );
                println!(
                    "  fed by the loader: {:>10.0} images/s, waiting for data {:.1}% of the time",
                    r.train_with_loader_images_per_sec,
                    100.0 * r.data_wait_fraction
                );
                println!(
                    "loading:  {:>10.0} images/s ({} loader thread(s), {:.1}× training)",
                    r.load_images_per_sec, r.loader_threads, r.load_to_train_ratio
                );
                println!(
                    "decoding: {:>10.0} images/s (files into the cache, once per run)",
                    r.decode_images_per_sec
                );
                println!(
                    "memory:   {:>10.0} MiB peak after training ({:.0} MiB with the data decoded, before it); {:.0} page faults per step",
                    r.max_rss_after_training_mib, r.rss_before_training_mib, r.train_page_faults_per_step
                );
            }
            Ok(0)
        }
    }
}
