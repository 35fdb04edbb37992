//! Given windows in the log, when an incident changes, then the windows it is in.

use super::request::{self, FieldError};
use super::target::{glob, PortTarget};
use super::window::{MaintenanceBook, Status};
use crate::detect::rules::Severity;
use crate::events::types::{
    IncidentMemberV1, IncidentNodeV1, IncidentScope, IncidentV2, MaintenanceEndedV1,
    MaintenanceScheduledV1,
};
use crate::events::StreamEvent;
use crate::sample::port::{NodeType, PeerPort, PortIdentity};
use serde_json::json;

const LEAF07: u64 = 0x0002_c903_0000_0107;
const HOST: u64 = 0x0002_c903_0000_0a01;
const SPINE: u64 = 0x0002_c903_0000_0201;

fn member(desc: &str, guid: u64, port: u8, peer: Option<(&str, u64, u8)>) -> IncidentMemberV1 {
    IncidentMemberV1 {
        stream_id: format!("{desc}/p{port}"),
        port: PortIdentity {
            node_guid: Some(guid),
            port_num: Some(port),
            node_desc: Some(desc.into()),
            node_type: Some(if desc.starts_with("node") {
                NodeType::Ca
            } else {
                NodeType::Switch
            }),
            lid: None,
        },
        peer: peer.map(|(d, g, p)| PeerPort {
            node_guid: Some(g),
            port_num: Some(p),
            node_desc: Some(d.into()),
        }),
        anomalies: Vec::new(),
        cleared: false,
    }
}

fn incident(scope: IncidentScope, members: Vec<IncidentMemberV1>) -> IncidentV2 {
    IncidentV2 {
        incident_id: "inc-1".into(),
        scope,
        node: None,
        members,
        severity: Severity::Critical,
        opened_at_ms: 5_000,
        resolved_at_ms: None,
        at_ms: 5_000,
        merged_into: None,
        analyse: true,
        maintenance: Vec::new(),
    }
}

/// A window posted at log offset `offset` naming `nodes` and `ports`, 1 000 to 10 000 ms.
fn window(book: &mut MaintenanceBook, id: &str, offset: u64, nodes: &[&str], ports: &[&str]) {
    book.apply(
        &StreamEvent::MaintenanceScheduled(MaintenanceScheduledV1 {
            window_id: id.into(),
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            ports: ports.iter().map(|s| s.to_string()).collect(),
            from_ms: 1_000,
            until_ms: 10_000,
            reason: "recabling".into(),
            created_by: "test".into(),
            at_ms: 500,
        }),
        offset,
    );
}

fn cable_leaf07_p3() -> IncidentV2 {
    incident(
        IncidentScope::Link,
        vec![
            member("leaf07", LEAF07, 3, Some(("node001", HOST, 1))),
            member("node001", HOST, 1, Some(("leaf07", LEAF07, 3))),
        ],
    )
}

#[test]
fn given_a_window_on_a_switch_when_a_cable_of_it_fails_then_both_ends_are_in_it() {
    let mut book = MaintenanceBook::default();
    window(&mut book, "mw-1", 10, &["leaf07"], &[]);
    assert_eq!(book.covering(&cable_leaf07_p3(), 5_000, 11), vec!["mw-1"]);
}

#[test]
fn given_a_window_on_a_switch_when_the_host_end_has_lost_its_peer_then_the_link_still_is_in_it() {
    let mut book = MaintenanceBook::default();
    window(&mut book, "mw-1", 10, &["leaf07"], &[]);
    let mut inc = cable_leaf07_p3();
    inc.members[1].peer = None;
    inc.members[0].peer = None;
    assert_eq!(book.covering(&inc, 5_000, 11), vec!["mw-1"]);
}

#[test]
fn given_a_window_on_the_host_by_guid_when_its_hca_port_fails_alone_then_it_is_in_it() {
    let mut book = MaintenanceBook::default();
    window(&mut book, "mw-1", 10, &["0x0002c90300000a01"], &[]);
    let inc = incident(
        IncidentScope::Port,
        vec![member("node001", HOST, 1, Some(("leaf07", LEAF07, 3)))],
    );
    assert_eq!(book.covering(&inc, 5_000, 11), vec!["mw-1"]);
}

#[test]
fn given_a_window_on_one_port_when_another_port_of_the_switch_fails_then_it_is_not_in_it() {
    let mut book = MaintenanceBook::default();
    window(&mut book, "mw-1", 10, &[], &["leaf07/p4"]);
    assert!(book.covering(&cable_leaf07_p3(), 5_000, 11).is_empty());
    let mut ok = MaintenanceBook::default();
    window(&mut ok, "mw-3", 10, &[], &["0x0002c90300000107/3"]);
    assert_eq!(ok.covering(&cable_leaf07_p3(), 5_000, 11), vec!["mw-3"]);
}

#[test]
fn given_a_switch_incident_when_a_member_is_outside_every_window_then_it_is_not_in_maintenance() {
    let mut book = MaintenanceBook::default();
    window(&mut book, "mw-1", 10, &["leaf07"], &[]);
    let inc = incident(
        IncidentScope::Switch,
        vec![
            member("leaf07", LEAF07, 3, Some(("node001", HOST, 1))),
            member("spine01", SPINE, 9, Some(("leaf08", 0x108, 1))),
        ],
    );
    assert!(book.covering(&inc, 5_000, 11).is_empty());
    // A second window covering the other member puts the whole incident in maintenance.
    window(&mut book, "mw-2", 12, &["spine*"], &[]);
    assert_eq!(book.covering(&inc, 5_000, 13), vec!["mw-1", "mw-2"]);
}

#[test]
fn given_a_switch_incident_whose_node_is_named_then_every_member_is_in_it() {
    let mut book = MaintenanceBook::default();
    window(&mut book, "mw-1", 10, &["leaf0*"], &[]);
    let mut inc = incident(
        IncidentScope::Switch,
        vec![
            member("spine01", SPINE, 9, None),
            member("node001", HOST, 1, None),
        ],
    );
    inc.node = Some(IncidentNodeV1 {
        node_guid: LEAF07,
        node_desc: Some("leaf07".into()),
        node_type: Some(NodeType::Switch),
    });
    assert_eq!(book.covering(&inc, 5_000, 11), vec!["mw-1"]);
}

#[test]
fn given_a_window_when_the_change_is_before_from_after_until_or_logged_before_it_then_not_in_it() {
    let mut book = MaintenanceBook::default();
    window(&mut book, "mw-1", 10, &["leaf07"], &[]);
    let inc = cable_leaf07_p3();
    assert!(book.covering(&inc, 999, 11).is_empty(), "before from");
    assert!(book.covering(&inc, 10_000, 11).is_empty(), "at until");
    assert!(
        book.covering(&inc, 5_000, 9).is_empty(),
        "an anomaly the log held before the window was posted keeps its decision"
    );
    assert_eq!(book.covering(&inc, 1_000, 11), vec!["mw-1"]);
}

#[test]
fn given_a_window_ended_early_then_it_counts_until_its_end_for_changes_logged_after_the_end() {
    let mut book = MaintenanceBook::default();
    window(&mut book, "mw-1", 10, &["leaf07"], &[]);
    book.apply(
        &StreamEvent::MaintenanceEnded(MaintenanceEndedV1 {
            window_id: "mw-1".into(),
            at_ms: 4_000,
        }),
        20,
    );
    let inc = cable_leaf07_p3();
    assert!(book.covering(&inc, 5_000, 21).is_empty());
    assert_eq!(book.covering(&inc, 3_000, 21), vec!["mw-1"]);
    // A change the log held before the end was decided with the window as it was then.
    assert_eq!(book.covering(&inc, 5_000, 15), vec!["mw-1"]);
    let w = &book.windows["mw-1"];
    assert_eq!(w.status(3_999), Status::Active);
    assert_eq!(w.status(4_000), Status::Ended);
    assert_eq!(w.status(999), Status::Upcoming);
}

#[test]
fn given_an_open_incident_in_maintenance_when_it_changes_after_the_window_then_it_is_asked_again() {
    let mut book = MaintenanceBook::default();
    window(&mut book, "mw-1", 10, &["leaf07"], &[]);
    let mut inc = cable_leaf07_p3();
    assert!(book.mark(&mut inc, false, 5_000, 11), "in maintenance");
    assert_eq!(inc.maintenance, vec!["mw-1"]);

    let mut grown = cable_leaf07_p3();
    grown.analyse = false;
    assert!(
        !book.mark(&mut grown, true, 12_000, 30),
        "the window is over"
    );
    assert!(grown.maintenance.is_empty());
    assert!(grown.analyse, "leaving maintenance asks the analyst again");

    let mut calm = cable_leaf07_p3();
    calm.analyse = false;
    assert!(!book.mark(&mut calm, false, 12_000, 30));
    assert!(
        !calm.analyse,
        "an incident never in maintenance is not asked for that"
    );

    let mut resolved = cable_leaf07_p3();
    resolved.analyse = false;
    resolved.resolved_at_ms = Some(12_000);
    assert!(!book.mark(&mut resolved, true, 12_000, 30));
    assert!(!resolved.analyse, "a resolved incident is not asked again");
}

#[test]
fn given_an_open_incident_in_a_window_when_the_window_is_over_then_it_lapses_and_is_asked_again() {
    let mut book = MaintenanceBook::default();
    window(&mut book, "mw-1", 10, &["leaf07"], &[]);
    let mut inc = cable_leaf07_p3();
    inc.maintenance = vec!["mw-1".into()];
    inc.analyse = false;
    assert_eq!(book.lapsed(&inc, 9_999), None, "still inside the window");
    let out = book.lapsed(&inc, 10_000).expect("past until");
    assert!(out.maintenance.is_empty() && out.analyse && out.at_ms == 10_000);

    // Ended early: over from the end on.
    book.apply(
        &StreamEvent::MaintenanceEnded(MaintenanceEndedV1 {
            window_id: "mw-1".into(),
            at_ms: 4_000,
        }),
        20,
    );
    assert!(book.lapsed(&inc, 4_000).is_some());
    // Another window still covering it keeps it in maintenance.
    window(&mut book, "mw-2", 21, &["leaf0*"], &[]);
    assert_eq!(book.lapsed(&inc, 5_000), None);
    // A resolved incident does not lapse.
    let mut resolved = inc.clone();
    resolved.resolved_at_ms = Some(3_000);
    assert_eq!(book.lapsed(&resolved, 20_000), None);
}

#[test]
fn glob_matches_whole_descriptions_with_stars() {
    assert!(glob("leaf07", "leaf07"));
    assert!(!glob("leaf07", "leaf070"));
    assert!(glob("leaf*", "leaf07"));
    assert!(glob("*07", "leaf07"));
    assert!(glob("le*f*7", "leaf07"));
    assert!(glob("*", ""));
    assert!(!glob("leaf*8", "leaf07"));
    assert!(!glob("a*a", "a"));
    assert!(glob("node0* HCA-1", "node001 HCA-1"));
}

#[test]
fn port_targets_are_stream_ids_or_guid_and_port() {
    assert_eq!(
        PortTarget::parse("0x0002c90300000107/3"),
        Ok(PortTarget::GuidPort(LEAF07, 3))
    );
    assert_eq!(
        PortTarget::parse("leaf07/p3"),
        Ok(PortTarget::Stream("leaf07/p3".into()))
    );
    assert!(PortTarget::parse("0xzz/3").is_err());
    assert!(PortTarget::parse("0x10/300").is_err());
}

fn err(body: serde_json::Value) -> FieldError {
    request::parse(&body, 1_000_000).expect_err("refused")
}

#[test]
fn a_posted_window_is_refused_naming_the_field_and_the_value() {
    assert_eq!(
        err(json!({"until": 2_000_000, "reason": "x"})).field,
        "nodes"
    );
    assert_eq!(
        err(json!({"nodes": ["leaf07"], "until": 2_000_000})).field,
        "reason"
    );
    assert_eq!(
        err(json!({"nodes": ["leaf07"], "reason": "x"})).field,
        "until"
    );
    let e = err(json!({"nodes": ["leaf07", "0xnothex"], "until": 2_000_000, "reason": "x"}));
    assert_eq!(e.field, "nodes[1]");
    assert!(e.message.contains("0xnothex"), "{}", e.message);
    let e = err(json!({"nodes": ["leaf07"], "from": 3_000_000, "until": 2_000_000, "reason": "x"}));
    assert_eq!(e.field, "until");
    assert!(e.message.contains("2000000"), "{}", e.message);
    let e = err(json!({"nodes": ["leaf07"], "until": "tomorrow", "reason": "x"}));
    assert_eq!(e.field, "until");
    assert!(e.message.contains("tomorrow"), "{}", e.message);
    assert_eq!(
        err(json!({"nodes": ["leaf07"], "until": 999_999, "reason": "x"})).field,
        "until"
    );
    assert_eq!(
        err(json!({"nodes": ["leaf07"], "until": 2_000_000, "reason": "x", "extra": 1})).field,
        "extra"
    );
    assert_eq!(
        err(
            json!({"nodes": ["a"], "until": 1_000_000 + request::MAX_WINDOW_MS + 1, "reason": "x"})
        )
        .field,
        "until"
    );
}

#[test]
fn a_posted_window_takes_rfc3339_or_ms_and_starts_now_by_default() {
    let ok = request::parse(
        &json!({"nodes": [" leaf07 "], "ports": ["spine01/p12"], "until": "1970-01-01T00:33:20Z", "reason": " recabling "}),
        1_000_000,
    )
    .expect("valid");
    assert_eq!(ok.from_ms, 1_000_000);
    assert_eq!(ok.until_ms, 2_000_000);
    assert_eq!(ok.nodes, vec!["leaf07"]);
    assert_eq!(ok.reason, "recabling");
}
