//! The DynamoDB sink (`aws-sdk-dynamodb`): insight and alert items in the dashboard's table
//! (`iops-dashboard-metrics`: `entity_id` + `timestamp`, GSI `EntityTypeIndex` on
//! `entity_type` + `timestamp`, TTL on `ttl`). Items have deterministic ids, so a re-delivered
//! write leaves one item. Writes go in BatchWriteItem chunks of at most 25 — enforced here,
//! since local emulators accept more — and unprocessed items are retried with backoff.
//!
//! This file: the table (setup, the sink's writes, the GSI query); `projection`: the
//! projection that feeds it from the log.

mod projection;

pub use projection::DynamoProjection;

use super::runner::ProjectionError;
use crate::aws::attr;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection as GsiProjection, ProjectionType, PutRequest, ScalarAttributeType,
    TimeToLiveSpecification, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// BatchWriteItem's limit.
pub const MAX_BATCH: usize = 25;
pub const GSI: &str = "EntityTypeIndex";
/// The table's partition and sort keys, the GSI's partition key and the TTL attribute
/// (deploy/aws/ibsight.yaml declares the same; tests/deploy.rs checks).
pub const HASH_KEY: &str = "entity_id";
pub const RANGE_KEY: &str = "timestamp";
pub const GSI_HASH_KEY: &str = "entity_type";
pub const TTL_ATTRIBUTE: &str = "ttl";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DynamoConfig {
    /// Project insights and alerts into DynamoDB (the API then reads through the GSI).
    pub enabled: bool,
    pub table: String,
}

impl Default for DynamoConfig {
    fn default() -> Self {
        DynamoConfig {
            enabled: false,
            table: "iops-dashboard-metrics".into(),
        }
    }
}

type Item = HashMap<String, AttributeValue>;

fn sink_err(reason: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Sink {
        name: "dynamodb".into(),
        reason: reason.to_string(),
    }
}

/// DynamoDB refused the request itself (an item too large, a bad attribute): no retry will
/// help. Marked by its name so `handle` can tell it from an outage.
const REJECTED: &str = "dynamodb-rejected";

fn rejection(reason: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Sink {
        name: REJECTED.into(),
        reason: reason.to_string(),
    }
}

fn is_rejection(e: &ProjectionError) -> bool {
    matches!(e, ProjectionError::Sink { name, .. } if name == REJECTED)
}

fn is_validation<E: ProvideErrorMetadata, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool {
    e.as_service_error()
        .and_then(ProvideErrorMetadata::code)
        .is_some_and(|c| c == "ValidationException")
}

fn request_item(r: &WriteRequest) -> Option<Item> {
    r.put_request().map(|p| p.item().clone())
}

/// Split items into BatchWriteItem requests of at most 25.
pub fn chunks(items: Vec<Item>) -> Vec<Vec<Item>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for item in items {
        current.push(item);
        if current.len() == MAX_BATCH {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[derive(Clone)]
pub struct DynamoSink {
    client: Client,
    pub table: String,
}

impl DynamoSink {
    pub fn new(sdk: &aws_config::SdkConfig, table: &str) -> DynamoSink {
        let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
            .timeout_config(
                aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .build(),
            )
            .build();
        DynamoSink {
            client: Client::from_conf(conf),
            table: table.to_string(),
        }
    }

    /// Create the table, its GSI and the TTL setting when missing. Returns what it did.
    pub async fn init(&self) -> Result<Vec<String>, ProjectionError> {
        let mut done = Vec::new();
        let exists = match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                false
            }
            Err(e) => return Err(sink_err(format!("describe table {}: {e:?}", self.table))),
        };
        if !exists {
            let key = |name: &str, kind| {
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kind)
                    .build()
                    .map_err(sink_err)
            };
            let attr_def = |name: &str| {
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(sink_err)
            };
            let gsi = GlobalSecondaryIndex::builder()
                .index_name(GSI)
                .key_schema(key(GSI_HASH_KEY, KeyType::Hash)?)
                .key_schema(key(RANGE_KEY, KeyType::Range)?)
                .projection(
                    GsiProjection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()
                .map_err(sink_err)?;
            self.client
                .create_table()
                .table_name(&self.table)
                .billing_mode(BillingMode::PayPerRequest)
                .key_schema(key(HASH_KEY, KeyType::Hash)?)
                .key_schema(key(RANGE_KEY, KeyType::Range)?)
                .attribute_definitions(attr_def(HASH_KEY)?)
                .attribute_definitions(attr_def(RANGE_KEY)?)
                .attribute_definitions(attr_def(GSI_HASH_KEY)?)
                .global_secondary_indexes(gsi)
                .send()
                .await
                .map_err(|e| sink_err(format!("create table {}: {e:?}", self.table)))?;
            done.push(format!("created table {} with GSI {GSI}", self.table));
        }
        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(|e| sink_err(format!("describe ttl: {e:?}")))?;
        let enabled = ttl
            .time_to_live_description()
            .and_then(|d| d.attribute_name())
            .is_some_and(|a| a == TTL_ATTRIBUTE);
        if !enabled {
            self.client
                .update_time_to_live()
                .table_name(&self.table)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(TTL_ATTRIBUTE)
                        .enabled(true)
                        .build()
                        .map_err(sink_err)?,
                )
                .send()
                .await
                .map_err(|e| sink_err(format!("enable ttl: {e:?}")))?;
            done.push("enabled TTL on attribute ttl".into());
        }
        Ok(done)
    }

    /// Put items in chunks of 25, retrying unprocessed items with backoff.
    pub async fn put(&self, items: Vec<Item>) -> Result<(), ProjectionError> {
        for chunk in chunks(items) {
            self.put_batch(chunk).await.map_err(|(_, e)| e)?;
        }
        Ok(())
    }

    /// One BatchWriteItem of at most 25 items, unprocessed items retried with backoff. On
    /// error, the items not known to be written (a request that fails writes nothing).
    async fn put_batch(&self, chunk: Vec<Item>) -> Result<(), (Vec<Item>, ProjectionError)> {
        let mut requests: Vec<WriteRequest> = Vec::with_capacity(chunk.len());
        for item in &chunk {
            match PutRequest::builder().set_item(Some(item.clone())).build() {
                Ok(p) => requests.push(WriteRequest::builder().put_request(p).build()),
                Err(e) => return Err((chunk, rejection(e))),
            }
        }
        let mut delay = Duration::from_millis(50);
        for attempt in 0.. {
            let out = match self
                .client
                .batch_write_item()
                .request_items(&self.table, requests.clone())
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if is_validation(&e) => {
                    return Err((chunk, rejection(format!("batch write: {e:?}"))))
                }
                Err(e) => {
                    let left = requests.iter().filter_map(request_item).collect();
                    return Err((left, sink_err(format!("batch write: {e:?}"))));
                }
            };
            requests = out
                .unprocessed_items()
                .and_then(|u| u.get(&self.table))
                .cloned()
                .unwrap_or_default();
            if requests.is_empty() {
                break;
            }
            if attempt >= 8 {
                let left = requests.iter().filter_map(request_item).collect();
                return Err((
                    left,
                    sink_err(format!("{} items stayed unprocessed", requests.len())),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        Ok(())
    }

    /// One item alone (to find which item of a refused batch is bad).
    async fn put_one(&self, item: Item) -> Result<(), ProjectionError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                if is_validation(&e) {
                    rejection(format!("put item: {e:?}"))
                } else {
                    sink_err(format!("put item: {e:?}"))
                }
            })
    }

    /// Set an alert item's suppressed count (idempotent).
    pub async fn set_suppressed(
        &self,
        entity_id: &str,
        timestamp: &str,
        count: u32,
    ) -> Result<(), ProjectionError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(HASH_KEY, AttributeValue::S(entity_id.into()))
            .key(RANGE_KEY, AttributeValue::S(timestamp.into()))
            .update_expression("SET suppressed = :n")
            .expression_attribute_values(":n", AttributeValue::N(count.to_string()))
            .send()
            .await
            .map_err(|e| {
                if is_validation(&e) {
                    rejection(format!("update alert: {e:?}"))
                } else {
                    sink_err(format!("update alert: {e:?}"))
                }
            })?;
        Ok(())
    }

    /// Items of `entity_type`, newest first, through the GSI, that pass `keep`, examining at
    /// most `scan_max` items (a filter that matches nothing must not page through the whole
    /// partition).
    pub async fn recent(
        &self,
        entity_type: &str,
        limit: usize,
        scan_max: usize,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<Vec<Value>, ProjectionError> {
        Ok(self
            .recent_examined(entity_type, limit, scan_max, keep)
            .await?
            .0)
    }

    /// `recent`, also returning how many items it examined.
    pub async fn recent_examined(
        &self,
        entity_type: &str,
        limit: usize,
        scan_max: usize,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<(Vec<Value>, usize), ProjectionError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        let mut examined = 0;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI)
                .key_condition_expression(format!("{GSI_HASH_KEY} = :t"))
                .expression_attribute_values(":t", AttributeValue::S(entity_type.into()))
                .scan_index_forward(false)
                .limit(100)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sink_err(format!("query {GSI}: {e:?}")))?;
            for item in page.items() {
                let v = attr::from_item(item);
                examined += 1;
                if keep(&v) {
                    out.push(v);
                    if out.len() >= limit {
                        return Ok((out, examined));
                    }
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() && examined < scan_max => start = Some(k.clone()),
                _ => return Ok((out, examined)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_never_exceed_25() {
        let items: Vec<Item> = (0..61).map(|_| Item::new()).collect();
        let sizes: Vec<usize> = chunks(items).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![25, 25, 11]);
        assert!(chunks(Vec::new()).is_empty());
        assert_eq!(chunks((0..25).map(|_| Item::new()).collect()).len(), 1);
    }
}
