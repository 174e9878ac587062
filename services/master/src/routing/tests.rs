//! Unit tests of routing: the split, stickiness, rebalancing, overrides, rollback, reload, config
//! checks and schema compatibility.
use super::*;

fn cfg(text: &str) -> MasterConfig {
    toml::from_str(text).unwrap()
}

const TWO: &str = "[[downstream]]\nname='cmdb-v1'\nnamespace='cmdb'\nversion='v1'\nweight=80\nurl='http://a/mcp'\n[[downstream]]\nname='cmdb-v2'\nnamespace='cmdb'\nversion='v2'\nweight=20\nurl='http://b/mcp'\n";

fn routes(text: &str) -> Routes {
    let c = cfg(text);
    c.validate().unwrap();
    let r = Routes::new(&c, RouteMetrics::new(&prometheus::Registry::new()).unwrap());
    let tool = Tool::new("getHost", "d", Arc::new(serde_json::Map::new()));
    r.refresh(&|_| vec![tool.clone()]);
    r
}

fn who(name: &str, roles: &[&str]) -> Identity {
    Identity {
        name: name.to_owned(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn version_of(r: &Routes, id: &str) -> String {
    r.pick(0, "getHost", &who(id, &[]), Some(id), None, &|_| true)
        .unwrap()
        .unwrap()
        .version()
        .to_owned()
}

#[test]
fn callers_split_by_weight_and_stay() {
    let r = routes(TWO);
    let first: Vec<String> = (0..50).map(|i| version_of(&r, &format!("u{i}"))).collect();
    assert_eq!(first.iter().filter(|v| *v == "v2").count(), 10);
    for _ in 0..3 {
        for (i, v) in first.iter().enumerate() {
            assert_eq!(&version_of(&r, &format!("u{i}")), v);
        }
    }
}

#[test]
fn raising_a_weight_moves_the_fewest_callers() {
    let r = routes(TWO);
    let before: Vec<String> = (0..100).map(|i| version_of(&r, &format!("u{i}"))).collect();
    r.set_weights(
        "cmdb",
        &BTreeMap::from([("v2".to_owned(), 80), ("v1".to_owned(), 20)]),
    )
    .unwrap();
    let after: Vec<String> = (0..100).map(|i| version_of(&r, &format!("u{i}"))).collect();
    assert_eq!(after.iter().filter(|v| *v == "v2").count(), 80);
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert_eq!(moved, 60, "only the 60 callers needed move");
    assert!(
        before
            .iter()
            .zip(&after)
            .all(|(a, b)| a == b || (a == "v1" && b == "v2"))
    );
}

#[test]
fn overrides_and_rules_win_and_bad_ones_are_refused() {
    let text =
        format!("{TWO}[[route]]\nnamespace='cmdb'\n[[route.rule]]\nroles=['beta']\nversion='v2'\n");
    let r = routes(&text);
    let up = |_: usize| true;
    let p = r
        .pick(
            0,
            "getHost",
            &who("a", &[]),
            Some("a"),
            Some("linux=v9, cmdb=v2"),
            &up,
        )
        .unwrap()
        .unwrap();
    assert_eq!((p.version(), p.choice, p.index), ("v2", Choice::Header, 1));
    let p = r
        .pick(0, "getHost", &who("b", &["beta"]), Some("b"), None, &up)
        .unwrap()
        .unwrap();
    assert_eq!((p.version(), p.choice), ("v2", Choice::Rule));
    let e = r
        .pick(0, "getHost", &who("a", &[]), None, Some("cmdb=v3"), &up)
        .unwrap_err()
        .0;
    assert!(e.contains("has versions v1, v2"), "{e}");
    let e = r
        .pick(0, "getHost", &who("a", &[]), None, Some("cmdb"), &up)
        .unwrap_err()
        .0;
    assert!(e.contains("namespace=version"), "{e}");
    let e = r
        .pick(0, "listHosts", &who("a", &[]), None, Some("cmdb=v2"), &up)
        .unwrap_err()
        .0;
    assert!(e.contains("no tool `listHosts`"), "{e}");
    // A down candidate's callers are served by the stable version.
    let p = r
        .pick(0, "getHost", &who("b", &["beta"]), None, None, &|i| i == 0)
        .unwrap()
        .unwrap();
    assert_eq!((p.version(), p.choice), ("v1", Choice::Stable));
    // Not versioned: no pick.
    assert!(
        r.pick(5, "x", &who("a", &[]), None, None, &up)
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_failing_candidate_is_rolled_back_once() {
    let r = routes(TWO);
    let p = r
        .pick(0, "getHost", &who("a", &[]), None, Some("cmdb=v2"), &|_| {
            true
        })
        .unwrap()
        .unwrap();
    let fast = Duration::from_millis(2);
    for _ in 0..19 {
        assert!(r.observe(&p, true, fast).is_none(), "not before min_calls");
    }
    let rb = r.observe(&p, true, fast).expect("rolled back");
    assert_eq!((rb.namespace.as_str(), rb.version.as_str()), ("cmdb", "v2"));
    assert!(rb.reason.contains("error rate 100.0 %"), "{}", rb.reason);
    assert!(r.observe(&p, true, fast).is_none(), "only once");
    assert!((0..20).all(|i| version_of(&r, &format!("n{i}")) == "v1"));
    let st = r.status();
    assert_eq!(st[0]["versions"][1]["weight"], 0);
    assert!(
        st[0]["versions"][1]["rolled_back"]
            .as_str()
            .unwrap()
            .contains("max_error_rate")
    );
    // Raising it again clears the rollback.
    r.set_weights("cmdb", &BTreeMap::from([("v2".to_owned(), 20)]))
        .unwrap();
    assert!(r.status()[0]["versions"][1]["rolled_back"].is_null());
}

#[test]
fn a_slow_candidate_is_rolled_back_and_the_stable_never_is() {
    let r = routes(TWO);
    let up = |_: usize| true;
    let v2 = r
        .pick(0, "getHost", &who("a", &[]), None, Some("cmdb=v2"), &up)
        .unwrap()
        .unwrap();
    let v1 = r
        .pick(0, "getHost", &who("a", &[]), None, Some("cmdb=v1"), &up)
        .unwrap()
        .unwrap();
    for _ in 0..50 {
        assert!(r.observe(&v1, true, Duration::from_secs(2)).is_none());
    }
    let slow = Duration::from_millis(900);
    let rb = (0..20)
        .find_map(|_| r.observe(&v2, false, slow))
        .expect("rolled back");
    assert!(rb.reason.contains("p95 900 ms"), "{}", rb.reason);
}

#[test]
fn weights_default_to_a_dark_candidate_and_cannot_all_be_zero() {
    let r = routes(&TWO.replace("weight=80\n", "").replace("weight=20\n", ""));
    assert_eq!(r.status()[0]["versions"][0]["weight"], 100);
    assert_eq!(r.status()[0]["versions"][1]["weight"], 0);
    assert!((0..10).all(|i| version_of(&r, &format!("u{i}")) == "v1"));
    let e = r
        .set_weights("cmdb", &BTreeMap::from([("v1".to_owned(), 0)]))
        .unwrap_err()
        .0;
    assert!(e.contains("would have weight 0"), "{e}");
    let e = r.set_weights("linux", &BTreeMap::new()).unwrap_err().0;
    assert!(e.contains("versioned namespaces: cmdb"), "{e}");
}

#[test]
fn the_least_recently_seen_half_is_forgotten_past_the_cap() {
    let r = routes(TWO);
    r.groups[0].lock().max_assigned = 10;
    for i in 0..10 {
        version_of(&r, &format!("old{i}"));
    }
    // Seen again: these five are the most recent when the cap is passed.
    for i in 5..10 {
        version_of(&r, &format!("old{i}"));
    }
    version_of(&r, "new");
    let st = r.groups[0].lock();
    let mut kept: Vec<&String> = st.assigned.keys().collect();
    kept.sort();
    assert_eq!(kept, ["new", "old5", "old6", "old7", "old8", "old9"]);
    assert_eq!(st.counts.iter().sum::<usize>(), 6);
}

#[test]
fn reload_applies_changed_weights_only() {
    let r = routes(TWO);
    assert!(r.reload(&cfg(TWO)).is_empty());
    let changed = r.reload(&cfg(&TWO.replace("weight=20", "weight=50")));
    let weights = BTreeMap::from([("v1".to_owned(), 80), ("v2".to_owned(), 50)]);
    assert_eq!(
        changed,
        vec![Reloaded::Weights {
            namespace: "cmdb".to_owned(),
            weights
        }]
    );
    assert_eq!(r.status()[0]["versions"][1]["weight"], 50);
    let swapped = r.reload(&cfg(&TWO.replace("cmdb-v2", "cmdb-v3")));
    assert_eq!(
        swapped,
        vec![Reloaded::NeedsRestart {
            namespace: "cmdb".to_owned()
        }]
    );
}

#[test]
fn config_mistakes_are_named() {
    for (text, needle) in [
        (TWO.replace("version='v2'", "version='v1'"), "defined twice"),
        (
            TWO.replace("version='v2'\n", ""),
            "give every downstream of a namespace a `version`",
        ),
        (
            TWO.replace("weight=80", "weight=0")
                .replace("weight=20", "weight=0"),
            "weight 0",
        ),
        (
            TWO.replace("version='v2'", "version='v 2'"),
            "version `v 2`",
        ),
        (
            format!("{TWO}[[route]]\nnamespace='linux'\n"),
            "no versioned downstream",
        ),
        (
            format!(
                "{TWO}[[route]]\nnamespace='cmdb'\n[[route.rule]]\nroles=['b']\nversion='v3'\n"
            ),
            "not one of v1, v2",
        ),
        (
            format!("{TWO}[[route]]\nnamespace='cmdb'\n[route.rollback]\nmax_error_rate=5\n"),
            "max_error_rate",
        ),
        (
            "[[downstream]]\nname='a'\nweight=5\nurl='http://a/mcp'\n".to_owned(),
            "needs a `version`",
        ),
    ] {
        let err = cfg(&text).validate().unwrap_err().to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
}

#[test]
fn schema_compatibility() {
    let t = |schema: Value| Tool::new("t", "d", Arc::new(schema.as_object().unwrap().clone()));
    let stable = t(
        json!({"type":"object","properties":{"id":{"type":"string"},"verbose":{"type":"boolean"}},"required":["id"]}),
    );
    let same_plus = t(
        json!({"type":"object","properties":{"id":{"type":"string"},"verbose":{"type":"boolean"},"extra":{"type":"string"}},"required":["id"]}),
    );
    assert_eq!(incompatibility(&stable, &same_plus), None);
    let requires_more = t(
        json!({"type":"object","properties":{"id":{"type":"string"},"zone":{"type":"string"}},"required":["id","zone"]}),
    );
    assert!(
        incompatibility(&stable, &requires_more)
            .unwrap()
            .contains("requires `zone`")
    );
    let retyped =
        t(json!({"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}));
    assert!(
        incompatibility(&stable, &retyped)
            .unwrap()
            .contains("`id` is")
    );
    let closed = t(
        json!({"type":"object","properties":{"id":{"type":"string"}},"required":["id"],"additionalProperties":false}),
    );
    assert!(
        incompatibility(&stable, &closed)
            .unwrap()
            .contains("refuses `verbose`")
    );
}
