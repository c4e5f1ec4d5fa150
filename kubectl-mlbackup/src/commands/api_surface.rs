//! `api-surface`: what the current cluster serves for a restore of LRS objects, as one YAML
//! document for `verify --against FILE` (an air-gapped migration's offline check).

use anyhow::Context;
use serde::Serialize;

use crate::cli::{ApiSurfaceArgs, GlobalArgs};
use crate::cluster::lrs;
use crate::cluster::surface::{self, ApiSurface};
use crate::env::Env;
use crate::exit::Exit;
use crate::printer::{Printer, Render};

/// The document, as written to stdout.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct ApiSurfaceOutcome(pub ApiSurface);

impl Render for ApiSurfaceOutcome {
    /// The table format of this command is its YAML: the output is a file to keep, not a
    /// report to read.
    fn render(&self) -> String {
        let surface = &self.0;
        let place = surface.context.as_deref().unwrap_or(&surface.server);
        format!(
            "# The API surface of {place} for `kubectl mlbackup verify BACKUP --against FILE`.\n{}",
            serde_yaml::to_string(surface).expect("an API surface serializes as YAML")
        )
    }
}

pub async fn run(
    global: &GlobalArgs,
    args: &ApiSurfaceArgs,
    env: &Env,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let cluster = super::connect(global, env).await?;
    let surface = surface::read(&cluster, args.resource.as_ref())
        .await
        .context("cannot read the cluster's API surface")?;
    if let Err(detail) = surface.resolve(args.resource.as_ref()) {
        printer.warning(&format!(
            "{} is not served by this cluster ({detail}); the file records that, and verify \
             --against it will say no backup of it can be restored there",
            lrs::qualified_name(args.resource.as_ref())
        ));
    }
    for problem in &surface.problems {
        printer.warning(problem);
    }
    printer.data(&ApiSurfaceOutcome(surface))?;
    Ok(Exit::Success)
}
