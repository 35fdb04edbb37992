//! What the on-call's commands (`incidents`, `alerts`, `maintenance`) share: the server they
//! talk to (`--target`, `--token`, `--ca-file`), requests whose failures say what the server
//! said, and plain tables (or `--json`).

use anyhow::bail;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// The ibsight server (http or https).
    #[arg(long, env = "IBSIGHT_TARGET", default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Bearer token: a read token to list, a write (triage) token to change.
    #[arg(long, env = "IBSIGHT_TOKEN")]
    pub token: Option<String>,
    /// PEM file of the CA(s) that signed the server's certificate (https).
    #[arg(long, env = "IBSIGHT_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub struct Api {
    client: reqwest::Client,
    args: ApiArgs,
}

impl Api {
    pub fn new(args: &ApiArgs) -> anyhow::Result<Api> {
        let client =
            crate::collect::post::http_client(args.ca_file.as_deref(), Duration::from_secs(30))
                .map_err(anyhow::Error::msg)?;
        Ok(Api {
            client,
            args: args.clone(),
        })
    }

    pub fn json(&self) -> bool {
        self.args.json
    }

    /// Send a request to `path`; the JSON answer, or an error with the server's own message.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.args.target.trim_end_matches('/'));
        let mut req = self.client.request(method.clone(), &url);
        if let Some(token) = &self.args.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{method} {url}: {}", crate::errors::chain(&e)))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            bail!("{method} {url}: {status}: {message}");
        }
        Ok(value)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(reqwest::Method::GET, path, None).await
    }
}

/// Columns padded to their widest cell; the last column is left unpadded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// A JSON field as a table cell: strings bare, null as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Print `value` as JSON, or `rows` under `header`.
pub fn print(api: &Api, value: &Value, header: &[&str], rows: Vec<Vec<String>>) {
    if api.json() {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else if rows.is_empty() {
        println!("(none)");
    } else {
        print!("{}", table(header, &rows));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_pads_every_column_but_the_last() {
        let t = table(
            &["ID", "STATE", "NOTE"],
            &[
                vec!["inc-1".into(), "open".into(), "a".into()],
                vec!["inc-22".into(), "resolved".into(), "b c".into()],
            ],
        );
        assert_eq!(
            t,
            "ID      STATE     NOTE\ninc-1   open      a\ninc-22  resolved  b c\n"
        );
    }
}
