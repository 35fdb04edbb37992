//! `ibsight incidents [--state open|resolved|all]`: the incidents, newest first, as a client
//! of `GET /v1/incidents`.

use super::client::{cell, print, Api, ApiArgs};
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct IncidentsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Which incidents.
    #[arg(long, default_value = "open", value_parser = ["open", "resolved", "all"])]
    pub state: String,
    /// At most this many (1 to 500).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// The ports of an incident, its lead first, shortened past `max`.
fn ports(item: &Value, max: usize) -> String {
    let all: Vec<String> = item["ports"]
        .as_array()
        .map(|ps| ps.iter().map(|p| cell(&p["stream_id"])).collect())
        .unwrap_or_default();
    if all.len() > max {
        format!("{} (+{} more)", all[..max].join(" "), all.len() - max)
    } else {
        all.join(" ")
    }
}

fn row(i: &Value) -> Vec<String> {
    let mut state = cell(&i["state"]);
    if i["alerted"] == true {
        state.push_str(",alerted");
    }
    if i["maintenance"].as_array().is_some_and(|m| !m.is_empty()) {
        state.push_str(",maintenance");
    }
    let node = i["node"]["node_desc"].as_str().unwrap_or("").to_string();
    vec![
        cell(&i["id"]),
        cell(&i["risk_score"]),
        cell(&i["scope"]),
        if node.is_empty() {
            ports(i, 3)
        } else {
            format!("{node}: {}", ports(i, 3))
        },
        cell(&i["prediction_type"]),
        state,
        cell(&i["opened_at"]),
    ]
}

pub fn run(args: IncidentsArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    crate::cli::runtime()?.block_on(async {
        let v = api
            .get(&format!(
                "/v1/incidents?state={}&limit={}",
                args.state, args.limit
            ))
            .await?;
        let items = v["incidents"].as_array().cloned().unwrap_or_default();
        print(
            &api,
            &v,
            &["ID", "RISK", "SCOPE", "WHERE", "TYPE", "STATE", "OPENED"],
            items.iter().map(row).collect(),
        );
        Ok(())
    })
}
