//! `ibsight serve`: load config, start a node, serve HTTP until SIGINT or SIGTERM.

use crate::api;
use crate::config::Config;
use crate::node::Node;
use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML config file (see config/default.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Where the event store lives [default: ./data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Allow a non-loopback address without auth tokens.
    #[arg(long)]
    pub insecure: bool,
}

/// Apply the flags over the loaded config and check the listen policy.
pub fn resolve(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(dir) = &args.data_dir {
        config.server.data_dir = dir.clone();
    }
    if !config.server.listen.ip().is_loopback() && !config.has_auth() && !args.insecure {
        anyhow::bail!(
            "refusing to listen on non-loopback address {} with no auth.ingest_tokens configured; \
             configure tokens or pass --insecure",
            config.server.listen
        );
    }
    Ok(config)
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = resolve(&args)?;
    // A bad certificate or key stops the start, naming the file, before anything is opened.
    let tls = match config.server.tls.files() {
        Some((cert, key)) => Some(api::tls::server_config(cert, key)?),
        None => None,
    };
    // Outside the runtime: the span exporter runs its own thread, and flushes when dropped.
    let _telemetry = crate::telemetry::init(&config.telemetry)?;
    crate::cli::runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let addr = listener.local_addr()?;
        let node = Node::start(config.clone()).await?;
        let state = node.app_state();
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, scheme, engine = ?node.config.store.engine, "ibsight listening");
        if tls.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(%addr, "plain HTTP on a non-loopback address: tokens and telemetry \
                cross the network in clear text; set [server.tls] cert_file and key_file");
        }
        // Tests and scripts read this line to learn the port when started with :0.
        println!("listening on {addr}");
        api::serve(listener, state, tls, crate::cli::shutdown_signal()).await?;
        node.shutdown().await;
        tracing::info!("ibsight stopped");
        Ok(())
    })
}
