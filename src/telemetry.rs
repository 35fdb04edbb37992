//! Logs and traces: a `tracing` subscriber with text or JSON logs, plus, when an OTLP endpoint
//! is configured, a `tracing-opentelemetry` layer exporting spans in batches (http/protobuf by
//! default; gRPC with the `otlp-grpc` feature).
//!
//! - `settings`: the `[telemetry]` section and the OTEL_* environment variables.
//! - `context`: carrying a trace across actors, the analyst and the log.

pub mod context;
pub mod settings;

pub use settings::{LogFormat, OtlpProtocol, TelemetryConfig};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use settings::{Resolved, SamplerChoice};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Keeps the exporter alive; dropping it flushes the spans still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("telemetry: flushing spans at exit failed: {e}");
            }
        }
    }
}

/// Install the global subscriber from `cfg` and the process environment. Call once, outside
/// any tokio runtime (the HTTP exporter runs its own thread).
pub fn init(cfg: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    install(cfg.resolve(|k| std::env::var(k).ok())?)
}

/// Logs only, never exporting (commands that serve nothing: `events`, `replay`, …).
pub fn init_logs() {
    let cfg = TelemetryConfig::default();
    let mut resolved = cfg
        .resolve(|k| std::env::var(k).ok())
        .or_else(|_| cfg.resolve(|_| None))
        .expect("the defaults resolve");
    resolved.endpoint = None;
    let _ = install(resolved);
}

fn install(resolved: Resolved) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(&resolved.log_filter).map_err(|e| {
        anyhow::anyhow!(
            "telemetry.log_level: {:?} is not a valid filter: {e}",
            resolved.log_filter
        )
    })?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = match resolved.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(filter);
    let provider = resolved
        .endpoint
        .as_ref()
        .map(|_| provider(&resolved))
        .transpose()?;
    // Only real layers: an absent (`None`) layer would declare interest in every callsite,
    // so spans the log filter turns off (ractor's per-actor spans) would still be made and
    // entered on every poll (~13 % of ingest CPU, measured).
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![fmt.boxed()];
    if let Some(p) = &provider {
        let otel = tracing_opentelemetry::layer()
            .with_tracer(p.tracer("ibsight"))
            .with_location(false)
            .with_threads(false)
            // The context travels explicitly (messages, jobs, the log); attaching it to the
            // thread on every poll of every instrumented future costs ~20 % of ingest.
            .with_context_activation(false)
            // Busy/idle times would read the clock on every poll of every traced future.
            .with_tracked_inactivity(false)
            // Traces hold ibsight's own spans whatever the log level; library spans (the AWS
            // SDK's) would start traces of their own.
            .with_filter(Targets::new().with_target("ibsight", tracing::Level::INFO));
        layers.push(otel.boxed());
    }
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .map_err(|e| anyhow::anyhow!("a tracing subscriber is already installed: {e}"))?;
    if let Some(endpoint) = &resolved.endpoint {
        context::set_exporting();
        tracing::info!(endpoint, protocol = ?resolved.protocol, sampler = ?resolved.sampler, service = %resolved.service_name, "exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

fn sampler(choice: SamplerChoice) -> Sampler {
    match choice {
        SamplerChoice::AlwaysOn => Sampler::AlwaysOn,
        SamplerChoice::AlwaysOff => Sampler::AlwaysOff,
        SamplerChoice::Ratio(r) => Sampler::TraceIdRatioBased(r),
        SamplerChoice::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerChoice::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerChoice::ParentBasedRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
    }
}

fn provider(resolved: &Resolved) -> anyhow::Result<SdkTracerProvider> {
    let endpoint = resolved.endpoint.clone().unwrap_or_default();
    let exporter = exporter(resolved.protocol, endpoint)?;
    let resource = Resource::builder()
        .with_service_name(resolved.service_name.clone())
        .with_attributes(
            resolved
                .resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler(resolved.sampler))
        .with_resource(resource)
        .build())
}

fn exporter(
    protocol: OtlpProtocol,
    endpoint: String,
) -> anyhow::Result<opentelemetry_otlp::SpanExporter> {
    use opentelemetry_otlp::WithExportConfig;
    match protocol {
        OtlpProtocol::HttpProtobuf => Ok(opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .build()?),
        #[cfg(feature = "otlp-grpc")]
        OtlpProtocol::Grpc => Ok(opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()?),
        #[cfg(not(feature = "otlp-grpc"))]
        OtlpProtocol::Grpc => anyhow::bail!(
            "telemetry.otlp_protocol: \"grpc\" needs a build with `--features otlp-grpc`; \
             use http/protobuf (port 4318) or rebuild"
        ),
    }
}
