//! `dojangd`: runs one Dojang node from a TOML config file, with flags to override it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use dojang_node::clock::SystemClock;
use dojang_node::config::NodeConfig;

#[derive(Debug, Parser)]
#[command(name = "dojangd", version, about = "Dojang ledger node")]
struct Args {
    /// TOML config file.
    #[arg(long, short)]
    config: PathBuf,
    /// Override `listen`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Override `data_dir`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    log_json: bool,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("dojangd: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing(args.log_json);
    let mut cfg = NodeConfig::from_toml_file(&args.config)?;
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(d) = args.data_dir {
        cfg.data_dir = d;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    rt.block_on(async {
        let node = dojang_node::node::start(&cfg, Arc::new(SystemClock)).await?;
        // Tests and scripts read this line to learn the bound port.
        tracing::info!(url = %node.url(), "listening");
        #[allow(clippy::print_stdout)]
        {
            println!("dojangd listening on {}", node.url());
        }
        tokio::select! {
            () = shutdown_signal() => {}
            reason = node.fatal() => {
                tracing::error!(%reason, "consensus stopped; shutting down");
                node.stop().await;
                anyhow::bail!("consensus stopped: {reason}");
            }
        }
        tracing::info!("shutting down");
        node.stop().await;
        anyhow::Ok(())
    })
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
