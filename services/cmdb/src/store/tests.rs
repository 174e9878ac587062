//! Table-driven tests of CSV loading, validation, search and reload.

use super::*;
use std::io::Write;

const HEADER: &str =
    "name,fqdn,ip,environment,role,ci_type,os,owner,ssh_user,ssh_port,location,tags,description\n";

fn store(rows: &str) -> Store {
    Store::from_text(&format!("{HEADER}{rows}"), "test.csv").unwrap()
}

fn names(page: &Page) -> Vec<String> {
    page.hosts
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_owned())
        .collect()
}

fn sample() -> Store {
    Store::from_text(crate::SAMPLE_CSV, "sample").unwrap()
}

#[test]
fn sample_loads_cleanly_with_aicrusher() {
    let s = sample();
    let st = s.status();
    assert!(st.hosts >= 20, "{}", st.hosts);
    assert!(st.invalid_rows.is_empty(), "{:?}", st.invalid_rows);
    let h = s.get("aicrusher").unwrap().unwrap();
    assert_eq!(h["ssh_user"], "jeriko");
    assert_eq!(h["ssh_port"], 22);
    assert!(h["tags"].as_array().unwrap().iter().any(|t| t == "gpu"));
}

#[test]
fn get_matches_name_fqdn_ip_case_insensitively() {
    let s = sample();
    for key in ["AICRUSHER", "aicrusher.lab.internal", "192.168.1.50"] {
        assert_eq!(s.get(key).unwrap().unwrap()["name"], "aicrusher", "{key}");
    }
    assert!(s.get("nope").unwrap().is_none());
    assert_eq!(s.similar("k8s-cp", 5).unwrap().len(), 3);
}

#[test]
fn filters_text_and_paging() {
    let s = sample();
    let q = |filters: &[(&str, &str)], text: Option<&str>, limit, offset| Query {
        filters: filters
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        text: text.map(str::to_owned),
        limit,
        offset,
    };
    let cases: Vec<(Query, usize, Option<&str>)> = vec![
        (q(&[("environment", "production")], None, 100, 0), 15, None),
        (
            q(
                &[("environment", "PRODUCTION"), ("role", "database")],
                None,
                100,
                0,
            ),
            2,
            Some("db-primary"),
        ),
        (q(&[("tags", "gpu")], None, 100, 0), 2, Some("aicrusher")),
        (q(&[("tags", "gp")], None, 100, 0), 0, None),
        (q(&[], Some("postgres"), 100, 0), 3, Some("db-primary")),
        (
            q(&[], Some("GPU workstation"), 100, 0),
            1,
            Some("aicrusher"),
        ),
        (q(&[], Some("100%"), 100, 0), 0, None),
        (
            q(&[("ci_type", "vm")], Some("staging"), 100, 0),
            3,
            Some("ci-runner-01"),
        ),
    ];
    for (query, total, first) in cases {
        let page = s.search(&query).unwrap();
        assert_eq!(page.total, total, "{query:?}");
        if let Some(first) = first {
            assert_eq!(names(&page)[0], first, "{query:?}");
        }
    }
    let all = s.search(&q(&[], None, 500, 0)).unwrap();
    let p1 = s.search(&q(&[], None, 5, 0)).unwrap();
    let p2 = s.search(&q(&[], None, 5, 5)).unwrap();
    assert_eq!(p1.total, all.total);
    assert_eq!(names(&p1), names(&all)[..5]);
    assert_eq!(names(&p2), names(&all)[5..10]);
    let past = s.search(&q(&[], None, 5, 1000)).unwrap();
    assert_eq!(past.count, 0);
    let err = s
        .search(&q(&[("colour", "red")], None, 5, 0))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("colour") && err.contains("environment"),
        "{err}"
    );
}

#[test]
fn malformed_rows_are_reported_with_line_numbers() {
    let s = store(
        "good,good.x,10.0.0.1,prod,web,vm,linux,me,u,22,here,a;b,ok\n\
         ,noname.x,10.0.0.2,prod,web,vm,linux,me,u,22,here,,missing name\n\
         badip,b.x,999.1.1.1,prod,web,vm,linux,me,u,22,here,,bad ip\n\
         badport,b.x,10.0.0.3,prod,web,vm,linux,me,u,70000,here,,bad port\n\
         short,only,three\n\
         good,dup.x,10.0.0.4,prod,web,vm,linux,me,u,22,here,,duplicate\n\
         bad name,b.x,10.0.0.5,prod,web,vm,linux,me,u,22,here,,space\n\
         noport,n.x,,prod,web,vm,linux,me,u,,here,,no ip no port\n",
    );
    let st = s.status();
    assert_eq!(st.hosts, 2);
    let lines: Vec<(u64, &str)> = st
        .invalid_rows
        .iter()
        .map(|i| (i.line, i.reason.as_str()))
        .collect();
    let expect = [
        (3, "empty `name`"),
        (4, "invalid `ip`"),
        (5, "invalid `ssh_port`"),
        (6, "expected 13 fields, found 3"),
        (7, "duplicate host name `good` (first defined on line 2)"),
        (8, "invalid `name`"),
    ];
    assert_eq!(lines.len(), expect.len(), "{lines:?}");
    for ((line, reason), (eline, ereason)) in lines.iter().zip(expect) {
        assert_eq!(*line, eline);
        assert!(reason.contains(ereason), "{reason} vs {ereason}");
    }
    assert_eq!(
        s.get("noport").unwrap().unwrap()["ssh_port"],
        serde_json::Value::Null
    );
}

#[test]
fn header_problems_are_errors() {
    for (text, needle) in [
        ("fqdn,ip\nx,1.1.1.1\n", "no `name` column"),
        ("name,name\na,b\n", "appears twice"),
    ] {
        let err = Store::from_text(text, "h.csv").err().unwrap().to_string();
        assert!(err.contains(needle) && err.contains("h.csv"), "{err}");
    }
}

#[test]
fn extra_columns_are_kept_filterable_and_searchable() {
    let s = Store::from_text(
        "name,rack_unit,ip\nsrv1,U42,10.0.0.1\nsrv2,U7,10.0.0.2\n",
        "x",
    )
    .unwrap();
    assert!(s.fields().contains(&"rack_unit".to_owned()));
    let h = s.get("srv1").unwrap().unwrap();
    assert_eq!(h["rack_unit"], "U42");
    let page = s
        .search(&Query {
            filters: [("rack_unit".to_owned(), "u7".to_owned())].into(),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(names(&page), vec!["srv2"]);
    let page = s
        .search(&Query {
            text: Some("u42".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(names(&page), vec!["srv1"]);
}

#[test]
fn reload_replaces_data_and_failed_reload_keeps_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cmdb.csv");
    std::fs::write(
        &path,
        format!("{HEADER}a,a.x,10.0.0.1,prod,web,vm,l,o,u,22,x,,\n"),
    )
    .unwrap();
    let s = Store::open(&path).unwrap();
    assert_eq!(s.status().hosts, 1);
    assert!(!s.reload_if_changed());
    // Append a row: size changes, so the reload happens even within one mtime tick.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(f, "b,b.x,10.0.0.2,prod,web,vm,l,o,u,22,x,,").unwrap();
    drop(f);
    assert!(s.reload_if_changed());
    assert_eq!(s.status().hosts, 2);
    // A broken header: reload fails, last good data stays.
    std::fs::write(&path, "oops\n").unwrap();
    assert!(!s.reload_if_changed());
    let st = s.status();
    assert_eq!(st.hosts, 2);
    assert!(st.last_reload_error.unwrap().contains("no `name` column"));
    // File removed: still the last good data.
    std::fs::remove_file(&path).unwrap();
    assert!(!s.reload_if_changed());
    assert!(s.get("b").unwrap().is_some());
    assert!(s.status().last_reload_error.unwrap().contains("missing"));
}
