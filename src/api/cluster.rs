//! `GET /v1/cluster`: the live members, the leases each holds (as the lease table says), and
//! which node runs the projections.

use super::{auth, ApiError, AppState};
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
    let routes = peers.routes();
    let counts = routes.counts();
    let projections = peers.projections_holder().map(|m| m.id);
    let mut ids: Vec<String> = routes.live.clone();
    for m in &routes.members {
        if !ids.contains(&m.id) {
            ids.push(m.id.clone());
        }
    }
    ids.sort();
    let members: Vec<Value> = ids
        .iter()
        .map(|id| {
            let url = routes
                .members
                .iter()
                .find(|m| &m.id == id)
                .map(|m| m.url.clone());
            json!({
                "id": id,
                "url": url,
                "self": id == &peers.cfg.node_id,
                "live": routes.live.contains(id),
                "shards": counts.get(id).copied().unwrap_or(0),
                "projections": projections.as_deref() == Some(id.as_str()),
            })
        })
        .collect();
    let unheld = routes.holders.iter().filter(|h| h.is_none()).count();
    Ok(Json(json!({
        "clustered": true,
        "node_id": peers.cfg.node_id,
        "shard_count": peers.cfg.shards,
        "shards_unheld": unheld,
        "leases_held_here": peers.held().len(),
        "projections_node": projections,
        "members": members,
    })))
}
