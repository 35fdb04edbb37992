//! `ibsight alerts`: the recent alerts, newest first, as a client of `GET /v1/alerts/recent`.

use super::client::{cell, print, Api, ApiArgs};
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// At most this many (1 to 500).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

fn row(a: &Value) -> Vec<String> {
    let ports = a["ports"]
        .as_array()
        .map(|ps| ps.iter().map(cell).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    vec![
        cell(&a["alert_id"]),
        cell(&a["risk_score"]),
        cell(&a["prediction_type"]),
        cell(&a["incident_id"]),
        ports,
        cell(&a["suppressed"]),
        cell(&a["timestamp"]),
        cell(&a["explanation"]),
    ]
}

pub fn run(args: AlertsArgs) -> anyhow::Result<()> {
    let api = Api::new(&args.api)?;
    crate::cli::runtime()?.block_on(async {
        let v = api
            .get(&format!("/v1/alerts/recent?limit={}", args.limit))
            .await?;
        let items = v["alerts"].as_array().cloned().unwrap_or_default();
        print(
            &api,
            &v,
            &[
                "ALERT",
                "RISK",
                "TYPE",
                "INCIDENT",
                "PORTS",
                "SUPPRESSED",
                "RAISED",
                "EXPLANATION",
            ],
            items.iter().map(row).collect(),
        );
        Ok(())
    })
}
