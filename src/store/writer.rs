//! The run writer: group commit for run records, on both engines (DESIGN §2 rule 7, §8).
//!
//! A resolve reads its snapshot, decides, and hands its record to this writer, which takes
//! every record waiting (up to [`MAX_BATCH`]) and writes them all, with their shared records
//! and audit events, in one transaction committed once; only then does each resolve learn that
//! its record is durable and let its values leave. One commit (one fsync on SQLite, one WAL
//! flush on PostgreSQL) and one exchange with the database cover the batch. If the batch
//! fails, each record is written again on its own, so one bad record fails alone; a record
//! whose write fails gets the error, and its values never leave (fail closed).
//!
//! The loop is shared here; how a batch is written is each engine's ([`RunRecords`]).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Decision, Durable, RunPlan, StoreError, StoreMetrics};

/// Most resolutions committed together.
pub(super) const MAX_BATCH: usize = 128;

/// Records waiting for the writer at most (a resolve waits for room beyond that).
const QUEUE: usize = 1024;

/// A run record waiting for the run writer.
pub(super) struct RunJob {
    pub(super) team: i64,
    pub(super) plan: Arc<RunPlan>,
    /// The decision whose shared record the run refers to.
    pub(super) shared: Arc<Decision>,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

#[cfg(test)]
impl RunJob {
    /// A job whose answer is dropped (for the engines' tests of [`RunRecords`]).
    pub(super) fn new(team: i64, plan: Arc<RunPlan>, shared: Arc<Decision>) -> Self {
        Self {
            team,
            plan,
            shared,
            reply: oneshot::channel().0,
        }
    }
}

impl std::fmt::Debug for RunJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunJob")
            .field("team", &self.team)
            .finish_non_exhaustive()
    }
}

/// How an engine writes run records.
pub(super) trait RunRecords: Send + Sync + 'static {
    /// Writes every record of `jobs` (with the shared records they refer to, unless stored
    /// already, and their audit events) in one transaction.
    fn together(&self, jobs: &[RunJob]) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Writes each record of `jobs` so that one that fails fails alone.
    fn each(&self, jobs: &[RunJob]) -> impl Future<Output = Vec<Result<(), StoreError>>> + Send;
}

/// The writer's queue.
#[derive(Debug, Clone)]
pub(super) struct RunWriter(mpsc::Sender<RunJob>);

impl RunWriter {
    /// Starts the writer task on the current runtime.
    pub(super) fn start(records: impl RunRecords, metrics: StoreMetrics) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(records, queue, metrics));
        Self(jobs)
    }

    /// Queues the record of a run: what it returns resolves once the record is durable, or
    /// says why it is not.
    ///
    /// # Errors
    /// [`StoreError`] if the writer has stopped.
    pub(super) async fn queue(
        &self,
        team: i64,
        plan: Arc<RunPlan>,
        shared: Arc<Decision>,
    ) -> Result<Durable, StoreError> {
        let (reply, durable) = oneshot::channel();
        self.0
            .send(RunJob {
                team,
                plan,
                shared,
                reply,
            })
            .await
            .map_err(|_| StoreError::Corrupt("the run writer stopped".into()))?;
        Ok(Durable::after(durable))
    }
}

async fn run(records: impl RunRecords, mut queue: mpsc::Receiver<RunJob>, metrics: StoreMetrics) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        #[allow(clippy::cast_precision_loss, reason = "at most MAX_BATCH")]
        metrics.batch_sizes.observe(batch.len() as f64);
        let results = match records.together(&batch).await {
            Ok(()) => batch.iter().map(|_| Ok(())).collect(),
            Err(e) => {
                tracing::debug!(error = %e, runs = batch.len(), "a batch of run records failed; writing each alone");
                records.each(&batch).await
            }
        };
        for (job, result) in batch.drain(..).zip(results) {
            let _ = job.reply.send(result);
        }
    }
}
