//! The `assay` binary: parses arguments, dispatches, and maps errors to messages and exit codes
//! (0 success, 1 some jobs failed, 2 invalid spec, data or usage, 3 internal error).

mod cli;

use std::process::ExitCode;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use assay::exec::orchestrator::{self, RunRefused};
use assay::exec::progress::Progress;
use assay::exec::worker::{run_worker, WorkerOptions};
use assay::exec::{bench, prepare::PrepareError, status};
use assay::report::ReportError;
use assay::spec::{self, SpecError};
use assay::store::ExperimentDir;
use clap::Parser;
use cli::{Cli, Command, SpecArgs};

const EXIT_JOBS_FAILED: u8 = 1;
const EXIT_INVALID: u8 = 2;
const EXIT_INTERNAL: u8 = 3;

fn main() -> ExitCode {
    // Like other command-line tools, end quietly when the reader of our output goes away
    // (`assay plan … | head`) instead of panicking in `println!`. A run killed this way leaves
    // its last checkpoints, and the same command resumes it.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(spec_error) = e.downcast_ref::<SpecError>() {
                eprint!("{spec_error}");
                return ExitCode::from(EXIT_INVALID);
            }
            eprintln!("error: {e:#}");
            if e.downcast_ref::<PrepareError>().is_some()
                || e.downcast_ref::<RunRefused>().is_some()
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

fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Validate { spec } => {
            let e = load(&spec)?;
            println!("{}", toml::to_string_pretty(&e.base)?);
            if let Some(sweep) = &e.sweep {
                println!(
                    "# sweep: {} trial(s)\n{}",
                    e.trials.len(),
                    toml::to_string_pretty(sweep)?
                );
            }
            eprintln!("{} is valid", spec.spec.display());
            Ok(0)
        }
        Command::Plan { spec, json } => {
            let e = load(&spec)?;
            let plan = assay::plan::expand(&e);
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print!("{}", assay::plan::render(&plan));
            }
            Ok(0)
        }
        Command::Run {
            spec,
            runs_dir,
            jobs,
            threads,
            loader_threads,
            devices: _,
            retries,
            force,
            fresh,
        } => {
            let e = load(&spec)?;
            let threads = set_threads(threads);
            let opts = orchestrator::RunOptions {
                runs_dir,
                jobs: jobs.map(usize::from),
                loader_threads: loader_threads.into(),
                threads,
                retries,
                force,
                fresh,
            };
            let mut progress = Progress::new();
            let summary = orchestrator::run(&e, &spec.spec, &opts, &mut progress)?;
            for (job, reason) in &summary.failed {
                println!("  failed: {job}: {reason}");
            }
            println!(
                "results in {}; TensorBoard: tensorboard --logdir {}",
                summary.experiment_dir.display(),
                summary.experiment_dir.display()
            );
            if !summary.interrupted {
                match assay::report::write_report(&summary.experiment_dir) {
                    Ok(report) => {
                        for line in assay::report::run_end::lines(&report) {
                            println!("{line}");
                        }
                        println!(
                            "report: {}",
                            summary.experiment_dir.join("report.html").display()
                        )
                    }
                    Err(e) => eprintln!("warning: no report: {e}"),
                }
            }
            if summary.interrupted {
                println!("interrupted: run the same command again to resume");
                return Ok(130);
            }
            Ok(if summary.failed.is_empty() {
                0
            } else {
                EXIT_JOBS_FAILED
            })
        }
        Command::Status { run_dir, json } => {
            let s = status::status(&run_dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", status::render(&s));
            }
            Ok(0)
        }
        Command::Report { run_dir } => {
            let r = assay::report::write_report(&run_dir)?;
            print!("{}", assay::report::markdown::render(&r));
            println!(
                "\nwritten: {}/report.{{json,md,csv,html}}",
                run_dir.display()
            );
            Ok(0)
        }
        Command::Compare { run_dirs, out } => {
            let r = assay::report::compare(&run_dirs, out.as_deref())?;
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
        } => {
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
                stop,
            };
            let exit = run_worker(&opts)?;
            Ok(exit.code() as u8)
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
        Command::Bench {
            spec,
            steps,
            threads,
            loader_threads,
            json,
        } => {
            let e = load(&spec)?;
            let threads = set_threads(threads);
            let r = bench::bench(&e.base, steps as usize, threads, loader_threads.into())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{}: {} parameters, batch {}, {} thread(s), {} steps",
                    r.experiment, r.parameters, r.batch_size, r.threads, r.steps
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
            }
            Ok(0)
        }
    }
}
