//! A collecting `tracing` subscriber for the trace tests (included by `#[path]`).
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, SubscriberExt as _};

/// A subscriber that keeps `target message` of every event at DEBUG or above under
/// exactly `target`, and nothing else (so `enabled!` under another target is false).
pub(crate) fn subscriber(
    target: &'static str,
) -> (
    impl tracing::Subscriber + Send + Sync,
    Arc<Mutex<Vec<String>>>,
) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    // Exactly this target: `Targets` would match any target that starts with it
    // (`pop3_async::connection` starts with `pop3`).
    let layer = Collect(lines.clone()).with_filter(filter_fn(move |meta| {
        meta.target() == target && *meta.level() <= tracing::Level::DEBUG
    }));
    (tracing_subscriber::registry().with(layer), lines)
}

struct Collect(Arc<Mutex<Vec<String>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Collect {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let line = format!("{} {}", event.metadata().target(), message.0);
        self.0.lock().unwrap().push(line);
    }
}
