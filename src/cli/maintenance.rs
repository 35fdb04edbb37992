//! `ibsight maintenance add|list|end`: maintenance windows, as a client of
//! `/v1/maintenance`. During a window, anomalies on its ports are recorded but alert no one
//! and make no model call.

use super::client::{cell, print, Api, ApiArgs};
use anyhow::bail;
use serde_json::{json, Value};

#[derive(Debug, clap::Subcommand)]
pub enum MaintenanceCommand {
    /// Schedule a window (now, unless --from says when).
    Add(AddArgs),
    /// The windows: open (active and upcoming) by default.
    List(ListArgs),
    /// End a window now.
    End(EndArgs),
}

#[derive(Debug, clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// A node, by description (`*` matches any run: leaf0*) or GUID (0x…); repeatable.
    #[arg(long = "node")]
    pub nodes: Vec<String>,
    /// A port, by stream id (leaf07/p3) or GUID/port (0x…/3); repeatable.
    #[arg(long = "port")]
    pub ports: Vec<String>,
    /// Start: RFC 3339 (2026-12-06T14:00:00Z) or epoch ms [default: now].
    #[arg(long)]
    pub from: Option<String>,
    /// End: RFC 3339 or epoch ms.
    #[arg(long, conflicts_with = "duration")]
    pub until: Option<String>,
    /// Length instead of --until: 90m, 2h, 1d, 45s.
    #[arg(long = "for", value_parser = parse_duration_ms)]
    pub duration: Option<i64>,
    /// Why (the ticket, the work).
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[arg(long, default_value = "open",
          value_parser = ["open", "active", "upcoming", "ended", "all"])]
    pub state: String,
}

#[derive(Debug, clap::Args)]
pub struct EndArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// The window's id (mw-N).
    pub window_id: String,
}

/// `90m`, `2h`, `1d`, `45s` (a bare number is minutes) in ms.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (number, unit_ms) = match text.char_indices().last() {
        Some((i, 's')) => (&text[..i], 1_000),
        Some((i, 'm')) => (&text[..i], 60_000),
        Some((i, 'h')) => (&text[..i], 3_600_000),
        Some((i, 'd')) => (&text[..i], 86_400_000),
        _ => (text, 60_000),
    };
    match number.parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok((n * unit_ms as f64).round() as i64),
        _ => Err(format!(
            "{text:?} is not a duration such as 90m, 2h, 1d or 45s"
        )),
    }
}

/// A time flag as the API takes it: epoch ms as a number, anything else as text.
fn time_value(text: &str) -> Value {
    match text.trim().parse::<i64>() {
        Ok(ms) => json!(ms),
        Err(_) => json!(text.trim()),
    }
}

/// The body `add` posts: `until` from --until, or --from (else now) plus --for.
pub fn add_body(args: &AddArgs, now_ms: i64) -> anyhow::Result<Value> {
    // With --for and no --from the window starts now, as the client sees it, so it lasts
    // exactly that long.
    let from = match (&args.from, args.duration) {
        (Some(f), _) => Some(time_value(f)),
        (None, Some(_)) => Some(json!(now_ms)),
        (None, None) => None,
    };
    let until = match (&args.until, args.duration) {
        (Some(u), _) => time_value(u),
        (None, Some(d)) => {
            let start = match &from {
                None => now_ms,
                Some(Value::Number(n)) => n.as_i64().unwrap_or(now_ms),
                Some(v) => crate::maintenance::request::parse_time("from", v)
                    .map_err(|e| anyhow::anyhow!("--from: {}", e.message))?,
            };
            json!(start + d)
        }
        (None, None) => bail!("say when the window ends: --until TIME or --for DURATION"),
    };
    let mut body = json!({
        "nodes": args.nodes,
        "ports": args.ports,
        "until": until,
        "reason": args.reason,
    });
    if let Some(from) = from {
        body["from"] = from;
    }
    Ok(body)
}

fn row(w: &Value) -> Vec<String> {
    let targets: Vec<String> = ["nodes", "ports"]
        .iter()
        .flat_map(|k| w[*k].as_array().cloned().unwrap_or_default())
        .map(|v| cell(&v))
        .collect();
    vec![
        cell(&w["window_id"]),
        cell(&w["status"]),
        cell(&w["from"]),
        cell(&w["until"]),
        targets.join(" "),
        cell(&w["reason"]),
    ]
}

const HEADER: [&str; 6] = ["WINDOW", "STATUS", "FROM", "UNTIL", "TARGETS", "REASON"];

pub fn run(cmd: MaintenanceCommand) -> anyhow::Result<()> {
    let rt = crate::cli::runtime()?;
    match cmd {
        MaintenanceCommand::Add(args) => {
            let api = Api::new(&args.api)?;
            let body = add_body(&args, crate::clock::now_ms())?;
            rt.block_on(async {
                let w = api
                    .send(reqwest::Method::POST, "/v1/maintenance", Some(&body))
                    .await?;
                print(&api, &w, &HEADER, vec![row(&w)]);
                Ok(())
            })
        }
        MaintenanceCommand::List(args) => {
            let api = Api::new(&args.api)?;
            rt.block_on(async {
                let v = api
                    .get(&format!("/v1/maintenance?state={}", args.state))
                    .await?;
                let rows = v["windows"]
                    .as_array()
                    .map(|ws| ws.iter().map(row).collect())
                    .unwrap_or_default();
                print(&api, &v, &HEADER, rows);
                Ok(())
            })
        }
        MaintenanceCommand::End(args) => {
            let api = Api::new(&args.api)?;
            rt.block_on(async {
                let path = format!("/v1/maintenance/{}", args.window_id);
                let w = api.send(reqwest::Method::DELETE, &path, None).await?;
                print(&api, &w, &HEADER, vec![row(&w)]);
                Ok(())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_and_a_bare_number_is_minutes() {
        assert_eq!(parse_duration_ms("90m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert_eq!(parse_duration_ms("1.5h"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("1d"), Ok(86_400_000));
        assert_eq!(parse_duration_ms("45s"), Ok(45_000));
        assert_eq!(parse_duration_ms("30"), Ok(1_800_000));
        assert!(parse_duration_ms("soon").unwrap_err().contains("soon"));
        assert!(parse_duration_ms("-2h").is_err());
    }

    fn add(from: Option<&str>, until: Option<&str>, duration: Option<i64>) -> AddArgs {
        AddArgs {
            api: ApiArgs {
                target: "http://127.0.0.1:1".into(),
                token: None,
                ca_file: None,
                json: false,
            },
            nodes: vec!["leaf07".into()],
            ports: vec![],
            from: from.map(str::to_string),
            until: until.map(str::to_string),
            duration,
            reason: "recabling".into(),
        }
    }

    #[test]
    fn the_end_is_until_or_from_plus_for() {
        let b = add_body(&add(None, None, Some(60_000)), 1_000).expect("body");
        assert_eq!(
            (b["from"].clone(), b["until"].clone()),
            (json!(1_000), json!(61_000))
        );
        let b = add_body(&add(None, Some("2026-12-06T16:00:00Z"), None), 1_000).expect("body");
        assert!(b.get("from").is_none(), "the server's now");
        let b = add_body(&add(Some("1970-01-01T00:00:10Z"), None, Some(5_000)), 0).expect("body");
        assert_eq!(
            (b["from"].clone(), b["until"].clone()),
            (json!("1970-01-01T00:00:10Z"), json!(15_000))
        );
        let b = add_body(&add(Some("2000"), Some("2026-12-06T16:00:00Z"), None), 0).expect("body");
        assert_eq!(
            (b["from"].clone(), b["until"].clone()),
            (json!(2000), json!("2026-12-06T16:00:00Z"))
        );
        assert!(add_body(&add(None, None, None), 0).is_err());
    }
}
