//! Prometheus metrics every service exports. One [`Metrics`] per service, registered in that
//! service's own registry (no global registry), so several services can share a process.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Label value used for tool names a service does not know, so callers cannot blow up label cardinality.
pub const UNKNOWN_TOOL: &str = "unknown";

/// The runtime's metrics for one service.
#[derive(Clone, Debug)]
pub struct Metrics {
    service: String,
    registry: Registry,
    tool_calls: IntCounterVec,
    tool_duration: HistogramVec,
    http_requests: IntCounterVec,
    sessions: IntGaugeVec,
    access: IntCounterVec,
    auth_failures: IntCounterVec,
}

/// Outcome label of a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    Success,
    Error,
}

impl CallStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
        }
    }
}

impl Metrics {
    /// Creates and registers the runtime metrics for `service` in `registry`.
    pub fn new(service: &str, registry: &Registry) -> Result<Self, prometheus::Error> {
        let tool_calls = IntCounterVec::new(
            Opts::new(
                "mcp_tool_calls_total",
                "Tool calls by service, tool and outcome.",
            ),
            &["service", "tool", "status"],
        )?;
        let tool_duration = HistogramVec::new(
            HistogramOpts::new(
                "mcp_tool_call_duration_seconds",
                "Tool call duration in seconds.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0, 120.0,
            ]),
            &["service", "tool"],
        )?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "mcp_http_requests_total",
                "HTTP requests by route and status code.",
            ),
            &["service", "method", "route", "code"],
        )?;
        let sessions = IntGaugeVec::new(
            Opts::new("mcp_sessions_active", "Open MCP sessions by transport."),
            &["service", "transport"],
        )?;
        registry.register(Box::new(tool_calls.clone()))?;
        registry.register(Box::new(tool_duration.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        let access = IntCounterVec::new(
            Opts::new(
                "mcp_access_decisions_total",
                "Guarded accesses by service, tool and decision (one per audit line).",
            ),
            &["service", "tool", "decision"],
        )?;
        registry.register(Box::new(sessions.clone()))?;
        registry.register(Box::new(access.clone()))?;
        let auth_failures = IntCounterVec::new(
            Opts::new(
                "mcp_auth_failures_total",
                "Requests refused at the edge for authentication, by reason (missing, unknown_token, expired, audience, issuer, signature, unknown_key, algorithm, insufficient_scope, ...).",
            ),
            &["service", "reason"],
        )?;
        registry.register(Box::new(auth_failures.clone()))?;
        #[cfg(target_os = "linux")]
        {
            // A second registration of the process collector in the same registry is harmless to skip.
            let _ = registry.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ));
        }
        Ok(Self {
            service: service.to_owned(),
            registry: registry.clone(),
            tool_calls,
            tool_duration,
            http_requests,
            sessions,
            access,
            auth_failures,
        })
    }

    /// The service name used as the `service` label.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The registry these metrics live in; services register their own metrics here too.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one finished tool call.
    pub fn record_tool_call(&self, tool: &str, status: CallStatus, seconds: f64) {
        self.tool_calls
            .with_label_values(&[self.service.as_str(), tool, status.as_str()])
            .inc();
        self.tool_duration
            .with_label_values(&[self.service.as_str(), tool])
            .observe(seconds);
    }

    /// Counts one guarded access (see [`crate::guard::AccessAudited`]); `tool` is the service's own
    /// tool name and `decision` comes from a fixed set.
    pub fn record_access(&self, tool: &str, decision: &str) {
        self.access
            .with_label_values(&[self.service.as_str(), tool, decision])
            .inc();
    }

    /// Counts one refused authentication; `reason` comes from a fixed set.
    pub fn record_auth_failure(&self, reason: &str) {
        self.auth_failures
            .with_label_values(&[self.service.as_str(), reason])
            .inc();
    }

    /// Records one HTTP request. `route` must come from a fixed set (the matched route or `other`).
    pub fn record_http(&self, method: &str, route: &str, code: u16) {
        self.http_requests
            .with_label_values(&[self.service.as_str(), method, route, &code.to_string()])
            .inc();
    }

    /// Adjusts the open-session gauge for `transport` (`streamable_http` or `sse`).
    pub fn session_delta(&self, transport: &str, delta: i64) {
        self.sessions
            .with_label_values(&[self.service.as_str(), transport])
            .add(delta);
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        // Encoding into a Vec cannot fail for IO reasons; a metric-family error would be a bug, and
        // an empty scrape is a better answer than a panic.
        let _ = encoder.encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Decrements the session gauge when a session's handler is dropped.
#[derive(Debug)]
pub(crate) struct SessionGuard {
    metrics: Metrics,
    transport: &'static str,
}

impl SessionGuard {
    pub(crate) fn new(metrics: &Metrics, transport: &'static str) -> Self {
        metrics.session_delta(transport, 1);
        Self {
            metrics: metrics.clone(),
            transport,
        }
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.metrics.session_delta(self.transport, -1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_tool_and_session_metrics() {
        let m = Metrics::new("cmdb", &Registry::new()).unwrap();
        m.record_tool_call("getHost", CallStatus::Success, 0.01);
        m.record_tool_call("getHost", CallStatus::Error, 0.02);
        {
            let _g = SessionGuard::new(&m, "sse");
            assert!(
                m.render()
                    .contains("mcp_sessions_active{service=\"cmdb\",transport=\"sse\"} 1")
            );
        }
        let text = m.render();
        assert!(text.contains(
            "mcp_tool_calls_total{service=\"cmdb\",status=\"success\",tool=\"getHost\"} 1"
        ));
        assert!(text.contains(
            "mcp_tool_calls_total{service=\"cmdb\",status=\"error\",tool=\"getHost\"} 1"
        ));
        assert!(
            text.contains(
                "mcp_tool_call_duration_seconds_count{service=\"cmdb\",tool=\"getHost\"} 2"
            )
        );
        assert!(text.contains("mcp_sessions_active{service=\"cmdb\",transport=\"sse\"} 0"));
    }
}
