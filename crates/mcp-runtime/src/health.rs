//! Health and readiness: services report named checks; the runtime turns them into `/health` and `/ready`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// Status of one check or of the whole service. Ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

/// One named check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub status: HealthStatus,
    /// Short human-readable explanation, when not healthy or when useful.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Structured details (counts, paths, errors). Never secrets.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

impl Check {
    /// A healthy check with details.
    pub fn healthy(details: Value) -> Self {
        Self {
            status: HealthStatus::Healthy,
            message: None,
            details,
        }
    }

    /// A degraded check with a reason.
    pub fn degraded(message: impl Into<String>, details: Value) -> Self {
        Self {
            status: HealthStatus::Degraded,
            message: Some(message.into()),
            details,
        }
    }

    /// An unhealthy check with a reason.
    pub fn unhealthy(message: impl Into<String>, details: Value) -> Self {
        Self {
            status: HealthStatus::Unhealthy,
            message: Some(message.into()),
            details,
        }
    }
}

/// What a service tells the runtime about its health. Must be cheap: `/health` calls it on every probe.
pub trait HealthProbe: Send + Sync + 'static {
    /// Named checks. An empty map means healthy.
    fn checks(&self) -> BTreeMap<String, Check>;
    /// Whether the service can serve requests now.
    fn ready(&self) -> bool {
        self.checks()
            .values()
            .all(|c| c.status != HealthStatus::Unhealthy)
    }
}

/// A probe that is always healthy, for services with nothing to check.
#[derive(Debug, Default, Clone, Copy)]
pub struct AlwaysHealthy;

impl HealthProbe for AlwaysHealthy {
    fn checks(&self) -> BTreeMap<String, Check> {
        BTreeMap::new()
    }
}

/// The `/health` body.
#[derive(Debug, Serialize)]
pub struct HealthReport {
    pub status: HealthStatus,
    pub service: String,
    pub version: String,
    /// Unix time in seconds (float), as the seed services reported it.
    pub timestamp: f64,
    pub checks: BTreeMap<String, Check>,
}

impl HealthReport {
    /// Builds the report from a probe; the overall status is the worst check.
    pub fn collect(service: &str, version: &str, probe: &dyn HealthProbe) -> Self {
        let checks = probe.checks();
        let status = checks
            .values()
            .map(|c| c.status)
            .max()
            .unwrap_or(HealthStatus::Healthy);
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        Self {
            status,
            service: service.to_owned(),
            version: version.to_owned(),
            timestamp,
            checks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Two;
    impl HealthProbe for Two {
        fn checks(&self) -> BTreeMap<String, Check> {
            BTreeMap::from([
                ("a".into(), Check::healthy(Value::Null)),
                ("b".into(), Check::degraded("slow", Value::Null)),
            ])
        }
    }

    #[test]
    fn overall_status_is_the_worst_check() {
        let r = HealthReport::collect("svc", "1", &Two);
        assert_eq!(r.status, HealthStatus::Degraded);
        assert!(Two.ready());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "degraded");
        assert_eq!(v["checks"]["b"]["message"], "slow");
        assert!(v["timestamp"].as_f64().unwrap() > 1.0e9);
    }
}
