//! The threads a feeder decodes its large batches on beside its own: started once, from the
//! feeder's thread, and kept while it runs.
//!
//! The feeder used to start a set of threads for every batch ([`crate::in_chunks`], which the
//! audit still uses). Kept threads were expected to spare the kernel's zeroing of fresh memory
//! pages (a tenth of the feeder's CPU in a profile at 1 M leads); measured, a feeder-only
//! catch-up of 1 M leads took the same CPU either way (29.6-30.6 s before, 30.1-30.8 s
//! after). They are kept for what else they give: no thread started per batch, and the
//! decoding shows under its own name (`decode-<models>`) in `top` and in the bench's breakdown of a
//! rebuild's CPU. Started from the feeder's thread, they run at its priority: a feeder in the
//! background decodes in the background.

use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;

use leadflow_codec::{DecodeError, Opened};
use leadflow_keyring::Keyring;
use leadflow_store::RecordedEvent;

/// Below this many events a batch decodes on the feeder's thread alone.
const PARALLEL_FROM: usize = 1024;

type Decoded = Vec<Result<Opened, DecodeError>>;

/// A decoding thread: chunks go in, their events decoded come back in order.
struct Helper {
    chunks: SyncSender<Vec<RecordedEvent>>,
    decoded: Receiver<Decoded>,
}

/// The feeder's decoding threads, one per core but the feeder's own (at most three); none
/// until the first large batch.
#[derive(Default)]
pub(crate) struct Decoders {
    helpers: Vec<Helper>,
}

impl Decoders {
    /// `batch` decoded with `keys`, in order: one share on each helper, one here.
    pub(crate) fn decode(
        &mut self,
        keys: Option<&Arc<Keyring>>,
        batch: Vec<RecordedEvent>,
        decode: fn(Option<&Keyring>, RecordedEvent) -> Result<Opened, DecodeError>,
    ) -> Decoded {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        if cores == 1 || batch.len() < PARALLEL_FROM {
            return batch
                .into_iter()
                .map(|e| decode(keys.map(|k| &**k), e))
                .collect();
        }
        if self.helpers.len() < cores - 1 {
            self.start(cores - 1, keys.cloned(), decode);
        }
        if self.helpers.is_empty() {
            return batch
                .into_iter()
                .map(|e| decode(keys.map(|k| &**k), e))
                .collect();
        }
        let total = batch.len();
        let (mine, theirs) = crate::shares(batch, self.helpers.len() + 1);
        let busy = theirs.len();
        for (helper, chunk) in self.helpers.iter().zip(theirs) {
            helper
                .chunks
                .send(chunk)
                .expect("a decoding thread lives as long as its feeder");
        }
        let mut done: Decoded = Vec::with_capacity(total);
        done.extend(mine.into_iter().map(|e| decode(keys.map(|k| &**k), e)));
        for helper in &self.helpers[..busy] {
            done.extend(
                helper
                    .decoded
                    .recv()
                    .expect("a decoding thread lives as long as its feeder"),
            );
        }
        done
    }

    /// Starts helpers up to `n`, decoding with `keys` (the feeder's, which never change). A
    /// thread that cannot be started leaves its share to the others (tried again next batch).
    fn start(
        &mut self,
        n: usize,
        keys: Option<Arc<Keyring>>,
        decode: fn(Option<&Keyring>, RecordedEvent) -> Result<Opened, DecodeError>,
    ) {
        while self.helpers.len() < n {
            let (chunks, inbox) = sync_channel::<Vec<RecordedEvent>>(1);
            let (outbox, decoded): (Sender<Decoded>, _) = channel();
            let keys = keys.clone();
            // `feed-leads+history` decodes on `decode-leads+history`: the system shows a
            // thread's first 15 bytes, which then tell the two apart.
            let name = std::thread::current()
                .name()
                .and_then(|n| n.strip_prefix("feed-"))
                .map_or_else(|| "decode".to_owned(), |n| format!("decode-{n}"));
            let started = std::thread::Builder::new().name(name).spawn(move || {
                // Ends when the feeder drops its end.
                for chunk in inbox {
                    let out: Decoded = chunk
                        .into_iter()
                        .map(|e| decode(keys.as_deref(), e))
                        .collect();
                    if outbox.send(out).is_err() {
                        return;
                    }
                }
            });
            if let Err(e) = started {
                tracing::warn!(error = %e, "a decoding thread could not be started; the feeder decodes more itself");
                return;
            }
            self.helpers.push(Helper { chunks, decoded });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leadflow_store::{ContentType, Position};

    fn event(position: u64) -> RecordedEvent {
        RecordedEvent {
            stream: "lead-x".into(),
            revision: 0,
            position: Position(position),
            id: uuid::Uuid::nil(),
            event_type: "Test".into(),
            data: Vec::new(),
            metadata: Vec::new(),
            content_type: ContentType::Json,
            recorded_at_micros: 0,
        }
    }

    /// Stands for a decoding: which event, on which thread.
    fn mark(_: Option<&Keyring>, e: RecordedEvent) -> Result<Opened, DecodeError> {
        Err(DecodeError {
            position: e.position,
            reason: format!(
                "{} {:?}",
                std::thread::current().name().unwrap_or(""),
                std::thread::current().id()
            ),
        })
    }

    /// Given batches of every size around the threshold and the shares, when decoded, then
    /// every event comes back once, in order; large batches on more than one thread, all on
    /// the same few threads from one batch to the next.
    #[test]
    fn batches_decode_in_order_on_threads_kept_from_batch_to_batch() {
        let feeder = std::thread::Builder::new().name("feed-test".into());
        let threads = feeder
            .spawn(|| {
                let mut decoders = Decoders::default();
                let mut threads = std::collections::BTreeSet::new();
                for n in [0, 1, 1023, 1024, 1025, 4095, 4096, 4097, 16_001, 16_001] {
                    let batch: Vec<_> = (0..n).map(event).collect();
                    let decoded = decoders.decode(None, batch, mark);
                    let positions: Vec<u64> = decoded
                        .iter()
                        .map(|d| d.as_ref().expect_err("marked").position.0)
                        .collect();
                    assert_eq!(positions, (0..n).collect::<Vec<_>>(), "{n} events");
                    threads.extend(decoded.into_iter().map(|d| d.expect_err("marked").reason));
                }
                threads
            })
            .expect("a thread")
            .join()
            .expect("no panic");
        // The feeder's own thread and one per other core, named after its models: no thread
        // more however many batches came.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        assert_eq!(threads.len(), cores, "{threads:?}");
        assert!(
            threads
                .iter()
                .all(|t| t.starts_with("feed-test ") || t.starts_with("decode-test ")),
            "{threads:?}"
        );
    }
}
