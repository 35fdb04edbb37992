//! Carrying a trace across actor messages, the analyst pool and the log.
//!
//! Only sampled work is traced: the HTTP span decides (by the sampler), and a `TraceContext`
//! travels with the work only when that span is sampled. Downstream spans are made only when a
//! context is present, so unsampled work (and all work with tracing off) creates no spans at
//! all past the HTTP handler.

use crate::events::TraceContext;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The most links one span records (a page of traced events can be long).
const MAX_LINKS: usize = 32;

/// Set once spans are exported; until then every function here returns at once.
static EXPORTING: AtomicBool = AtomicBool::new(false);

pub(crate) fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// The context of `span` when it is exported (valid and sampled), else `None`.
pub fn context_of(span: &Span) -> Option<TraceContext> {
    if !EXPORTING.load(Ordering::Relaxed) || span.is_none() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    (sc.is_valid() && sc.is_sampled()).then(|| TraceContext {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
    })
}

/// The context of the current span (see `context_of`).
pub fn current() -> Option<TraceContext> {
    if !EXPORTING.load(Ordering::Relaxed) {
        return None;
    }
    context_of(&Span::current())
}

fn span_context(t: &TraceContext) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(t.trace_id),
        SpanId::from_bytes(t.span_id),
        TraceFlags::new(t.flags),
        true,
        TraceState::default(),
    )
}

/// Set `span`'s parent to a remote context (a `traceparent` header, a stored event).
pub fn set_parent(span: &Span, parent: &TraceContext) {
    let _ = span
        .set_parent(opentelemetry::Context::new().with_remote_span_context(span_context(parent)));
}

/// A span continuing `parent`'s trace, or a disabled span when there is no parent. `make`
/// builds the span with `parent: None`, so the tracing parent never overrides this one.
pub fn span_under(parent: Option<&TraceContext>, make: impl FnOnce() -> Span) -> Span {
    span_for(parent, make)
}

/// A span doing work for several traced items: its parent is the first, the others are links.
/// Disabled when none is traced.
pub fn span_for<'a>(
    traces: impl IntoIterator<Item = &'a TraceContext>,
    make: impl FnOnce() -> Span,
) -> Span {
    let mut traces = traces.into_iter();
    let Some(first) = traces.next() else {
        return Span::none();
    };
    let span = make();
    set_parent(&span, first);
    for other in traces.filter(|t| *t != first).take(MAX_LINKS) {
        span.add_link(span_context(other));
    }
    span
}

/// Run `fut` inside `span` when the span is exported. An unsampled span is left unentered,
/// so untraced requests pay nothing per poll (a request's future is polled once per reply).
pub async fn in_span<F: Future>(span: Span, fut: F) -> F::Output {
    if context_of(&span).is_some() {
        fut.instrument(span).await
    } else {
        fut.await
    }
}

/// A child of the current span when the current span is exported; disabled otherwise, so
/// untraced work never starts a trace of its own. (The current span is not enough: ractor
/// runs every actor inside a span of its own, which is never exported.)
pub fn child(make: impl FnOnce() -> Span) -> Span {
    if current().is_some() {
        make()
    } else {
        Span::none()
    }
}
