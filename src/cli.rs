//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "assay", version, about = "A declarative experiment runner for image classification", long_about = None)]
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
    },
    /// Print the jobs a spec expands to, without running anything
    Plan {
        #[command(flatten)]
        spec: SpecArgs,
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Run an experiment: train and evaluate every job, writing results under the runs folder
    Run {
        #[command(flatten)]
        spec: SpecArgs,
        /// Folder that receives <experiment name>/ (also the TensorBoard log dir)
        #[arg(long, default_value = "runs", value_name = "DIR")]
        runs_dir: PathBuf,
        /// CPU threads for tensor math (default: all cores)
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
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
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
}
