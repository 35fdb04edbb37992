use super::*;
use crate::detect::counters::DeltaKind;
use crate::sample::port::Speed;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn cfg() -> DetectConfig {
    DetectConfig::default()
}

fn hdr() -> LinkInfo {
    LinkInfo {
        speed: Some(Speed::Hdr),
        rate_gbps: Some(200.0),
        ..Default::default()
    }
}

/// A window fed `n` increments every `every_ms` from 0 to `until_ms`.
fn window(n: u64, every_ms: i64, until_ms: i64) -> ErrorWindow {
    let mut w = ErrorWindow::default();
    let mut t = 0;
    while t <= until_ms {
        w.add(t, n, HOUR);
        t += every_ms;
    }
    w
}

#[test]
fn given_a_few_background_symbol_errors_when_judged_as_ber_then_nothing_fires() {
    // Five errors an hour on a 200 Gb/s link: a BER near 7e-15.
    let w = window(1, 12 * MIN, HOUR);
    assert!(window_findings(Counter::SymbolErrorCounter, &w, Some(&hdr()), &cfg(), HOUR).is_none());
}

#[test]
fn given_symbol_errors_above_the_ber_threshold_then_the_link_is_marginal() {
    // 1 error/s on 200 Gb/s is a BER of 5e-12, five times the default 1e-12.
    let w = window(10, 10_000, 10 * MIN);
    let f = window_findings(
        Counter::SymbolErrorCounter,
        &w,
        Some(&hdr()),
        &cfg(),
        10 * MIN,
    )
    .expect("fires");
    assert_eq!(f.rule, Rule::SymbolErrors);
    assert!((f.value - 5e-12).abs() < 1e-12, "ber {}", f.value);
    assert_eq!(f.threshold, 1e-12);
    assert_eq!(f.severity, Severity::Critical);
}

#[test]
fn given_the_same_count_on_a_slower_link_then_the_ber_is_higher() {
    let w = window(1, 10_000, 10 * MIN); // 360 errors/h
    let slow = LinkInfo {
        speed: Some(Speed::Qdr),
        rate_gbps: Some(32.0),
        ..Default::default()
    };
    // 360/h at 200 Gb/s is a BER of 5e-13: fine. At 32 Gb/s it is 3.1e-12.
    assert!(window_findings(
        Counter::SymbolErrorCounter,
        &w,
        Some(&hdr()),
        &cfg(),
        10 * MIN
    )
    .is_none());
    assert!(window_findings(
        Counter::SymbolErrorCounter,
        &w,
        Some(&slow),
        &cfg(),
        10 * MIN
    )
    .is_some());
}

#[test]
fn given_a_per_speed_threshold_then_it_overrides_the_default() {
    let mut c = cfg();
    c.symbol_ber_max_by_speed.insert("HDR".into(), 1e-10);
    let w = window(10, 10_000, 10 * MIN);
    assert!(window_findings(Counter::SymbolErrorCounter, &w, Some(&hdr()), &c, 10 * MIN).is_none());
}

#[test]
fn given_no_link_rate_then_symbol_errors_fall_back_to_a_rate_per_hour() {
    let w = window(1, 10_000, 10 * MIN); // 360/h
    let f =
        window_findings(Counter::SymbolErrorCounter, &w, None, &cfg(), 10 * MIN).expect("fires");
    assert_eq!(f.threshold, 120.0);
    assert!((f.value - 360.0).abs() < 15.0, "{}", f.value);
}

#[test]
fn given_one_error_in_one_gap_then_it_is_not_a_rate() {
    let mut w = ErrorWindow::default();
    w.add(10_000, 1, HOUR);
    assert!(window_findings(Counter::PortRcvErrors, &w, None, &cfg(), 10_000).is_none());
    // Two receive errors in five minutes: fewer than a burst, and 2/h over the hour.
    w.add(20_000, 1, HOUR);
    assert!(window_findings(Counter::PortRcvErrors, &w, None, &cfg(), 20_000).is_none());
}

#[test]
fn given_a_burst_in_the_short_window_then_its_rate_counts() {
    let mut w = ErrorWindow::default();
    w.add(10_000, 30, HOUR); // 30 in 5 min = 360/h > 60/h
    let f = window_findings(Counter::PortRcvErrors, &w, None, &cfg(), 10_000).expect("fires");
    assert_eq!(f.rule, Rule::PortRcvErrors);
    assert!((f.value - 360.0).abs() < 1e-9);
}

#[test]
fn given_link_downs_at_the_hourly_threshold_within_an_hour_then_it_fires() {
    // Three flaps between sweeps, 20 minutes apart: three within the hour is the threshold.
    assert_eq!(cfg().link_downs_per_hour, 3.0);
    let mut w = ErrorWindow::default();
    let mut judged = Vec::new();
    for t in [5 * MIN, 25 * MIN, 45 * MIN] {
        w.add(t, 1, HOUR);
        judged.push(window_findings(
            Counter::LinkDownedCounter,
            &w,
            None,
            &cfg(),
            t,
        ));
    }
    assert!(judged[1].is_none(), "two of three: {:?}", judged[1]);
    let f = judged[2].clone().expect("the third within the hour fires");
    assert_eq!((f.rule, f.value, f.threshold), (Rule::LinkDowned, 3.0, 3.0));
    // An hour after the first, only two remain within the hour.
    w.add(66 * MIN, 0, HOUR);
    let later = window_findings(Counter::LinkDownedCounter, &w, None, &cfg(), 66 * MIN);
    assert!(later.is_none(), "{later:?}");
}

#[test]
fn given_every_error_counter_then_each_has_a_rule() {
    let mut w = ErrorWindow::default();
    w.add(0, 60_000, HOUR);
    for (c, rule) in [
        (Counter::LinkErrorRecoveryCounter, Rule::LinkErrorRecovery),
        (Counter::LinkDownedCounter, Rule::LinkDowned),
        (Counter::LocalLinkIntegrityErrors, Rule::LinkIntegrity),
        (Counter::PortRcvErrors, Rule::PortRcvErrors),
        (Counter::PortRcvRemotePhysicalErrors, Rule::RemotePhysical),
        (Counter::PortXmitDiscards, Rule::XmitDiscards),
        (Counter::PortXmitConstraintErrors, Rule::ConstraintErrors),
        (Counter::PortRcvConstraintErrors, Rule::ConstraintErrors),
        (Counter::VL15Dropped, Rule::Vl15Dropped),
        (Counter::ExcessiveBufferOverrunErrors, Rule::BufferOverrun),
    ] {
        let f = window_findings(c, &w, None, &cfg(), 1000).map(|f| f.rule);
        assert_eq!(f, Some(rule), "{}", c.name());
    }
    assert!(window_findings(Counter::PortXmitData, &w, None, &cfg(), 1000).is_none());
}

#[test]
fn given_one_buffer_overrun_then_it_is_critical() {
    let mut w = ErrorWindow::default();
    w.add(0, 1, HOUR);
    let f =
        window_findings(Counter::ExcessiveBufferOverrunErrors, &w, None, &cfg(), 0).expect("fires");
    assert_eq!(f.severity, Severity::Critical);
}

fn wait(delta: u64, elapsed_ms: i64) -> CounterDelta {
    CounterDelta {
        delta,
        elapsed_ms,
        kind: DeltaKind::Normal,
    }
}

#[test]
fn given_xmit_wait_then_congestion_is_the_fraction_of_time_stalled() {
    // At 200 Gb/s a tick is 2.56 ns; 3.9e8 ticks in 10 s is 10 % of the time.
    let f = stall_fraction(&wait(390_625_000, 10_000), Some(&hdr()), &cfg()).expect("known");
    assert!((f - 0.1).abs() < 1e-9, "{f}");
    assert!(congestion_finding(&wait(390_625_000, 10_000), Some(&hdr()), &cfg(), 0).is_none());
    let f =
        congestion_finding(&wait(1_000_000_000, 10_000), Some(&hdr()), &cfg(), 0).expect("fires");
    assert_eq!(f.rule, Rule::Congestion);
    // The same ticks on a 10x faster device clock are a tenth of the time.
    let mut c = cfg();
    c.xmit_wait_tick_ns = Some(0.256);
    assert!(congestion_finding(&wait(1_000_000_000, 10_000), Some(&hdr()), &c, 0).is_none());
    assert!(stall_fraction(&wait(5, 10_000), None, &cfg()).is_none());
}

#[test]
fn given_a_counter_at_its_maximum_then_it_is_saturated() {
    let full = CounterReading {
        value: 15,
        timestamp_ms: 0,
        width_bits: 4,
    };
    let f = saturation_finding(Counter::LocalLinkIntegrityErrors, &full).expect("saturated");
    assert_eq!(f.rule, Rule::CounterSaturated);
    let below = CounterReading { value: 14, ..full };
    assert!(saturation_finding(Counter::LocalLinkIntegrityErrors, &below).is_none());
    let extended = CounterReading {
        value: u64::MAX,
        timestamp_ms: 0,
        width_bits: 64,
    };
    assert!(saturation_finding(Counter::PortXmitWait, &extended).is_none());
}
