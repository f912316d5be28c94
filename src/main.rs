//! The `assay` binary: parses arguments, dispatches, and maps errors to messages and exit codes
//! (0 success, 1 some jobs failed, 2 invalid spec, data or usage, 3 internal error).

mod cli;

use std::process::ExitCode;

use assay::exec::{bench, prepare::PrepareError, run};
use assay::report::console::ConsoleSink;
use assay::spec::{self, SpecError};
use clap::Parser;
use cli::{Cli, Command, SpecArgs};

const EXIT_JOBS_FAILED: u8 = 1;
const EXIT_INVALID: u8 = 2;
const EXIT_INTERNAL: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(spec_error) = e.downcast_ref::<SpecError>() {
                eprint!("{spec_error}");
                return ExitCode::from(EXIT_INVALID);
            }
            eprintln!("error: {e:#}");
            if e.downcast_ref::<PrepareError>().is_some() {
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
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    // Only fails if the pool already exists, in which case it was built from the same variable.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    n
}

fn load(args: &SpecArgs) -> Result<spec::Spec, SpecError> {
    spec::load(&args.spec, &args.overrides)
}

fn dispatch(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Validate { spec } => {
            let s = load(&spec)?;
            println!("{}", toml::to_string_pretty(&s)?);
            eprintln!("{} is valid", spec.spec.display());
            Ok(0)
        }
        Command::Plan { spec, json } => {
            let s = load(&spec)?;
            let plan = assay::plan::expand(&s);
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                println!("experiment {}: {} job(s)", plan.experiment, plan.jobs.len());
                for job in &plan.jobs {
                    println!(
                        "  {}  seed {}  {} epochs, batch {}, lr {}",
                        job.id,
                        job.seed,
                        job.spec.train.epochs,
                        job.spec.train.batch_size,
                        job.spec.optimizer.lr()
                    );
                }
            }
            Ok(0)
        }
        Command::Run {
            spec,
            runs_dir,
            threads,
        } => {
            let s = load(&spec)?;
            let threads = set_threads(threads);
            let plan = assay::plan::expand(&s);
            let mut console = ConsoleSink::new();
            let data = run::load_data(&plan, &mut console)?;
            let opts = run::RunOptions { runs_dir, threads };
            let summary = run::run_plan(&plan, &data, &spec.spec, &opts, &mut console)?;
            println!(
                "{} job(s) done, {} skipped (already done), {} failed; results in {}",
                summary.done,
                summary.skipped,
                summary.failed.len(),
                summary.experiment_dir.display()
            );
            for (job, reason) in &summary.failed {
                println!("  failed: {job}: {reason}");
            }
            println!(
                "TensorBoard: tensorboard --logdir {}",
                summary.experiment_dir.display()
            );
            Ok(if summary.failed.is_empty() {
                0
            } else {
                EXIT_JOBS_FAILED
            })
        }
        Command::Bench {
            spec,
            steps,
            threads,
            json,
        } => {
            let s = load(&spec)?;
            let threads = set_threads(threads);
            let r = bench::bench(&s, steps as usize, threads)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{}: {} parameters, batch {}, {} thread(s), {} steps",
                    r.experiment, r.parameters, r.batch_size, r.threads, r.steps
                );
                println!(
                    "training: {:>10.0} images/s (forward + backward + optimizer step)",
                    r.train_images_per_sec
                );
                println!(
                    "loading:  {:>10.0} images/s (batches from the decoded cache)",
                    r.load_images_per_sec
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
