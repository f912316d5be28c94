//! The batch scripts of a submission, as text: the job array (task i runs `assay worker` for the
//! i-th job, on the experiment folder) and its follow-up (the orchestrator's next turn, after the
//! array). Pure: `--dry-run` prints exactly what would be submitted.

use std::path::Path;

use crate::shell::word;
use crate::spec::SlurmSpec;

/// One array task: the job it runs and its successive-halving rungs.
#[derive(Clone, Debug)]
pub struct ArrayTask {
    pub job: String,
    pub rungs: Vec<usize>,
}

/// What a job array is made of.
pub struct ArrayRequest<'a> {
    /// The experiment's name (Slurm's job name is `assay-<name>`).
    pub name: &'a str,
    /// The experiment folder, absolute: the tasks run where they can see it.
    pub experiment_dir: &'a Path,
    /// Where the tasks' output files go (`<array>_<task>.out`).
    pub output_dir: &'a Path,
    pub executable: &'a Path,
    pub tasks: &'a [ArrayTask],
    pub slurm: &'a SlurmSpec,
    pub loader_threads: usize,
    /// Successive halving's reduction factor, when the sweep prunes.
    pub reduction_factor: Option<usize>,
    pub spec_revision: Option<&'a str>,
}

/// The `#SBATCH` resource lines every task asks for (`gpus`: with the GPU request).
fn resources(s: &SlurmSpec, gpus: bool) -> Vec<String> {
    let mut lines = Vec::new();
    let mut add = |key: &str, value: &Option<String>| {
        if let Some(v) = value {
            lines.push(format!("--{key}={v}"));
        }
    };
    add("partition", &s.partition);
    add("time", &s.time);
    add("mem", &s.mem);
    add("account", &s.account);
    add("qos", &s.qos);
    lines.push(format!("--cpus-per-task={}", s.cpus_per_task));
    if gpus && s.gpus_per_job > 0 {
        lines.push(format!("--gres=gpu:{}", s.gpus_per_job));
    }
    lines.extend(s.sbatch_args.iter().cloned());
    lines
}

fn header(lines: &[String]) -> String {
    let mut out = String::from("#!/bin/bash\n");
    for l in lines {
        out.push_str(&format!("#SBATCH {l}\n"));
    }
    out
}

/// The job array's batch script.
pub fn array_script(r: &ArrayRequest) -> String {
    let n = r.tasks.len();
    let array = match r.slurm.max_running {
        Some(k) => format!("0-{}%{k}", n.saturating_sub(1)),
        None => format!("0-{}", n.saturating_sub(1)),
    };
    let mut lines = vec![
        format!("--job-name={}", word(&format!("assay-{}", r.name))),
        format!("--array={array}"),
        format!(
            "--output={}",
            word(&r.output_dir.join("%A_%a.out").display().to_string())
        ),
        // A requeued task (node failure, preemption) appends to its output, and goes on from
        // its last checkpoint.
        "--open-mode=append".to_string(),
        "--requeue".to_string(),
    ];
    lines.extend(resources(r.slurm, true));
    let mut out = header(&lines);
    out.push_str(&format!(
        "# assay: experiment {}, {n} job(s); task i runs the i-th job of this list.\n",
        r.name
    ));
    out.push_str("case \"$SLURM_ARRAY_TASK_ID\" in\n");
    for (i, t) in r.tasks.iter().enumerate() {
        let rungs = t
            .rungs
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>()
            .join(",");
        if rungs.is_empty() {
            out.push_str(&format!("{i}) job={} ;;\n", word(&t.job)));
        } else {
            out.push_str(&format!("{i}) job={}; rungs={rungs} ;;\n", word(&t.job)));
        }
    }
    out.push_str(
        "*) echo \"assay: no job for array task $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\nesac\n",
    );
    let mut command = vec![
        "exec".to_string(),
        word(&r.executable.display().to_string()),
        "worker".into(),
        "--detached".into(),
        "--experiment-dir".into(),
        word(&r.experiment_dir.display().to_string()),
        "--job".into(),
        "\"$job\"".into(),
        "--threads".into(),
        "\"${SLURM_CPUS_PER_TASK:-1}\"".into(),
        "--loader-threads".into(),
        r.loader_threads.to_string(),
    ];
    // A task given GPUs trains on the first (Slurm's CUDA_VISIBLE_DEVICES names them).
    if r.slurm.gpus_per_job > 0 {
        command.push("--device".into());
        command.push("cuda:0".into());
    }
    if let Some(f) = r.reduction_factor {
        command.push("--reduction-factor".into());
        command.push(f.to_string());
    }
    if let Some(rev) = r.spec_revision {
        command.push("--spec-revision".into());
        command.push(word(rev));
    }
    command.push("${rungs:+--rungs \"$rungs\"}".into());
    out.push_str(&command.join(" "));
    out.push('\n');
    out
}

/// The follow-up's batch script: runs `command` (`assay run … --slurm-follow-up`) once the
/// array has ended, whatever became of its tasks.
pub fn follow_up_script(
    name: &str,
    output_dir: &Path,
    slurm: &SlurmSpec,
    command: &[String],
) -> String {
    let mut lines = vec![
        format!("--job-name={}", word(&format!("assay-{name}-next"))),
        format!(
            "--output={}",
            word(&output_dir.join("follow-up-%j.out").display().to_string())
        ),
    ];
    lines.extend(resources(slurm, false));
    let mut out = header(&lines);
    out.push_str("# assay: records how the array's tasks ended, retries crashed jobs, starts the refit job\n# and writes the report when nothing is left to run.\n");
    out.push_str("exec ");
    out.push_str(
        &command
            .iter()
            .map(|w| word(w))
            .collect::<Vec<_>>()
            .join(" "),
    );
    out.push('\n');
    out
}

/// The `sbatch` arguments that make the follow-up wait for `array`.
pub fn follow_up_args(array: u64) -> Vec<String> {
    vec![
        format!("--dependency=afterany:{array}"),
        "--kill-on-invalid-dep=yes".to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_array_script_maps_tasks_to_jobs_and_asks_for_the_resources() {
        let slurm = SlurmSpec {
            partition: Some("gpu".into()),
            time: Some("04:00:00".into()),
            mem: Some("8G".into()),
            gpus_per_job: 1,
            max_running: Some(2),
            cpus_per_task: 4,
            sbatch_args: vec!["--constraint=a100".into()],
            ..Default::default()
        };
        let tasks = [
            ArrayTask {
                job: "aaa".into(),
                rungs: vec![1, 3],
            },
            ArrayTask {
                job: "bbb".into(),
                rungs: vec![],
            },
        ];
        let s = array_script(&ArrayRequest {
            name: "exp",
            experiment_dir: Path::new("/shared/runs/exp"),
            output_dir: Path::new("/shared/runs/exp/slurm"),
            executable: Path::new("/opt/my tools/assay"),
            tasks: &tasks,
            slurm: &slurm,
            loader_threads: 2,
            reduction_factor: Some(3),
            spec_revision: None,
        });
        for line in [
            "#SBATCH --array=0-1%2",
            "#SBATCH --output=/shared/runs/exp/slurm/%A_%a.out",
            "#SBATCH --requeue",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=04:00:00",
            "#SBATCH --mem=8G",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --constraint=a100",
            "0) job=aaa; rungs=1,3 ;;",
            "1) job=bbb ;;",
            "exec '/opt/my tools/assay' worker --detached --experiment-dir /shared/runs/exp --job \"$job\" --threads \"${SLURM_CPUS_PER_TASK:-1}\" --loader-threads 2 --device cuda:0 --reduction-factor 3 ${rungs:+--rungs \"$rungs\"}",
        ] {
            assert!(s.lines().any(|l| l == line), "no line {line:?} in\n{s}");
        }
        let f = follow_up_script(
            "exp",
            Path::new("/r/slurm"),
            &slurm,
            &["assay".into(), "run".into(), "my spec.toml".into()],
        );
        assert!(f.contains("exec assay run 'my spec.toml'\n"), "{f}");
        assert!(!f.contains("--gres"), "the follow-up needs no GPU:\n{f}");
        assert_eq!(follow_up_args(42)[0], "--dependency=afterany:42");
    }
}
