//! Logging: one JSON object per line with `timestamp, level, service, message, correlation_id, target`
//! and the event's fields, plus correlation ids that follow a request into its tool call.
//!
//! Span fields are inherited by every event inside the span and flattened into the line, so a
//! `correlation_id` recorded on the request span shows up on each log line of that request.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Header carrying the correlation id in and out of every service.
pub const CORRELATION_HEADER: &str = "x-correlation-id";
/// Key under `_meta` that carries the correlation id inside MCP messages.
pub const CORRELATION_META_KEY: &str = "correlationId";

/// Key under `_meta` carrying a W3C `traceparent` (master passes the caller's trace on with it).
pub const TRACEPARENT_META_KEY: &str = "traceparent";

/// A `traceparent` for a child span of `trace_id` (random span id, sampled).
pub fn child_traceparent(trace_id: &str) -> String {
    let span = uuid::Uuid::new_v4().simple().to_string();
    format!("00-{trace_id}-{}-01", &span[..16])
}

/// The correlation id of one HTTP request, stored in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrelationId {
    /// The id.
    pub id: String,
    /// True when the caller sent none and the runtime made one up.
    pub generated: bool,
}

impl CorrelationId {
    /// Takes a caller-supplied id when it is sane (1–128 characters of `[A-Za-z0-9._:-]`), else generates one.
    pub fn from_header(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some(v) if is_valid_correlation_id(v) => Self {
                id: v.to_owned(),
                generated: false,
            },
            _ => Self {
                id: uuid::Uuid::new_v4().simple().to_string(),
                generated: true,
            },
        }
    }
}

/// Whether `v` is acceptable as a correlation id (bounded length, no characters that could forge log fields).
pub fn is_valid_correlation_id(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Trace id from a W3C `traceparent` header (`00-<32 hex trace id>-<16 hex span id>-<flags>`).
pub fn trace_id_from_traceparent(value: &str) -> Option<&str> {
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(version, 2) && hex(trace, 32) && hex(span, 16) && hex(flags, 2) && trace != "0".repeat(32))
        .then_some(trace)
}

static INIT: OnceLock<()> = OnceLock::new();

/// Installs the global subscriber once per process; later calls are no-ops (the stack starts several
/// services in one process). `RUST_LOG` wins over `default_filter`.
pub fn init(service: &str, server: &crate::ServerConfig) {
    INIT.get_or_init(|| {
        let filter = EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&server.log_level))
            .unwrap_or_else(|_| EnvFilter::new("info"));
        let filter = cap_message_dumps(filter);
        let otlp = otlp_layer(service, server);
        let result = match server.log_format {
            LogFormat::Json => tracing_subscriber::registry()
                .with(filter)
                .with(otlp)
                .with(JsonLayer::new(service, Box::new(std::io::stdout())))
                .try_init(),
            LogFormat::Pretty => tracing_subscriber::registry()
                .with(filter)
                .with(otlp)
                .with(tracing_subscriber::fmt::layer().with_target(false))
                .try_init(),
        };
        // Another subscriber (a test harness, an embedding program) may already be installed; keep it.
        let _ = result;
    });
}

/// The spans exported over OTLP: one per HTTP request, per tool call and per downstream call.
pub const EXPORTED_SPANS: &[&str] = &["http", "tool_call", "downstream_call"];

static PROVIDER: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();

/// The OpenTelemetry layer when `server.otlp_endpoint` is set (spans only, see [`EXPORTED_SPANS`]).
fn otlp_layer<S>(
    service: &str,
    server: &crate::ServerConfig,
) -> Option<impl tracing_subscriber::Layer<S> + use<S>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use tracing_subscriber::Layer as _;
    if server.otlp_endpoint.is_empty() {
        return None;
    }
    let base = server.otlp_endpoint.trim_end_matches('/');
    let endpoint = if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    };
    let protocol = if server.otlp_protocol == "http/json" {
        Protocol::HttpJson
    } else {
        Protocol::HttpBinary
    };
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(endpoint.clone())
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{service}: OTLP export disabled: {e}");
            return None;
        }
    };
    let batch = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            opentelemetry_sdk::trace::BatchConfigBuilder::default()
                .with_scheduled_delay(std::time::Duration::from_millis(server.otlp_batch_ms))
                .build(),
        )
        .build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(batch)
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer(service.to_owned());
    let _ = PROVIDER.set(provider);
    Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                m.is_span() && EXPORTED_SPANS.contains(&m.name())
            })),
    )
}

/// Sends spans still batched (at shutdown).
pub fn flush() {
    if let Some(p) = PROVIDER.get() {
        let _ = p.force_flush();
        let _ = p.shutdown();
    }
}

/// Makes `span` continue the W3C trace of `traceparent` (a no-op without OTLP export).
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::propagation::TextMapPropagator as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let carrier =
        std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(cx);
}

/// The `traceparent` naming `span` (when spans are exported), else a child of `trace_id` with a
/// random span id, else none.
pub fn traceparent_for(span: &tracing::Span, trace_id: Option<&str>) -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        return Some(format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        ));
    }
    trace_id.map(child_traceparent)
}

/// rmcp logs whole JSON-RPC messages (tool arguments and results, secret values included) at debug
/// and trace level, and brush-parser every token and word of a command it parses (targets
/// `tokenize`, `parse`, `expansion`, `arithmetic`); those targets stay at info whatever level the
/// operator asks for.
fn cap_message_dumps(filter: EnvFilter) -> EnvFilter {
    [
        "rmcp=info",
        "rmcp::service=info",
        "rmcp::transport=info",
        "tokenize=info",
        "parse=info",
        "expansion=info",
        "arithmetic=info",
    ]
    .iter()
    .filter_map(|d| d.parse().ok())
    .fold(filter, EnvFilter::add_directive)
}

/// A layer writing one JSON object per event. Fields of enclosing spans are inherited.
pub struct JsonLayer {
    service: String,
    out: Mutex<Box<dyn Write + Send>>,
}

impl JsonLayer {
    /// A layer for `service` writing to `out`.
    pub fn new(service: &str, out: Box<dyn Write + Send>) -> Self {
        Self {
            service: service.to_owned(),
            out: Mutex::new(out),
        }
    }
}

struct SpanFields(Map<String, Value>);

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    // Every text field passes the shared redactor: the last line of defence for a secret that a
    // library logs (the services mask what they log themselves).
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        let text = match crate::redact::text(&text) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(masked) => masked,
        };
        self.0.insert(field.name().to_owned(), Value::String(text));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(
            field.name().to_owned(),
            Value::String(crate::redact::text(value).into_owned()),
        );
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_string()));
    }
}

impl<S> Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut fields = Map::new();
            attrs.record(&mut JsonVisitor(&mut fields));
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(SpanFields(fields)) = ext.get_mut::<SpanFields>() {
                values.record(&mut JsonVisitor(fields));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        let now = time::OffsetDateTime::now_utc();
        let ts = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        line.insert("timestamp".into(), Value::String(ts));
        line.insert(
            "level".into(),
            Value::String(event.metadata().level().to_string()),
        );
        line.insert("service".into(), Value::String(self.service.clone()));
        line.insert("message".into(), Value::String(String::new()));
        line.insert("correlation_id".into(), Value::Null);
        line.insert(
            "target".into(),
            Value::String(event.metadata().target().to_owned()),
        );
        // Outermost span first, so inner spans and the event itself override.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    for (k, v) in fields {
                        line.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn events_inherit_span_fields_as_flat_json() {
        let buf = Buf::default();
        let sub =
            tracing_subscriber::registry().with(JsonLayer::new("cmdb", Box::new(buf.clone())));
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("request", correlation_id = "abc-123", service = "cmdb");
            let _e = span.enter();
            tracing::info!(tool = "getHost", "Tool call finished.");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["correlation_id"], "abc-123");
        assert_eq!(v["message"], "Tool call finished.");
        assert_eq!(v["tool"], "getHost");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["service"], "cmdb");
        assert!(v["timestamp"].as_str().unwrap().contains('T'));
    }

    #[test]
    fn correlation_ids_are_validated() {
        assert!(!CorrelationId::from_header(Some("good-id_1.2:3")).generated);
        assert!(CorrelationId::from_header(Some("bad id")).generated);
        assert!(CorrelationId::from_header(Some("x\"}{")).generated);
        assert!(CorrelationId::from_header(Some(&"a".repeat(129))).generated);
        assert!(CorrelationId::from_header(None).generated);
    }

    #[test]
    fn traceparent_is_parsed_strictly() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id_from_traceparent(tp),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(
            trace_id_from_traceparent("00-xyz-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(
            trace_id_from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
    }
}
