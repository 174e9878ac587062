//! Token and cost accounting per day, provider, model and identity (in memory, since start).

use std::collections::BTreeMap;
use std::sync::Mutex;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Price of a model in USD per million tokens.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

impl Price {
    pub fn cost(&self, input: u64, output: u64) -> f64 {
        (input as f64 * self.input_per_mtok + output as f64 * self.output_per_mtok) / 1_000_000.0
    }
}

/// Sums over some calls.
#[derive(Debug, Clone, Default, Serialize, JsonSchema, PartialEq)]
pub struct Totals {
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.calls += o.calls;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cost_usd += o.cost_usd;
    }
}

/// One row of a usage report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UsageRow {
    pub day: String,
    pub provider: String,
    pub model: String,
    pub identity: String,
    #[serde(flatten)]
    pub totals: Totals,
}

/// What `getUsage` returns.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UsageReport {
    pub total: Totals,
    pub by_provider: BTreeMap<String, Totals>,
    pub by_day: BTreeMap<String, Totals>,
    pub rows: Vec<UsageRow>,
}

type Key = (String, String, String, String);

/// The ledger.
#[derive(Default)]
pub struct Ledger {
    rows: Mutex<BTreeMap<Key, Totals>>,
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

impl Ledger {
    pub fn record(&self, provider: &str, model: &str, identity: &str, t: &Totals) {
        let mut rows = self
            .rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rows.entry((
            today(),
            provider.to_owned(),
            model.to_owned(),
            identity.to_owned(),
        ))
        .or_default()
        .add(t);
    }

    /// Cost `identity` has run up today.
    pub fn spent_today(&self, identity: &str) -> f64 {
        let day = today();
        let rows = self
            .rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rows.iter()
            .filter(|((d, _, _, i), _)| *d == day && i == identity)
            .map(|(_, t)| t.cost_usd)
            .sum()
    }

    /// Rows matching the filters, with totals.
    pub fn report(
        &self,
        provider: Option<&str>,
        identity: Option<&str>,
        day: Option<&str>,
    ) -> UsageReport {
        let rows = self
            .rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut report = UsageReport {
            total: Totals::default(),
            by_provider: BTreeMap::new(),
            by_day: BTreeMap::new(),
            rows: Vec::new(),
        };
        for ((d, p, m, i), t) in rows.iter() {
            if provider.is_some_and(|x| x != p)
                || identity.is_some_and(|x| x != i)
                || day.is_some_and(|x| x != d)
            {
                continue;
            }
            report.total.add(t);
            report.by_provider.entry(p.clone()).or_default().add(t);
            report.by_day.entry(d.clone()).or_default().add(t);
            report.rows.push(UsageRow {
                day: d.clone(),
                provider: p.clone(),
                model: m.clone(),
                identity: i.clone(),
                totals: t.clone(),
            });
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_filters() {
        let l = Ledger::default();
        let t = |c| Totals {
            calls: 1,
            input_tokens: 10,
            output_tokens: 5,
            cost_usd: c,
        };
        l.record("gemini", "m1", "alice", &t(0.5));
        l.record("gemini", "m1", "alice", &t(0.25));
        l.record("anthropic", "m2", "bob", &t(1.0));
        let all = l.report(None, None, None);
        assert_eq!(all.total.calls, 3);
        assert!((all.total.cost_usd - 1.75).abs() < 1e-9);
        assert_eq!(all.rows.len(), 2);
        assert_eq!(l.report(Some("gemini"), None, None).total.input_tokens, 20);
        assert!((l.spent_today("alice") - 0.75).abs() < 1e-9);
        let p = Price {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
        };
        assert!((p.cost(1_000_000, 100_000) - 4.5).abs() < 1e-9);
    }
}
