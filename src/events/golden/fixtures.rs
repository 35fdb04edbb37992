//! The example of every (event_type, version) the golden bytes are checked against.

use super::*;

pub(super) fn sample_v1() -> SampleV1 {
    SampleV1 {
        stream_id: "sw0001/p07".into(),
        timestamp_ms: 1_750_000_000_123,
        latency_p99_us: Some(4.5),
        utilization_pct: Some(87.25),
        error_rate: Some(0.0125),
        bandwidth_gbps: None,
        qp_errors: Some(3),
        counters: BTreeMap::from([
            (Counter::SymbolErrorCounter, 12),
            (Counter::LinkDownedCounter, 1),
            (Counter::PortXmitData, 5_000_000_000),
        ]),
        labels: BTreeMap::from([("rack".to_string(), "r12".to_string())]),
    }
}

/// A v2 sample with every v2 field set, and a counter above its basic width (extended).
pub(super) fn sample_v2() -> SampleV2 {
    let mut counters = sample_v1().counters;
    counters.insert(Counter::SymbolErrorCounter, 70_000);
    counters.insert(Counter::PortRcvSwitchRelayErrors, 2);
    let v1 = sample_v1();
    SampleV2 {
        stream_id: v1.stream_id,
        timestamp_ms: v1.timestamp_ms,
        latency_p99_us: v1.latency_p99_us,
        utilization_pct: v1.utilization_pct,
        error_rate: v1.error_rate,
        bandwidth_gbps: v1.bandwidth_gbps,
        qp_errors: v1.qp_errors,
        counters,
        labels: v1.labels,
        port: PortIdentity {
            node_guid: Some(0x0002_c903_00a1_b2c3),
            port_num: Some(7),
            node_desc: Some("sw0001".into()),
            node_type: Some(NodeType::Switch),
            lid: Some(12),
        },
        peer: Some(PeerPort {
            node_guid: Some(0x0002_c903_00ff_0001),
            port_num: Some(1),
            node_desc: Some("node042 mlx5_0".into()),
        }),
        link: Some(LinkInfoV1 {
            state: Some(LinkState::Active),
            phys_state: Some(PhysState::LinkUp),
            width: Some(Width::X4),
            width_enabled: vec![Width::X1, Width::X4],
            speed: Some(Speed::Hdr),
            rate_gbps: Some(200.0),
        }),
        phy: PhyHealth {
            raw_ber: Some(1e-9),
            effective_ber: Some(1e-15),
            symbol_ber: Some(1e-14),
            fec_mode: Some(FecMode::Rs544),
            temperature_c: Some(48.5),
        },
    }
}

/// A v3 sample: the v2 one with supported widths and speeds, and a fabric check.
pub(super) fn sample_v3() -> Sample {
    let mut s: Sample = sample_v2().into();
    if let Some(l) = s.link.as_mut() {
        l.width_supported = vec![Width::X1, Width::X2, Width::X4];
        l.speed_enabled = vec![Speed::Edr, Speed::Hdr];
        l.speed_supported = vec![Speed::Sdr, Speed::Edr, Speed::Hdr, Speed::Ndr];
    }
    s.fabric = FabricCheck {
        norm: Some(LinkNorm {
            group: "sw0001 ca links".into(),
            width: Width::X4,
            speed: Speed::Hdr,
            links: 36,
            at_norm: 35,
        }),
        topology: Some(vec![Mismatch {
            kind: MismatchKind::Miswired,
            expected: Some(PeerPort {
                node_guid: Some(0x0002_c903_00ff_0002),
                port_num: Some(1),
                node_desc: Some("node043 mlx5_0".into()),
            }),
        }]),
    };
    s
}

pub(super) fn anomaly_v1() -> AnomalyDetectedV1 {
    AnomalyDetectedV1 {
        anomaly_id: "utilization_high:utilization@1750000000123".into(),
        rule: Rule::UtilizationHigh,
        metric: "utilization".into(),
        value: 87.25,
        baseline: Some(52.5),
        delta_pct: Some(66.19),
        threshold: 80.0,
        severity: Severity::Warning,
        escalated_from: None,
        window_start_ms: 1_750_000_000_000,
        window_end_ms: 1_750_000_000_123,
    }
}

pub(super) fn alert_v1() -> AlertRaisedV1 {
    AlertRaisedV1 {
        alert_id: "sw0001/p07#43".into(),
        stream_id: "sw0001/p07".into(),
        prediction_type: PredictionType::ConnectionInstability,
        risk_score: 92,
        tier: 9,
        escalated_from_tier: Some(8),
        explanation: "LinkDowned twice in a minute".into(),
        insight_seq: 43,
        anomaly_seq: 41,
        raised_at_ms: 1_750_000_000_999,
    }
}

/// An incident in maintenance (v2: the windows it falls in).
pub(super) fn insight_v1() -> InsightGeneratedV1 {
    InsightGeneratedV1 {
        anomaly_seq: 42,
        anomaly_id: "utilization_high:utilization@1750000000123".into(),
        prediction_type: PredictionType::ResourceSaturation,
        risk_score: 85,
        explanation: "Port utilization critical at 87.25 %".into(),
        recommendations: vec!["Move the heaviest job".into(), "Rebalance paths".into()],
        confidence: 0.92,
        notes: vec!["risk_score 120 clamped to 100".into()],
        source: InsightSource::Ai,
        reason: None,
        model_id: Some("anthropic.claude-3-5-haiku-20241022-v1:0".into()),
        prompt_version: "ib-insight-v1".into(),
        prompt_hash: Some("0123456789abcdef".into()),
        input_tokens: 1200,
        output_tokens: 180,
        cost_usd: 0.00168,
        latency_ms: 840,
        attempts: 2,
        batch_size: 3,
    }
}

pub(super) fn incident_v2() -> IncidentV2 {
    IncidentV2 {
        maintenance: vec!["mw-3".into()],
        ..incident().into()
    }
}

pub(super) fn resolved_incident() -> IncidentV1 {
    IncidentV1 {
        resolved_at_ms: Some(1_750_000_900_000),
        merged_into: Some("inc-4800-0002c90300000001".into()),
        analyse: false,
        ..incident()
    }
}

pub(super) fn incident() -> IncidentV1 {
    let s = sample_v2();
    IncidentV1 {
        incident_id: "inc-4711".into(),
        scope: IncidentScope::Link,
        node: Some(IncidentNodeV1 {
            node_guid: 0x0002_c903_0000_0001,
            node_desc: Some("leaf01".into()),
            node_type: Some(NodeType::Switch),
        }),
        members: vec![IncidentMemberV1 {
            stream_id: "sw0001/p07".into(),
            port: s.port.clone(),
            peer: s.peer.clone(),
            anomalies: vec![MemberAnomalyV1 {
                anomaly_id: "width_degraded:link_width@1750000000123".into(),
                anomaly_seq: 41,
                rule: Rule::WidthDegraded,
                metric: "link_width".into(),
                value: 1.0,
                threshold: 4.0,
                severity: Severity::Major,
                detected_at_ms: 1_750_000_000_123,
            }],
            cleared: false,
        }],
        severity: Severity::Major,
        opened_at_ms: 1_750_000_000_200,
        resolved_at_ms: None,
        at_ms: 1_750_000_000_300,
        merged_into: None,
        analyse: true,
    }
}

pub(super) fn examples() -> Vec<(&'static str, StreamEvent)> {
    vec![
        (
            "MetricObserved_v3",
            StreamEvent::MetricObserved(MetricObservedV3 {
                sample: sample_v3(),
            }),
        ),
        (
            "AnomalyDetected_v2",
            StreamEvent::AnomalyDetected(AnomalyDetectedV2 {
                port: sample_v3().port,
                peer: sample_v3().peer,
                ..anomaly_v1().into()
            }),
        ),
        (
            "AnomalyResolved_v1",
            StreamEvent::AnomalyResolved(AnomalyResolvedV1 {
                anomaly_id: "link_downed:LinkDownedCounter@1750000000123".into(),
                rule: Rule::LinkDowned,
                metric: "LinkDownedCounter".into(),
                opened_at_ms: 1_750_000_000_123,
                resolved_at_ms: 1_750_000_600_000,
                last_value: 1.0,
            }),
        ),
        (
            "InsightDigest_v1",
            StreamEvent::InsightDigest(InsightDigestV1 {
                period_start_ms: 1_750_000_000_000,
                period_end_ms: 1_750_003_600_000,
                opened: vec![DigestCountV1 {
                    prediction_type: Some(PredictionType::ConnectionInstability),
                    scope: IncidentScope::Switch,
                    count: 2,
                }],
                resolved: vec![DigestCountV1 {
                    prediction_type: None,
                    scope: IncidentScope::Link,
                    count: 1,
                }],
                alerts_raised: 2,
                alerts_suppressed: 5,
                top_ports: vec![DigestPortV1 {
                    stream_id: "sw0001/p07".into(),
                    incidents: 2,
                    anomalies: 3,
                    worst_risk: 95,
                }],
                model_calls: 3,
                ai_insights: 4,
                rules_insights: 1,
                fallback_insights: 1,
                low_confidence: 1,
                input_tokens: 4200,
                output_tokens: 900,
                cost_usd: 0.00696,
                incidents_seq: 41,
                alerts_seq: 7,
            }),
        ),
        (
            "InsightGenerated_v2",
            StreamEvent::InsightGenerated(InsightGeneratedV2 {
                low_confidence: true,
                rules_risk: Some(72),
                prompt_tier: Some("critical".into()),
                answer_form: Some("tool".into()),
                ..insight_v1().into()
            }),
        ),
        (
            "AlertRaised_v2",
            StreamEvent::AlertRaised(AlertRaisedV2 {
                incident_id: Some("inc-4711".into()),
                ports: vec!["sw0001/p07".into(), "node001/mlx5_0/p1".into()],
                ..alert_v1().into()
            }),
        ),
        (
            "IncidentOpened_v2",
            StreamEvent::IncidentOpened(incident_v2()),
        ),
        (
            "IncidentGrown_v2",
            StreamEvent::IncidentGrown(incident_v2()),
        ),
        (
            "IncidentEscalated_v2",
            StreamEvent::IncidentEscalated(incident_v2()),
        ),
        (
            "IncidentResolved_v2",
            StreamEvent::IncidentResolved(IncidentV2 {
                maintenance: Vec::new(),
                ..resolved_incident().into()
            }),
        ),
        (
            "MaintenanceScheduled_v1",
            StreamEvent::MaintenanceScheduled(MaintenanceScheduledV1 {
                window_id: "mw-3".into(),
                nodes: vec!["leaf07".into(), "0x0002c90300000001".into()],
                ports: vec!["spine01/p12".into()],
                from_ms: 1_750_000_000_000,
                until_ms: 1_750_007_200_000,
                reason: "recabling leaf07".into(),
                created_by: "write token".into(),
                at_ms: 1_749_999_000_000,
            }),
        ),
        (
            "MaintenanceEnded_v1",
            StreamEvent::MaintenanceEnded(MaintenanceEndedV1 {
                window_id: "mw-3".into(),
                at_ms: 1_750_003_600_000,
            }),
        ),
        (
            "AlertSuppressed_v1",
            StreamEvent::AlertSuppressed(AlertSuppressedV1 {
                alert_id: "sw0001/p07#43".into(),
                stream_id: "sw0001/p07".into(),
                prediction_type: PredictionType::ConnectionInstability,
                risk_score: 90,
                insight_seq: 47,
                suppressed_count: 3,
                alert_raised_at_ms: 1_750_000_000_999,
                at_ms: 1_750_000_060_000,
            }),
        ),
        (
            "AlertTriaged_v1",
            StreamEvent::AlertTriaged(AlertTriagedV1 {
                alert_id: "sw0001/p07#43".into(),
                verdict: Verdict::FalsePositive,
                risk_score: 92,
                at_ms: 1_750_000_900_000,
            }),
        ),
    ]
}
