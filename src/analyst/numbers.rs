//! Numbers in words: the one place an explanation turns a value into text, chosen by its
//! unit. Bit error rates in scientific notation (`3.4e-11`), fractions as percentages, and
//! everything else to three significant digits, so no value that is not 0 ever reads as 0
//! (the old `0.0000 (bit error rate)`), and NaN or infinity read as "unknown".

/// What a value measures, and so how it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A bit error rate (errors per bit): scientific notation.
    BitErrorRate,
    /// A fraction of 1 shown as a percentage; the suffix says of what (`" % of packets"`).
    FractionPct(&'static str),
    /// Already a percentage.
    Percent,
    PerHour,
    PerSecond,
    Micros,
    Seconds,
    Gbps,
    GbpsPerLane,
    Lanes,
    /// A count or a bare number.
    Plain,
}

impl Unit {
    /// The text after the number (with its leading space).
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::BitErrorRate => " (bit error rate)",
            Unit::FractionPct(of) => of,
            Unit::Percent => " %",
            Unit::PerHour => " /h",
            Unit::PerSecond => " /s",
            Unit::Micros => " µs",
            Unit::Seconds => " s",
            Unit::Gbps => " Gb/s",
            Unit::GbpsPerLane => " Gb/s per lane",
            Unit::Lanes => " lanes",
            Unit::Plain => "",
        }
    }

    /// `v` as text in this unit, suffix included.
    pub fn show(self, v: f64) -> String {
        format!("{}{}", self.number(v), self.suffix())
    }

    /// `v` as text in this unit, without the suffix.
    pub fn number(self, v: f64) -> String {
        match self {
            Unit::BitErrorRate if v != 0.0 && v.is_finite() => format!("{v:.1e}"),
            Unit::FractionPct(_) => number(v * 100.0),
            _ => number(v),
        }
    }
}

/// Three significant digits, trailing zeros cut; scientific notation below 0.001; integers
/// and values from 100 up without decimals; "unknown" for NaN and infinity.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "unknown".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if a < 1e-3 {
        return format!("{v:.1e}");
    }
    if a >= 100.0 || v.fract() == 0.0 {
        return format!("{v:.0}");
    }
    let decimals = if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        // 0.001 ≤ a < 1: three significant digits.
        (2 - a.log10().floor() as i32) as usize
    };
    let text = format!("{v:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The number a text stands for, scale taken back out.
    fn back(text: &str, unit: Unit) -> f64 {
        let n: f64 = text
            .parse()
            .unwrap_or_else(|_| panic!("{text:?} is not a number"));
        match unit {
            Unit::FractionPct(_) => n / 100.0,
            _ => n,
        }
    }

    #[test]
    fn given_any_magnitude_when_printed_then_never_zero_unless_zero_and_within_five_percent() {
        let units = [
            Unit::BitErrorRate,
            Unit::FractionPct(" % of the time stalled"),
            Unit::Percent,
            Unit::PerHour,
            Unit::Micros,
            Unit::Gbps,
            Unit::Plain,
        ];
        for unit in units {
            for exp in -15..=9 {
                for mantissa in [1.0, 1.234, 2.5, 4.999, 9.87] {
                    for sign in [1.0, -1.0] {
                        let v = sign * mantissa * 10f64.powi(exp);
                        let text = unit.number(v);
                        assert_ne!(text, "0", "{v} in {unit:?}");
                        assert!(!text.contains("0.0000"), "{v} in {unit:?}: {text}");
                        let got = back(&text, unit);
                        assert!(
                            ((got - v) / v).abs() < 0.05,
                            "{v} in {unit:?} printed {text} ({got})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn given_typical_values_then_they_read_as_an_operator_writes_them() {
        assert_eq!(Unit::BitErrorRate.show(3.4e-11), "3.4e-11 (bit error rate)");
        assert_eq!(Unit::BitErrorRate.show(1e-12), "1.0e-12 (bit error rate)");
        assert_eq!(
            Unit::FractionPct(" % of the time stalled").show(0.125),
            "12.5 % of the time stalled"
        );
        assert_eq!(Unit::Percent.show(92.0), "92 %");
        assert_eq!(Unit::Micros.show(4.5), "4.5 µs");
        assert_eq!(Unit::PerHour.show(0.25), "0.25 /h");
        assert_eq!(Unit::PerHour.show(120.0), "120 /h");
        assert_eq!(Unit::Plain.show(0.0), "0");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(0.0123), "0.0123");
        assert_eq!(number(0.000_42), "4.2e-4");
        assert_eq!(number(f64::NAN), "unknown");
        assert_eq!(number(f64::INFINITY), "unknown");
    }
}
