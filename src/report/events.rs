//! The one event type between a running job and its outputs (console, TensorBoard, tests).

use serde::{Deserialize, Serialize};

use crate::train::metrics::Metrics;

/// Scalar metrics of one split, by name (`loss`, `accuracy`, `f1_macro`, ...).
pub type Scalars = Vec<(String, f64)>;

/// One epoch's results.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub seconds: f64,
    /// Averages over the epoch's training batches, measured while training (dropout on).
    pub train: Metrics,
    pub val: Option<Metrics>,
}

#[derive(Clone, Debug)]
pub enum Event {
    JobStarted {
        job: String,
        parameters: usize,
        train: usize,
        val: usize,
        test: usize,
        epochs: usize,
        steps_per_epoch: usize,
        spec_toml: String,
    },
    StepDone {
        job: String,
        epoch: usize,
        step: usize,
        steps: usize,
        loss: f64,
    },
    EpochDone {
        job: String,
        record: Box<EpochRecord>,
        best: bool,
    },
    Evaluated {
        job: String,
        split: &'static str,
        step: usize,
        metrics: Box<Metrics>,
    },
    JobFinished {
        job: String,
        best_epoch: usize,
        seconds: f64,
    },
    JobFailed {
        job: String,
        reason: String,
    },
    Warning {
        message: String,
    },
}

/// Something that consumes events: the console, a TensorBoard writer, a test's memory.
pub trait EventSink {
    fn event(&mut self, event: &Event) -> anyhow::Result<()>;
}

/// Keeps every event (for tests).
#[derive(Default)]
pub struct MemorySink {
    pub events: Vec<Event>,
}

impl EventSink for MemorySink {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        self.events.push(event.clone());
        Ok(())
    }
}

/// Sends each event to several sinks in order.
pub struct Fanout<'a> {
    pub sinks: Vec<&'a mut dyn EventSink>,
}

impl EventSink for Fanout<'_> {
    fn event(&mut self, event: &Event) -> anyhow::Result<()> {
        for sink in self.sinks.iter_mut() {
            sink.event(event)?;
        }
        Ok(())
    }
}
