//! `GET /v1/cluster`: the members, whether this node reaches them, and the shards each owns.

use super::{auth, ApiError, AppState};
use crate::cluster::placement;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

pub async fn get_cluster(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::check_read(&state.config.auth, &headers)?;
    let Some(peers) = state.ingestor.router().cluster() else {
        return Ok(Json(json!({"clustered": false, "members": []})));
    };
    let cfg = &peers.cfg;
    let shards = placement::assignment(&peers.ids, cfg.shards);
    let checks = cfg.members.iter().map(|m| async move {
        if m.id == cfg.node_id {
            return (m, true, None);
        }
        match peers.get(m, "/healthz").await {
            Ok((200, _)) => (m, true, None),
            Ok((status, _)) => (m, false, Some(format!("healthz answered {status}"))),
            Err(e) => (m, false, Some(e.reason)),
        }
    });
    let members: Vec<Value> = futures_util::future::join_all(checks)
        .await
        .into_iter()
        .map(|(m, reachable, error)| {
            let owned = shards.get(&m.id).map_or(0, Vec::len);
            json!({
                "id": m.id,
                "url": m.url,
                "self": m.id == cfg.node_id,
                "reachable": reachable,
                "error": error,
                "shards": owned,
            })
        })
        .collect();
    Ok(Json(json!({
        "clustered": true,
        "node_id": cfg.node_id,
        "shard_count": cfg.shards,
        "members": members,
    })))
}
