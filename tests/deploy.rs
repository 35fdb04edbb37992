//! deploy/ against the code: the CloudFormation template declares the table, keys, GSI, TTL
//! attribute and EventBridge pattern the code uses (read from both, so they cannot drift);
//! the Kubernetes manifests have what a StatefulSet of ibsight needs; the Dockerfile builds
//! with README's command. (`scripts/test` also runs cfn-lint and kubernetes-validate.)

use ibsight::alerts::AlertsConfig;
use ibsight::projections::dynamodb::{self, DynamoConfig};
use ibsight::projections::eventbridge::{self, EventBridgeConfig};
use serde_yaml_ng::Value;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(path)).expect("read");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .collect()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

fn key_schema(v: &Value) -> Vec<(String, String)> {
    v.as_sequence()
        .expect("a key schema")
        .iter()
        .map(|k| {
            (
                s(&k["AttributeName"]).to_string(),
                s(&k["KeyType"]).to_string(),
            )
        })
        .collect()
}

#[test]
fn the_template_declares_what_the_code_uses() {
    let t = &yaml_docs("deploy/aws/ibsight.yaml")[0];
    let resources = &t["Resources"];

    // The table: the name the code writes to, its keys, the GSI the API queries, the TTL.
    assert_eq!(
        s(&t["Parameters"]["TableName"]["Default"]),
        DynamoConfig::default().table
    );
    let table = &resources["InsightsTable"]["Properties"];
    assert_eq!(s(&table["BillingMode"]), "PAY_PER_REQUEST");
    assert_eq!(
        key_schema(&table["KeySchema"]),
        vec![
            (dynamodb::HASH_KEY.to_string(), "HASH".to_string()),
            (dynamodb::RANGE_KEY.to_string(), "RANGE".to_string())
        ]
    );
    let gsi = &table["GlobalSecondaryIndexes"][0];
    assert_eq!(s(&gsi["IndexName"]), dynamodb::GSI);
    assert_eq!(
        key_schema(&gsi["KeySchema"]),
        vec![
            (dynamodb::GSI_HASH_KEY.to_string(), "HASH".to_string()),
            (dynamodb::RANGE_KEY.to_string(), "RANGE".to_string())
        ]
    );
    assert_eq!(
        s(&table["TimeToLiveSpecification"]["AttributeName"]),
        dynamodb::TTL_ATTRIBUTE
    );
    assert_eq!(
        table["TimeToLiveSpecification"]["Enabled"],
        Value::Bool(true)
    );
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        Value::Bool(true)
    );

    // The rule matches exactly what the EventBridge sink sends, at the alert threshold.
    let eb = EventBridgeConfig::default();
    assert_eq!(s(&t["Parameters"]["EventBusName"]["Default"]), eb.bus);
    let pattern = &resources["CriticalInsightRule"]["Properties"]["EventPattern"];
    assert_eq!(s(&pattern["source"][0]), eb.source);
    assert_eq!(s(&pattern["detail-type"][0]), eb.detail_type);
    let detail_fields: Vec<&str> = pattern["detail"]
        .as_mapping()
        .expect("a detail pattern")
        .keys()
        .map(s)
        .collect();
    assert_eq!(detail_fields, vec!["risk_score"]);
    let numeric = &pattern["detail"]["risk_score"][0]["numeric"];
    assert_eq!(s(&numeric[0]), ">=");
    assert_eq!(
        numeric[1].as_u64(),
        Some(u64::from(AlertsConfig::default().threshold))
    );
    // …and the field is what the sink's detail carries, as a number.
    let sample = ibsight::events::types::AlertRaisedV1 {
        alert_id: "a".into(),
        stream_id: "leaf01/p07".into(),
        prediction_type: ibsight::analyst::insight::PredictionType::ConnectionInstability,
        risk_score: 91,
        tier: 90,
        escalated_from_tier: None,
        explanation: String::new(),
        insight_seq: 3,
        anomaly_seq: 2,
        raised_at_ms: 0,
    };
    assert_eq!(eventbridge::detail(&sample.into())["risk_score"], 91);

    // The role may do exactly what the code does, on the table and its indexes.
    let statements =
        &resources["ServiceRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
    let actions: Vec<String> = statements
        .as_sequence()
        .expect("statements")
        .iter()
        // The database password statement is conditional (`!If`), checked below.
        .filter(|st| !st["Action"].is_null())
        .flat_map(|st| match &st["Action"] {
            Value::Sequence(a) => a.iter().map(|v| s(v).to_string()).collect(),
            v => vec![s(v).to_string()],
        })
        .collect();
    assert_eq!(
        actions,
        [
            "bedrock:InvokeModel",
            "dynamodb:PutItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "events:PutEvents"
        ]
    );
    for needed in [
        "AlertsTopic",
        "AlertsTopicPolicy",
        "AuditLogGroup",
        "AuditLogPolicy",
        "BedrockErrorsAlarm",
        "BedrockThrottlesAlarm",
        "BedrockChargesAlarm",
        "BedrockBudget",
    ] {
        assert!(!resources[needed].is_null(), "{needed}");
    }
    assert_eq!(
        resources["BedrockBudget"]["Properties"]["NotificationsWithSubscribers"][0]["Notification"]
            ["Threshold"]
            .as_u64(),
        Some(80)
    );
    assert_eq!(
        t["Parameters"]["MonthlyBudgetUsd"]["Default"].as_u64(),
        Some(500)
    );
    // Cluster mode: an RDS/Aurora endpoint and its secret; the role reads only that secret.
    for p in ["PostgresEndpoint", "PostgresSecretArn"] {
        assert!(!t["Parameters"][p].is_null(), "{p}");
    }
    let text = std::fs::read_to_string(root().join("deploy/aws/ibsight.yaml")).expect("read");
    assert!(text.contains("Action: secretsmanager:GetSecretValue"));
    assert!(text.contains("Resource: !Ref PostgresSecretArn"));
    let env = format!("{:?}", t["Outputs"]["PostgresEnvironment"]["Value"]);
    for needed in [
        "IBSIGHT_STORE__ENGINE=postgres",
        "target_session_attrs=read-write",
    ] {
        assert!(env.contains(needed), "{needed} in {env}");
    }
}

#[test]
fn the_kubernetes_manifests_have_what_ibsight_needs() {
    let sts = &yaml_docs("deploy/k8s/statefulset.yaml")[0];
    assert_eq!(s(&sts["kind"]), "StatefulSet");
    let spec = &sts["spec"];
    assert_eq!(s(&spec["serviceName"]), "ibsight-peers");
    let pod = &spec["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(s(&c["readinessProbe"]["httpGet"]["path"]), "/readyz");
    assert_eq!(s(&c["livenessProbe"]["httpGet"]["path"]), "/healthz");
    assert!(!c["resources"]["requests"]["cpu"].is_null());
    assert!(!c["resources"]["requests"]["memory"].is_null());
    assert_eq!(s(&c["volumeMounts"][0]["mountPath"]), "/var/lib/ibsight");
    // The log is in PostgreSQL: the data directory holds nothing durable.
    let data = pod["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == c["volumeMounts"][0]["name"])
        .expect("the data volume");
    assert!(data["emptyDir"].is_mapping(), "{data:?}");
    assert!(spec["volumeClaimTemplates"].is_null());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true));

    let services = yaml_docs("deploy/k8s/service.yaml");
    assert_eq!(services.len(), 2);
    assert!(services
        .iter()
        .any(|svc| s(&svc["metadata"]["name"]) == "ibsight-peers"
            && s(&svc["spec"]["clusterIP"]) == "None"));

    // The ConfigMap's file is a config ibsight accepts.
    let cm = &yaml_docs("deploy/k8s/configmap.yaml")[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ibsight.toml");
    // The pod's name, its URL, the database and the Secret's token arrive through the
    // environment.
    let text = s(&cm["data"]["ibsight.toml"])
        .replace(
            "[cluster]\n",
            "[cluster]\nnode_id = \"ibsight-1\"\nnode_token = \"a-node-token-of-32-characters-xx\"\n\
             advertise_url = \"http://ibsight-1.ibsight-peers:8080\"\n",
        )
        .replace("[store]\n", "[store]\nurl = \"host=pg-rw user=ibsight\"\n");
    std::fs::write(&file, text).expect("write");
    let config = ibsight::config::Config::load(Some(&file)).expect("the ConfigMap's config loads");
    assert_eq!(config.store.engine, ibsight::events::Engine::Postgres);
    let env: Vec<&str> = sts["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .map(|e| s(&e["name"]))
        .collect();
    for key in [
        "IBSIGHT_CLUSTER__NODE_ID",
        "IBSIGHT_CLUSTER__ADVERTISE_URL",
        "IBSIGHT_CLUSTER__NODE_TOKEN",
        "IBSIGHT_STORE__URL",
        "IBSIGHT_STORE__PASSWORD",
    ] {
        assert!(env.contains(&key), "the StatefulSet sets {key}");
    }
    assert!(sts["spec"]["replicas"].as_u64() >= Some(3), "three nodes");
    assert_eq!(config.server.data_dir, Path::new("/var/lib/ibsight"));
    assert_eq!(config.dynamodb.table, DynamoConfig::default().table);
}

#[test]
fn the_image_builds_with_the_readme_command_and_runs_unprivileged() {
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).expect("read");
    let readme = std::fs::read_to_string(root().join("README.md")).expect("read");
    let build = "cargo build --release --locked";
    assert!(readme.contains(build), "README gives `{build}`");
    assert!(
        dockerfile
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("RUN {build}"))),
        "the Dockerfile's build stage runs `{build}`"
    );
    assert!(dockerfile.contains("USER 10001"));
    assert!(dockerfile.contains("VOLUME [\"/var/lib/ibsight\"]"));
    assert_eq!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")),
        3,
        "multi-stage: build, the collector, the server"
    );
    let compose = &yaml_docs("deploy/compose.yaml")[0];
    let jaeger_ports: Vec<&str> = compose["services"]["jaeger"]["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(s)
        .collect();
    for port in ["16686", "4317", "4318"] {
        assert!(
            jaeger_ports
                .iter()
                .any(|p| p.ends_with(&format!(":{port}"))),
            "{port}"
        );
    }
    assert_eq!(
        s(&compose["services"]["ibsight-1"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]),
        "http://jaeger:4318"
    );
    // Three ibsight nodes on the three Patroni members, finding the leader by session attrs.
    let mut merged = compose.clone();
    merged.apply_merge().expect("merge keys");
    for i in 1..=3 {
        let env = &merged["services"][format!("ibsight-{i}").as_str()]["environment"];
        assert_eq!(s(&env["IBSIGHT_STORE__ENGINE"]), "postgres");
        assert_eq!(s(&env["IBSIGHT_CLUSTER__NODE_ID"]), format!("ibsight-{i}"));
        let url = s(&env["IBSIGHT_STORE__URL"]);
        assert!(url.contains("host=pg1,pg2,pg3"), "{url}");
        assert!(url.contains("target_session_attrs=read-write"), "{url}");
        assert!(compose["services"][format!("pg{i}").as_str()]["build"].is_string());
    }
}
