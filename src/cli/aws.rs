//! `ibsight aws init`: create the DynamoDB table (keys, GSI `EntityTypeIndex`, TTL) when it
//! is missing, against the configured endpoint (development and local emulators).

use crate::config::Config;
use crate::projections::dynamodb::DynamoSink;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum AwsCommand {
    /// Create what ibsight needs in AWS when it is missing.
    Init {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

pub fn run(cmd: AwsCommand) -> anyhow::Result<()> {
    match cmd {
        AwsCommand::Init { config } => {
            let config = Config::load(config.as_deref())?;
            crate::cli::runtime()?.block_on(async move {
                let sdk = crate::aws::sdk_config(&config.aws).await;
                let sink = DynamoSink::new(&sdk, &config.dynamodb.table);
                let done = sink.init().await?;
                if done.is_empty() {
                    println!("table {} is ready; nothing to do", config.dynamodb.table);
                }
                for line in done {
                    println!("{line}");
                }
                anyhow::Ok(())
            })
        }
    }
}
